"""Modelgate settings: every value comes from the environment with a laptop-friendly default.

See the configuration table in README.md. Production (``DEBUG`` off) refuses to start without
``SECRET_KEY`` and ``ALLOWED_HOSTS`` instead of falling back silently.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_int, env_list, env_size, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("MODELGATE_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DEBUG", True)


def _secret_key() -> str:
    key = env_str("SECRET_KEY")
    if key:
        return key
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    # Embedded default: a random key generated once per checkout, never shipped in the repo.
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
if not DEBUG and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must be set when DEBUG is off.")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "guardian",
    "core",  # the kernel: audit log, API tokens, the permission gate
    "registry",
    "governance",
    "cards",
    "config",  # the composition root: the demo command
    "csp",
    "axes",  # login throttling; its tables hold the failure counts
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "core.edge.RejectNulBytes",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "axes.middleware.AxesMiddleware",  # last: turns a lockout into the locked-out page
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'modelgate.sqlite3'}")
try:
    _db = dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))
except ValueError as exc:
    raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {exc}") from None

if _db["ENGINE"] == "django.db.backends.sqlite3":
    # Concurrent writers must queue, not fail with "database is locked": IMMEDIATE takes the
    # write lock when a transaction begins (so a read-then-write never has to upgrade its lock
    # and deadlock), the busy timeout makes waiting writers retry, and WAL lets readers carry on
    # while one writer holds the lock.
    # Writers also queue on a file lock beside the database (see config/sqlite3/base.py).
    _db["ENGINE"] = "config.sqlite3"
    _db["CONN_MAX_AGE"] = 0 if _db["NAME"] == ":memory:" else _db["CONN_MAX_AGE"]
    _db["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": env_int("SQLITE_BUSY_TIMEOUT", 30, minimum=1),
        "init_command": (
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;"
        ),
    }
    # A file-backed test database lets live-server threads hold separate connections, so
    # the concurrency tests exercise real SQLite locking instead of one shared connection.
    _db["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
elif _db["ENGINE"] == "django.db.backends.postgresql":
    _db["ENGINE"] = "config.postgresql"  # knows the audit table's triggers (flush in tests)
    _db.setdefault("OPTIONS", {})
    # Prepared statements: PostgreSQL spent more CPU planning the registry's queries (0.5-1.2
    # ms each) than running them; with parameters bound on the server, psycopg prepares a
    # statement once it has run DB_PREPARE_THRESHOLD times on a connection, and later runs
    # skip parsing and planning. 0 turns it off (a transaction-mode pooler older than
    # PgBouncer 1.21 cannot keep prepared statements).
    _prepare_threshold = env_int("DB_PREPARE_THRESHOLD", 5, minimum=0)
    if _prepare_threshold:
        _db["OPTIONS"].setdefault("server_side_binding", True)
        _db["OPTIONS"].setdefault("prepare_threshold", _prepare_threshold)
    _db["CONN_HEALTH_CHECKS"] = True
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache and tasks ------------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Without Redis, Celery uses kombu's filesystem transport under var/, so the embedded default
# needs no external service and a local worker can still take jobs off the web process.
CELERY_QUEUE_DIR = VAR_DIR / "queue"
CELERY_BROKER_URL = REDIS_URL or "filesystem://"
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = (
    # A message a dead worker had taken comes back after this many seconds; longer than any
    # task's time limit, so a slow but living worker never sees its job run twice.
    {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 4 * 3600, minimum=1)}
    if REDIS_URL
    else {
        "data_folder_in": str(CELERY_QUEUE_DIR),
        "data_folder_out": str(CELERY_QUEUE_DIR),
        "processed_folder": str(VAR_DIR / "queue-processed"),
        "store_processed": False,
        # Broadcast (remote control) messages; kombu's default is ./control in the cwd.
        "control_folder": str(VAR_DIR / "queue-control"),
        # The worker looks for new files this often (kombu's default is every second).
        "polling_interval": 0.1,
    }
)
if not REDIS_URL:
    for _folder in (CELERY_QUEUE_DIR, VAR_DIR / "queue-processed", VAR_DIR / "queue-control"):
        _folder.mkdir(parents=True, exist_ok=True)
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_SOFT_TIME_LIMIT = 3000
CELERY_TASK_TIME_LIMIT = 3300
# The sweeper (celery beat every SWEEP_INTERVAL seconds, and each worker as it starts) queues
# again what a lost message or a dead worker left behind: jobs queued and untouched for
# SWEEP_AFTER seconds, running jobs whose worker sent no heartbeat (every
# JOB_HEARTBEAT_INTERVAL seconds, from a thread of the worker process) for
# JOB_HEARTBEAT_TIMEOUT seconds, webhook deliveries never attempted, and upload spool files
# older than UPLOAD_SPOOL_MAX_AGE seconds (a killed upload's; live uploads write far sooner).
SWEEP_AFTER = env_int("SWEEP_AFTER", 600, minimum=60)
SWEEP_INTERVAL = env_int("SWEEP_INTERVAL", 20, minimum=1)
JOB_MAX_ATTEMPTS = env_int("JOB_MAX_ATTEMPTS", 3, minimum=1)
JOB_HEARTBEAT_INTERVAL = env_int("JOB_HEARTBEAT_INTERVAL", 10, minimum=1)
# Several missed beats, so a busy database or a paused VM does not requeue a living job.
JOB_HEARTBEAT_TIMEOUT = env_int(
    "JOB_HEARTBEAT_TIMEOUT", max(60, 3 * JOB_HEARTBEAT_INTERVAL), minimum=3 * JOB_HEARTBEAT_INTERVAL
)
UPLOAD_SPOOL_MAX_AGE = env_int("UPLOAD_SPOOL_MAX_AGE", 24 * 3600, minimum=3600)
# A sweep not taken within its interval is dropped: the next one does its work (no pile of
# sweeps behind long jobs).
CELERY_BEAT_SCHEDULE = {
    "sweep": {
        "task": "registry.tasks.sweep",
        "schedule": SWEEP_INTERVAL,
        "options": {"expires": SWEEP_INTERVAL},
    }
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# --- Artifacts ------------------------------------------------------------------------------
ARTIFACT_ROOT = Path(env_str("ARTIFACT_ROOT", str(VAR_DIR / "artifacts")))
ARTIFACT_STORAGE = env_str("ARTIFACT_STORAGE", "local")
ARTIFACT_MAX_UPLOAD_SIZE = env_size("ARTIFACT_MAX_UPLOAD_SIZE", 2 * 1024**3)
_artifact_storage: dict[str, Any]
if ARTIFACT_STORAGE == "local":
    _artifact_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(ARTIFACT_ROOT), "base_url": None},
    }
elif ARTIFACT_STORAGE == "s3":
    _artifact_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env_str("ARTIFACT_S3_BUCKET"),
            "endpoint_url": env_str("ARTIFACT_S3_ENDPOINT_URL") or None,
            "region_name": env_str("ARTIFACT_S3_REGION") or None,
            "location": env_str("ARTIFACT_S3_PREFIX", "artifacts"),
            "file_overwrite": False,
            "default_acl": None,
        },
    }
    if not _artifact_storage["OPTIONS"]["bucket_name"]:
        raise ImproperlyConfigured("ARTIFACT_S3_BUCKET must be set when ARTIFACT_STORAGE=s3.")
else:
    raise ImproperlyConfigured(
        f"ARTIFACT_STORAGE must be 'local' or 's3', got {ARTIFACT_STORAGE!r}."
    )
STORAGES: dict[str, dict[str, Any]] = {
    "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(VAR_DIR / "media")},
    },
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "artifacts": _artifact_storage,
}
# Model conversion runs in a child process with these limits; parity below these fails it.
CONVERSION_MEMORY_LIMIT = env_size("CONVERSION_MEMORY_LIMIT", 4 * 1024**3)
CONVERSION_CPU_SECONDS = env_int("CONVERSION_CPU_SECONDS", 600, minimum=5)
PARITY_MIN_AGREEMENT = float(env_str("PARITY_MIN_AGREEMENT", "0.99"))
PARITY_MAX_DIFF = float(env_str("PARITY_MAX_DIFF", "0.001"))
# The pickle scan stops with "unsafe" past these: no model the conversion memory limit lets
# load inflates to more, and real models compress far less than 200:1.
SCAN_MAX_INFLATED_BYTES = env_size("SCAN_MAX_INFLATED_BYTES", 4 * 1024**3)
SCAN_MAX_COMPRESSION_RATIO = env_int("SCAN_MAX_COMPRESSION_RATIO", 200, minimum=2)
# The model process: the user it drops to when the worker runs as root (empty: stays root),
# private mount/network/PID namespaces where the kernel allows, and more paths it must not see
# (the var folder, the local artifact store and a SQLite file are always hidden).
SANDBOX_USER = env_str("SANDBOX_USER", "nobody")
SANDBOX_NAMESPACES = env_bool("SANDBOX_NAMESPACES", True)
SANDBOX_HIDDEN_PATHS = env_list("SANDBOX_HIDDEN_PATHS")
UPLOAD_SPOOL_DIR = Path(env_str("UPLOAD_SPOOL_DIR", str(VAR_DIR / "spool")))
FILE_UPLOAD_TEMP_DIR = str(UPLOAD_SPOOL_DIR)
UPLOAD_SPOOL_DIR.mkdir(parents=True, exist_ok=True)

# --- Auth -----------------------------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses locked-out
    "django.contrib.auth.backends.ModelBackend",
    # Single sign-on; inert while OIDC_RP_CLIENT_ID is unset.
    "governance.oidc.OidcBackend",
]
# Guardian's anonymous user is never granted anything; we do not create it.
ANONYMOUS_USER_NAME = None
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "registry:home"
LOGOUT_REDIRECT_URL = "login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Login throttling (django-axes) ----------------------------------------------------------
# Every password sign-in (the login page, the admin's) counts failures per user name AND client
# address together: after AXES_FAILURE_LIMIT wrong passwords that pair is locked for
# AXES_COOLOFF_MINUTES, while the same user from another address still signs in, so a stranger
# cannot lock everyone out by typing their names. A success resets the pair's count. Attempts
# while locked are refused without checking the password and do not extend the lock. Each
# counted failure and each lockout is audited (core/refusals.py); `manage.py axes_reset`
# (or axes_reset_username NAME) lifts locks early. API tokens are not passwords: not counted.
AXES_ENABLED = env_bool("AXES_ENABLED", True)
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("AXES_COOLOFF_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_CALLABLE = "core.refusals.locked_out_page"  # a 429 page saying for how long
AXES_VERBOSE = False  # no start-up banner; its log lines mask user names and addresses

# --- Content-Security-Policy (django-csp) ---------------------------------------------------
# Every response says: scripts, styles, images, fonts and fetches come from this site only; no
# inline script or style runs (templates load static/js files and mark behaviour with data-
# attributes); no plugins; nothing may frame a page; forms post only to this site (plus the
# origins in CSP_FORM_ACTION_EXTRA, e.g. an identity provider a form redirects to); <base>
# cannot move relative links elsewhere. The browser test fails on any violation.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],  # the API docs' icons are data: URIs in their CSS
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'", *env_list("CSP_FORM_ACTION_EXTRA")],
        "frame-ancestors": ["'none'"],
    },
}

# --- Single sign-on (OpenID Connect, governance/oidc.py) -----------------------------------
# Off unless OIDC_RP_CLIENT_ID is set. Endpoints not given are discovered from the issuer's
# /.well-known/openid-configuration. Register <site>/oidc/callback/ as the redirect URI.
OIDC_RP_CLIENT_ID = env_str("OIDC_RP_CLIENT_ID")
OIDC_RP_CLIENT_SECRET = env_str("OIDC_RP_CLIENT_SECRET")
OIDC_OP_ISSUER = env_str("OIDC_OP_ISSUER")
OIDC_OP_AUTHORIZATION_ENDPOINT = env_str("OIDC_OP_AUTHORIZATION_ENDPOINT")
OIDC_OP_TOKEN_ENDPOINT = env_str("OIDC_OP_TOKEN_ENDPOINT")
OIDC_OP_USER_ENDPOINT = env_str("OIDC_OP_USER_ENDPOINT")
OIDC_OP_JWKS_ENDPOINT = env_str("OIDC_OP_JWKS_ENDPOINT")
# Asymmetric only: the key comes from the provider's JWKS, never from the client secret.
OIDC_RP_SIGN_ALGO = env_str("OIDC_RP_SIGN_ALGO", "RS256")
OIDC_RP_SCOPES = env_str("OIDC_RP_SCOPES", "openid email profile groups")
OIDC_GROUPS_CLAIM = env_str("OIDC_GROUPS_CLAIM", "groups")
OIDC_USERNAME_CLAIM = env_str("OIDC_USERNAME_CLAIM", "preferred_username")
OIDC_PROVIDER_NAME = env_str("OIDC_PROVIDER_NAME", "single sign-on")
OIDC_CREATE_USER = env_bool("OIDC_CREATE_USER", True)
OIDC_LINK_VERIFIED_EMAIL = env_bool("OIDC_LINK_VERIFIED_EMAIL", True)
OIDC_USE_PKCE = env_bool("OIDC_USE_PKCE", True)
OIDC_TIMEOUT = env_int("OIDC_TIMEOUT", 10, minimum=1)
OIDC_STATE_MAX_AGE = env_int("OIDC_STATE_MAX_AGE", 600, minimum=1)
OIDC_VERIFY_SSL = True
LOGIN_REDIRECT_URL_FAILURE = "login"
if OIDC_RP_CLIENT_ID:
    if not (OIDC_RP_CLIENT_SECRET and OIDC_OP_ISSUER):
        raise ImproperlyConfigured(
            "OIDC_RP_CLIENT_SECRET and OIDC_OP_ISSUER must be set when OIDC_RP_CLIENT_ID is."
        )
    if OIDC_RP_SIGN_ALGO not in (
        "RS256",
        "RS384",
        "RS512",
        "PS256",
        "PS384",
        "PS512",
        "ES256",
        "ES384",
        "ES512",
    ):
        raise ImproperlyConfigured(
            f"OIDC_RP_SIGN_ALGO must be an asymmetric algorithm such as RS256, got "
            f"{OIDC_RP_SIGN_ALGO!r}."
        )
    # Codes, tokens and the signing keys travel between Modelgate and the provider.
    _oidc_plain = [
        name
        for name in (
            "OIDC_OP_ISSUER",
            "OIDC_OP_AUTHORIZATION_ENDPOINT",
            "OIDC_OP_TOKEN_ENDPOINT",
            "OIDC_OP_USER_ENDPOINT",
            "OIDC_OP_JWKS_ENDPOINT",
        )
        if globals()[name] and not globals()[name].startswith("https://")
    ]
    if _oidc_plain and not DEBUG:
        raise ImproperlyConfigured(
            f"{', '.join(_oidc_plain)}: must start with https:// when DEBUG is off."
        )

# --- API ------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "core.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["core.edge.SafeJSONParser"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PAGINATION_CLASS": "core.api.CursorPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "core.api.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
# /api/schema/ and /api/docs/ are for signed-in users (or API tokens) unless this opens them.
API_DOCS_PUBLIC = env_bool("API_DOCS_PUBLIC", False)
SPECTACULAR_SETTINGS = {
    "TITLE": "Modelgate API",
    "DESCRIPTION": "Model registry, governance and model cards.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "PackagingJobKindEnum": "registry.models.PackagingJob.Kind",
        "FeatureSourceKindEnum": "registry.models.FeatureSource.Kind",
        "TrainingRunStatusEnum": "registry.models.TrainingRun.Status",
        "MetricDirectionEnum": "registry.metric_direction.DIRECTIONS",
        "EvaluationKindEnum": "registry.models.EvaluationResult.Kind",
    },
}

# --- Audit, notifications --------------------------------------------------------------------
# `manage.py audit_checkpoint` signs the chain head with this key; keep the key and the
# checkpoints outside the database. Without it, a key derived from SECRET_KEY is used.
AUDIT_CHECKPOINT_KEY = env_str("AUDIT_CHECKPOINT_KEY")
# Where signed checkpoints are kept outside the database (governance/checkpoints.py): a file
# (JSON lines, appended and fsynced) or s3://bucket/prefix (one object per checkpoint, through
# django-storages with the ARTIFACT_S3_* endpoint and region). Celery beat takes one every
# AUDIT_CHECKPOINT_INTERVAL seconds; verify_audit_log checks the log against the newest.
AUDIT_ANCHOR = env_str("AUDIT_ANCHOR")
AUDIT_CHECKPOINT_INTERVAL = env_int("AUDIT_CHECKPOINT_INTERVAL", 3600, minimum=60)
if AUDIT_ANCHOR.startswith("s3://"):
    _anchor_bucket, _, _anchor_prefix = AUDIT_ANCHOR.removeprefix("s3://").partition("/")
    if not _anchor_bucket:
        raise ImproperlyConfigured("AUDIT_ANCHOR must name a bucket: s3://bucket/prefix.")
    STORAGES["audit_anchor"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": _anchor_bucket,
            "location": _anchor_prefix.strip("/"),
            "endpoint_url": env_str("ARTIFACT_S3_ENDPOINT_URL") or None,
            "region_name": env_str("ARTIFACT_S3_REGION") or None,
            "file_overwrite": False,
            "default_acl": None,
        },
    }
elif AUDIT_ANCHOR and not Path(AUDIT_ANCHOR).is_absolute():
    raise ImproperlyConfigured(
        f"AUDIT_ANCHOR must be an absolute file path or s3://bucket/prefix, got {AUDIT_ANCHOR!r}."
    )
CELERY_BEAT_SCHEDULE["audit-checkpoint"] = {
    "task": "governance.take_audit_checkpoint",
    "schedule": AUDIT_CHECKPOINT_INTERVAL,
}
# Lets `flush` empty the append-only audit table on PostgreSQL. For test suites only.
AUDIT_ALLOW_FLUSH = env_bool("AUDIT_ALLOW_FLUSH", False)
# Environments that accept a deployment record only for an approved version (in production or
# holding a protected alias). Exact names, compared without case.
PRODUCTION_ENVIRONMENTS = env_list("PRODUCTION_ENVIRONMENTS", ["prod", "production"])
# The maturity scorecard's thresholds (governance/maturity): an access review and an approval
# of the production version count as current for this many days; a version needs this many
# metrics for "metrics recorded" to be complete.
MATURITY_ACCESS_REVIEW_DAYS = env_int("MATURITY_ACCESS_REVIEW_DAYS", 90, minimum=1)
MATURITY_PRODUCTION_REVIEW_DAYS = env_int("MATURITY_PRODUCTION_REVIEW_DAYS", 180, minimum=1)
MATURITY_MIN_METRICS = env_int("MATURITY_MIN_METRICS", 3, minimum=1)
# A snapshot of the scorecard per day (trends); a second run the same day replaces the day's.
CELERY_BEAT_SCHEDULE["maturity-snapshot"] = {
    "task": "governance.take_maturity_snapshot",
    "schedule": 24 * 3600,
}

SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000")  # for links in e-mails and webhooks
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "modelgate@localhost")
WEBHOOK_TIMEOUT = env_int("WEBHOOK_TIMEOUT", 10, minimum=1)
WEBHOOK_MAX_ATTEMPTS = env_int("WEBHOOK_MAX_ATTEMPTS", 8, minimum=1)
# Hosts (exact names or IP literals) webhooks may reach although they resolve to loopback,
# private or link-local addresses (governance/webhook_targets.py); everything else must be public.
WEBHOOK_ALLOWED_HOSTS = env_list("WEBHOOK_ALLOWED_HOSTS")
WEBHOOK_BACKOFF_BASE = 30  # seconds; attempt n waits about base * 2**n, at most the maximum
WEBHOOK_BACKOFF_MAX = 6 * 3600

# --- I18N, static ---------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "staticfiles")))
# WhiteNoise serves static files from the web process itself, so gunicorn alone serves a
# styled site and the API docs. With DEBUG off: what `collectstatic` wrote to STATIC_ROOT,
# compressed, under content-hashed names cached for a year. With DEBUG on (development and
# tests): straight from the source folders, nothing to collect.
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG
if not DEBUG:
    STORAGES["staticfiles"] = {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"}

# --- Security -------------------------------------------------------------------------------
# Production (DEBUG off) assumes TLS: cookies only over HTTPS, plain HTTP redirected to
# HTTPS, and HSTS for a year. To try it on plain HTTP, turn off SECURE_SSL_REDIRECT,
# SESSION_COOKIE_SECURE and CSRF_COOKIE_SECURE (README, Production).
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
# A refused form explains secure cookies over plain HTTP instead of a bare "CSRF cookie not set".
CSRF_FAILURE_VIEW = "config.csrf.csrf_failure"
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 365 * 24 * 3600, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
# Opt-in: asks browsers to hard-code HTTPS for the whole domain, which is slow to undo.
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
if env_bool("BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}

# Object permissions are decided only by core/permissions.py, which reads guardian's
# tables directly; routing user.has_perm(obj) through guardian's backend would open a second
# path to the same decision, so the backend stays unhooked on purpose.
# security.W021 (no HSTS preload): preload is a deliberate opt-in (SECURE_HSTS_PRELOAD), since
# leaving browsers' preload lists takes months; `check --deploy` should not push everyone in.
SILENCED_SYSTEM_CHECKS = ["guardian.W001", "security.W021"]
# More from the environment, e.g. governance.W001 on a test server that runs as a superuser.
SILENCED_SYSTEM_CHECKS += env_list("SILENCED_SYSTEM_CHECKS")
