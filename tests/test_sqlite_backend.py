"""The embedded SQLite backend queues writers on a file lock held for exactly one
transaction."""

from __future__ import annotations

import fcntl
import os

import pytest
from django.db import connection, transaction

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        "os.environ.get('DATABASE_URL', '').startswith('postgres')",
        reason="the write lock belongs to the SQLite backend",
    ),
]


def _lock_is_free(path: str) -> bool:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def test_a_write_transaction_holds_the_lock_until_commit_or_rollback():
    path = connection._lock_path()
    assert path and path.endswith(".writelock")
    with transaction.atomic():
        assert not _lock_is_free(path)
        with transaction.atomic():  # savepoints do not take it twice
            assert not _lock_is_free(path)
    assert _lock_is_free(path)
    with pytest.raises(RuntimeError), transaction.atomic():
        assert not _lock_is_free(path)
        raise RuntimeError
    assert _lock_is_free(path)
