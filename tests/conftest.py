"""The role cast and API clients shared by every test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.servers.basehttp import WSGIServer
from django.db import connection
from django.test.utils import override_settings
from rest_framework.test import APIClient

from config.celery import app as celery_app
from core.actors import Actor
from governance.roles import roles_sync
from tests.cache import clear_cache, worker_caches
from tests.factories import UserFactory

# Every answer from /api/v1/ is checked against the generated OpenAPI schema.
pytest_plugins = ["tests.openapi_check"]

# Django's test server listens with a backlog of 10, so 50 clients connecting at once overflow
# it and the kernel resets connections before the application sees them. Production serves
# with gunicorn (backlog 2048); give the live test server a comparable queue.
WSGIServer.request_queue_size = 256


# Tests marked `postgres` skip with this reason on SQLite; say what to do, not a condition.
POSTGRES_SKIP_REASON = (
    "needs PostgreSQL: set DATABASE_URL=postgres://USER@HOST:5432/DB, USER "
    "allowed to create databases (README, 'Run the whole test suite')"
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "postgresql" in settings.DATABASES["default"]["ENGINE"]:
        return
    skip = pytest.mark.skip(reason=POSTGRES_SKIP_REASON)
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True, scope="session")
def _test_configuration() -> None:
    """Transactional tests end with a flush; on PostgreSQL the audit table's trigger refuses
    TRUNCATE unless AUDIT_ALLOW_FLUSH is on (see config/postgresql/base.py). Celery tasks run
    in-process, after the commit that enqueues them, so tests see their effects. The cache
    keeps this worker's keys apart (tests/cache.py)."""
    override_settings(CACHES=worker_caches()).enable()
    settings.AUDIT_ALLOW_FLUSH = True
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True


@pytest.fixture(autouse=True)
def _artifact_root(tmp_path: Path, settings: object) -> Iterator[None]:
    """Each test stores artifacts in its own folder; passwords hash fast."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    root = tmp_path / "artifacts"
    settings.STORAGES = {
        **settings.STORAGES,
        "artifacts": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(root)},
        },
    }
    settings.UPLOAD_SPOOL_DIR = tmp_path / "spool"
    clear_cache()  # refusal throttling and other counters start fresh
    yield


@pytest.fixture
def roles(db: None) -> dict[str, Group]:
    return roles_sync(actor=Actor.system("cli"))


def _member(username: str, role: str | None, roles: dict[str, Group]) -> User:
    user = UserFactory(username=username)
    if role:
        user.groups.add(roles[role])
    return user


@pytest.fixture
def viewer(roles: dict[str, Group]) -> User:
    return _member("victor", "viewer", roles)


@pytest.fixture
def data_scientist(roles: dict[str, Group]) -> User:
    return _member("alice", "data scientist", roles)


@pytest.fixture
def ml_engineer(roles: dict[str, Group]) -> User:
    return _member("bob", "ml engineer", roles)


@pytest.fixture
def reviewer(roles: dict[str, Group]) -> User:
    return _member("carol", "reviewer", roles)


@pytest.fixture
def admin_user(roles: dict[str, Group]) -> User:
    return User.objects.create_superuser("root", "root@example.com", "pw")


@pytest.fixture
def outsider(roles: dict[str, Group]) -> User:
    return _member("olivia", None, roles)


@pytest.fixture
def api() -> Callable[[User | None], APIClient]:
    def client(user: User | None = None) -> APIClient:
        c = APIClient()
        if user is not None:
            c.force_authenticate(user)
        return c

    return client


@pytest.fixture
def is_postgres() -> bool:
    return connection.vendor == "postgresql"
