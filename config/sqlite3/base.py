"""SQLite backend whose write transactions queue on an OS file lock (and which chains audit
events at commit, config/chain_commit.py).

With ``BEGIN IMMEDIATE`` a second writer waits in SQLite's busy handler, which sleeps in
growing steps (up to 100 ms) and polls; under many concurrent writers the wait becomes
mostly sleep, and tail latency climbs. Taking an exclusive ``flock`` on a file beside the
database before ``BEGIN`` makes writers — threads and gunicorn processes alike — wait in the
kernel and wake the moment the holder commits or rolls back. SQLite's own locking still
guards everything else; this only orders the queue.
"""

from __future__ import annotations

import fcntl
import os
from typing import Any

from django.db.backends.sqlite3 import base

from config.chain_commit import ChainsAuditAtCommit


# The methods overridden below are Django's private backend hooks, which django-stubs leaves
# out: hence the `type: ignore[misc]` on each call to the superclass.
class DatabaseWrapper(ChainsAuditAtCommit, base.DatabaseWrapper):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._write_lock_fd: int | None = None

    def _lock_path(self) -> str | None:
        name = str(self.settings_dict["NAME"])
        if self.is_in_memory_db() or not name:
            return None
        return f"{name}.writelock"

    def _write_lock_acquire(self) -> None:
        path = self._lock_path()
        if path is None or self._write_lock_fd is not None:
            return
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        self._write_lock_fd = fd

    def _write_lock_release(self) -> None:
        fd, self._write_lock_fd = self._write_lock_fd, None
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _start_transaction_under_autocommit(self) -> None:
        self._write_lock_acquire()
        try:
            super()._start_transaction_under_autocommit()  # type: ignore[misc]
        except BaseException:
            self._write_lock_release()
            raise

    def _commit(self) -> None:
        try:
            super()._commit()
        finally:
            self._write_lock_release()

    def _rollback(self) -> None:
        try:
            super()._rollback()
        finally:
            self._write_lock_release()

    def _close(self) -> None:
        try:
            super()._close()  # type: ignore[misc]
        finally:
            self._write_lock_release()
