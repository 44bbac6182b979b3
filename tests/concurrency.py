"""Run calls concurrently, with at most MODELGATE_TEST_MAX_CONNECTIONS at a time.

Every concurrent call holds a database connection (its own thread's, or a live server
thread's), and a PostgreSQL server shared with other suites has a few of them to spare, not
fifty: the width is capped (default 10) and the first wave is released together, so the calls
still race for the same rows and locks.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.db import connection

DEFAULT_MAX_CONNECTIONS = 10


def max_connections() -> int:
    """How many calls run at once: MODELGATE_TEST_MAX_CONNECTIONS (at least 2), default 10."""
    raw = os.environ.get("MODELGATE_TEST_MAX_CONNECTIONS", "").strip()
    try:
        value = int(raw) if raw else DEFAULT_MAX_CONNECTIONS
    except ValueError:
        raise ValueError(
            f"MODELGATE_TEST_MAX_CONNECTIONS must be an integer, got {raw!r}"
        ) from None
    return max(2, value)


def all_at_once(
    count: int, call: Callable[[int], Any], *, close_connections: bool = False
) -> list[Any]:
    """Run call(i) for i in range(count), returning the results in order. At most
    max_connections() run at a time: the first that many are released together by a barrier,
    each later one starts as soon as an earlier one ends, so the pool stays full. With
    `close_connections`, each call closes the database connection its thread opened (for calls
    that use the ORM directly rather than through a live server)."""
    width = min(count, max_connections())
    # The first `width` calls are taken by `width` distinct threads (each one waits at the
    # barrier until all have arrived), so the barrier cannot deadlock.
    start = threading.Barrier(width)

    def run(i: int) -> Any:
        if i < width:
            start.wait()
        try:
            return call(i)
        finally:
            if close_connections:
                connection.close()

    with ThreadPoolExecutor(max_workers=width) as pool:
        return list(pool.map(run, range(count)))
