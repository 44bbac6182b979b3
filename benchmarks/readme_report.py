"""What the benchmark scripts share when they write their tables into the README: the
machine a run measured, and the marked block each table lives in (so a table is only ever
written by its script, with its date and machine, never pasted by hand)."""

from __future__ import annotations

import contextlib
import os
import platform
import re
import sqlite3
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def run(command: list[str]) -> str:
    """A command's first output, or '?' (a report must not fail on a missing tool)."""
    try:
        out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=30)
    except OSError:
        return "?"
    return out.stdout.strip() or "?"


def postgresql_version() -> str:
    import psycopg

    with psycopg.connect(PG_ADMIN) as conn:
        row = conn.execute("SHOW server_version").fetchone()
        return str(row[0]) if row else "?"


def machine() -> dict[str, str]:
    """CPU, cores, memory, OS, Python, SQLite, Modelgate's commit and the load at the start."""
    cpu = "?"
    with contextlib.suppress(OSError):
        found = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        cpu = found.group(1).strip() if found else "?"
    mem_kb = 0
    with contextlib.suppress(OSError, AttributeError):
        found = re.search(r"^MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text(), re.M)
        mem_kb = int(found.group(1)) if found else 0
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "ram": f"{mem_kb / 1024 / 1024:.0f} GiB",
        "os": platform.platform(terse=True),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "modelgate": run(["git", "describe", "--always", "--dirty"]),
        "load": " ".join(f"{x:.1f}" for x in os.getloadavg()),
    }


def block(path: Path, start: str, end: str) -> tuple[str, str, str]:
    """The README split around its one `start` … `end` block: (before, inside, after)."""
    content = path.read_text() if path.exists() else ""
    if (
        content.count(start) != 1
        or content.count(end) != 1
        or content.index(start) > content.index(end)
    ):
        raise SystemExit(f"{path} needs exactly one '{start}' … '{end}' block")
    head, rest = content.split(start)
    inside, tail = rest.split(end)
    return head, inside, tail


def write_block(path: Path, start: str, end: str, text: str) -> None:
    head, _, tail = block(path, start, end)
    path.write_text(f"{head}{start}\n{text}\n{end}{tail}")
