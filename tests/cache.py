"""The cache as tests use it. On Redis, each pytest-xdist worker keeps its keys under a prefix
of its own, and clearing deletes only those: a FLUSHDB would also take the other worker's
counters, and the queue of the real Celery workers that tests/packaging/test_worker.py starts
on the same database."""

from __future__ import annotations

import os
from functools import cache as _once
from typing import Any

import redis
from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache

PREFIX = f"modelgate-test-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"


def worker_caches() -> dict[str, Any]:
    """CACHES for the test session: the configured backend, under this worker's prefix."""
    return {alias: {**options, "KEY_PREFIX": PREFIX} for alias, options in settings.CACHES.items()}


@_once
def _client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


def clear_cache() -> None:
    """Forget every key this worker set (throttling windows and other counters)."""
    if isinstance(caches["default"], RedisCache):
        client = _client()
        keys = list(client.scan_iter(match=f"{PREFIX}:*", count=1000))
        if keys:
            client.delete(*keys)
    else:
        cache.clear()
