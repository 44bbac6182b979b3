"""Release N threads at once, each with its own database connection."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.db import connection


def all_at_once(count: int, call: Callable[[int], Any], *, close_connections: bool = False
                ) -> list[Any]:
    """Run call(i) for i in range(count) on `count` threads released together. With
    `close_connections`, each thread closes the database connection it opened (for calls that
    use the ORM directly rather than through a live server)."""
    start = threading.Barrier(count)

    def run(i: int) -> Any:
        start.wait()
        try:
            return call(i)
        finally:
            if close_connections:
                connection.close()

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count)))
