"""Configuration, read from the environment each time an app is created.

Every setting is documented in `.env.example` and docs/configuration.md.
"""

import os
from pathlib import Path
from urllib.parse import urlsplit

import logs

BASE_DIR = Path(__file__).resolve().parent
# The release: `/`, `/v1` and the OpenAPI document's info.version all say this.
RELEASE_VERSION = "1.1.0"

DEV_SECRET_KEY = "dev-only-secret-key-change-me-in-production-please"
API_PREFIX = "/v1"  # every versioned route, and the OpenAPI document, live under it
# Secrets that must never protect a production deployment.
KNOWN_WEAK_SECRETS = {DEV_SECRET_KEY, "secret", "changeme", "change-me", "dev", "development"}
MIN_SECRET_BYTES = 32
ENVIRONMENTS = ("development", "testing", "production")
# What an external issuer may sign with: never HS* (our own tokens) nor none.
ASYMMETRIC_ALGORITHMS = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}


class ConfigError(RuntimeError):
    """The configuration cannot run the app safely."""


def normalize_database_url(url):
    """Pin PostgreSQL URLs to psycopg2, whatever form the host hands out.

    SQLAlchemy 2.1 maps `postgresql://` to psycopg 3, and Heroku-style hosts
    give `postgres://`, which SQLAlchemy no longer knows at all.
    """
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix) :]
    return url


def _env_bool(name, default):
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def _env_number(name, default, kind, what):
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        return kind(value)
    except ValueError:
        raise ConfigError(f"{name} must be {what}, got {value!r}") from None


def _env_int(name, default):
    return _env_number(name, default, int, "an integer")


def _env_float(name, default):
    return _env_number(name, default, float, "a number")


def _env_str(name, default):
    value = os.environ.get(name)
    return default if value is None or value.strip() == "" else value.strip()


def _default_database_url():
    return f"sqlite:///{BASE_DIR / 'instance' / 'app.db'}"


def build_config(env_name=None, **overrides):
    """Return the settings dict for `env_name` (default: $APP_ENV or development)."""
    env_name = env_name or _env_str("APP_ENV", "development")
    if env_name not in ENVIRONMENTS:
        raise ConfigError(f"APP_ENV must be one of {', '.join(ENVIRONMENTS)}, got {env_name!r}")
    production = env_name == "production"
    testing = env_name == "testing"

    config = {
        "APP_ENV": env_name,
        "TESTING": testing,
        "SECRET_KEY": _env_str("SECRET_KEY", None if production else DEV_SECRET_KEY),
        "SQLALCHEMY_DATABASE_URI": _env_str("DATABASE_URL", _default_database_url()),
        # No pool_pre_ping: a dead connection is found by the statement that uses it (app/database.py).
        "SQLALCHEMY_ENGINE_OPTIONS": {},
        # Read replicas (app/replicas.py): PostgreSQL streaming replicas of DATABASE_URL, comma-separated.
        "DATABASE_REPLICA_URLS": _env_str("DATABASE_REPLICA_URLS", ""),
        # A replica lagging more than this, or failing, is skipped for DATABASE_REPLICA_RETRY_SECONDS.
        "DATABASE_REPLICA_MAX_LAG_MS": _env_int("DATABASE_REPLICA_MAX_LAG_MS", 1000),
        "DATABASE_REPLICA_RETRY_SECONDS": _env_float("DATABASE_REPLICA_RETRY_SECONDS", 5),
        # The Redis every worker and instance shares: the write positions that replicas need.
        "REDIS_URL": _env_str("REDIS_URL", None),
        "REDIS_KEY_PREFIX": _env_str("REDIS_KEY_PREFIX", "api"),
        "DB_STATEMENT_TIMEOUT_MS": _env_int("DB_STATEMENT_TIMEOUT_MS", 5000),
        "DB_IDLE_IN_TRANSACTION_TIMEOUT_MS": _env_int("DB_IDLE_IN_TRANSACTION_TIMEOUT_MS", 60000),
        # A database that stops answering is a 503 within seconds (the contract: 10), never a hang.
        # The app waits this long for a new connection's handshake,
        "DB_CONNECT_TIMEOUT_SECONDS": _env_int("DB_CONNECT_TIMEOUT_SECONDS", 3),
        # and this long for any statement's answer (default: the statement timeout plus a second,
        # so that PostgreSQL's own cancel comes first; none when that is 0, as for manage.py).
        "DB_ANSWER_TIMEOUT_MS": _env_int("DB_ANSWER_TIMEOUT_MS", None),
        # The kernel drops a connection whose sent data goes unacknowledged this long (a host gone),
        "DB_TCP_USER_TIMEOUT_MS": _env_int("DB_TCP_USER_TIMEOUT_MS", 5000),
        # and probes one idle this long (then every second, three times), so that a pooled
        # connection to a vanished host is known dead before a request picks it.
        "DB_KEEPALIVE_SECONDS": _env_int("DB_KEEPALIVE_SECONDS", 5),
        # A request waits this long for a pooled connection, then answers 503.
        "DB_POOL_TIMEOUT_SECONDS": _env_float("DB_POOL_TIMEOUT_SECONDS", 5),
        # Requests each worker process runs at once (0: no gate); the others wait, a freed slot
        # going to the principal with the fewest running, and a wait past FAIR_WAIT_SECONDS is 503.
        "FAIR_SLOTS": _env_int("FAIR_SLOTS", 1),
        "FAIR_WAIT_SECONDS": _env_float("FAIR_WAIT_SECONDS", 30),
        # Per worker process; instances x workers x (pool + overflow) must stay under max_connections.
        # Default: FAIR_SLOTS, the requests that hold a connection at once (without the gate, every
        # thread may: then 0, SQLAlchemy's "no limit").
        "DB_POOL_SIZE": _env_int("DB_POOL_SIZE", None),
        "DB_MAX_OVERFLOW": _env_int("DB_MAX_OVERFLOW", 2),
        # Account exports (GET /v1/auth/me/export) streaming at once per worker process, each on a
        # database connection of its own outside the fair-admission gate: keep it at most DB_MAX_OVERFLOW.
        "EXPORTS_AT_ONCE": _env_int("EXPORTS_AT_ONCE", 2),
        "ACCESS_TOKEN_MINUTES": _env_int("ACCESS_TOKEN_MINUTES", 15),
        "REFRESH_TOKEN_DAYS": _env_int("REFRESH_TOKEN_DAYS", 30),
        "BCRYPT_ROUNDS": _env_int("BCRYPT_ROUNDS", 4 if testing else 12),
        "RATELIMIT_ENABLED": _env_bool("RATELIMIT_ENABLED", True),
        # Unset: the Redis at REDIS_URL when there is one (every worker and instance counts together),
        # else memory:// (each process counts on its own; gunicorn.conf.py warns when there are several).
        "RATELIMIT_STORAGE_URI": _env_str("RATELIMIT_STORAGE_URI", None),
        "RATELIMIT_LOGIN": _env_str("RATELIMIT_LOGIN", "10 per minute"),
        # Failed logins from one address across all accounts (password spraying).
        "RATELIMIT_LOGIN_ADDRESS": _env_str("RATELIMIT_LOGIN_ADDRESS", "50 per hour"),
        "RATELIMIT_REGISTER": _env_str("RATELIMIT_REGISTER", "300 per minute"),
        # POST /v1/auth/password/forgot per client address (mails are capped per address besides).
        "RATELIMIT_PASSWORD_FORGOT": _env_str("RATELIMIT_PASSWORD_FORGOT", "60 per minute"),
        # X-RateLimit-Limit, -Remaining and -Reset (Unix time) on rate-limited endpoints; Retry-After
        # stays on 429 and 503 only (app.errors.retry_after_only_on_429_and_503).
        "RATELIMIT_HEADERS_ENABLED": True,
        # When the rate-limit store (Redis) is down: false counts in memory per process
        # (logged), true refuses rate-limited requests with 503.
        "RATELIMIT_FAIL_CLOSED": _env_bool("RATELIMIT_FAIL_CLOSED", False),
        "RATELIMIT_KEY_PREFIX": _env_str("RATELIMIT_KEY_PREFIX", "api"),
        "CORS_ORIGINS": _env_str("CORS_ORIGINS", "" if production else "*"),
        "TRUSTED_PROXIES": _env_int("TRUSTED_PROXIES", 0),
        "LOG_LEVEL": _env_str("LOG_LEVEL", "INFO"),
        # text (readable) or json (one object per line), for the app's lines and gunicorn's (logs.py).
        "LOG_FORMAT": _env_str("LOG_FORMAT", "text"),
        # GET /metrics then needs `Authorization: Bearer <METRICS_TOKEN>`; unset, it is open, except
        # in production, where it does not exist (404).
        "METRICS_TOKEN": _env_str("METRICS_TOKEN", None),
        "MAX_JSON_BYTES": _env_int("MAX_JSON_BYTES", 1024 * 1024),
        # Page numbers reach this many rows deep; cursors walk any depth.
        "MAX_PAGE_OFFSET": _env_int("MAX_PAGE_OFFSET", 10_000),
        # Exact totals of searched lists each worker keeps (app.pagination.CountCache; 0: none).
        "LIST_TOTALS_CACHED": _env_int("LIST_TOTALS_CACHED", 4096),
        # Idempotency-Key: how long an answer is kept, and after how long a request
        # still marked running is taken for dead and its key may be taken over.
        "IDEMPOTENCY_KEY_TTL_SECONDS": _env_int("IDEMPOTENCY_KEY_TTL_SECONDS", 24 * 3600),
        "IDEMPOTENCY_RUNNING_TIMEOUT_SECONDS": _env_int("IDEMPOTENCY_RUNNING_TIMEOUT_SECONDS", 120),
        # Images
        "IMAGE_STORAGE": _env_str("IMAGE_STORAGE", "local"),
        "UPLOAD_DIR": _env_str("UPLOAD_DIR", str(BASE_DIR / "instance" / "uploads")),
        "S3_ENDPOINT_URL": _env_str("S3_ENDPOINT_URL", None),
        "S3_BUCKET": _env_str("S3_BUCKET", "images"),
        "S3_REGION": _env_str("S3_REGION", "us-east-1"),
        # The address clients reach the store at, for presigned URLs (default: S3_ENDPOINT_URL).
        "S3_PUBLIC_ENDPOINT_URL": _env_str("S3_PUBLIC_ENDPOINT_URL", None),
        # proxy: bytes pass through the app; redirect (S3 only): 302 to a presigned URL living IMAGE_URL_SECONDS.
        "IMAGE_DELIVERY": _env_str("IMAGE_DELIVERY", "proxy"),
        "IMAGE_URL_SECONDS": _env_int("IMAGE_URL_SECONDS", 60),
        "MAX_UPLOAD_BYTES": _env_int("MAX_UPLOAD_BYTES", 50 * 1024 * 1024),
        "MAX_IMAGE_BYTES": _env_int("MAX_IMAGE_BYTES", 10 * 1024 * 1024),
        "MAX_IMAGE_PIXELS": _env_int("MAX_IMAGE_PIXELS", 40_000_000),
        # Frames x canvas of one animation, counted before any frame is decoded.
        "MAX_ANIMATION_PIXELS": _env_int("MAX_ANIMATION_PIXELS", 40_000_000),
        "MAX_FILES_PER_UPLOAD": _env_int("MAX_FILES_PER_UPLOAD", 20),
        "THUMBNAIL_SIZE": _env_int("THUMBNAIL_SIZE", 256),
        # External identity provider (OpenID Connect, e.g. Auth0); off while OIDC_ISSUER is empty
        "OIDC_ISSUER": _env_str("OIDC_ISSUER", None),
        "OIDC_AUDIENCE": _env_str("OIDC_AUDIENCE", None),
        "OIDC_JWKS_URL": _env_str("OIDC_JWKS_URL", None),
        "OIDC_ALGORITHMS": _env_str("OIDC_ALGORITHMS", "RS256"),
        "OIDC_PERMISSIONS_CLAIM": _env_str("OIDC_PERMISSIONS_CLAIM", "permissions"),
        "OIDC_LEEWAY_SECONDS": _env_float("OIDC_LEEWAY_SECONDS", 30),
        "OIDC_JWKS_LIFETIME_SECONDS": _env_float("OIDC_JWKS_LIFETIME_SECONDS", 600),
        "OIDC_JWKS_MIN_REFETCH_SECONDS": _env_float("OIDC_JWKS_MIN_REFETCH_SECONDS", 5),
        "OIDC_JWKS_TIMEOUT_SECONDS": _env_float("OIDC_JWKS_TIMEOUT_SECONDS", 3),
        # Mail (app.mail): without SMTP_URL, mails are written to the log.
        "SMTP_URL": _env_str("SMTP_URL", None),
        "SMTP_TIMEOUT_SECONDS": _env_float("SMTP_TIMEOUT_SECONDS", 10),
        "MAIL_FROM": _env_str("MAIL_FROM", "no-reply@localhost"),
        # The links put in mails: `{token}` is replaced by the mail's token.
        "PASSWORD_RESET_URL": _env_str("PASSWORD_RESET_URL", "http://localhost:3000/reset-password?token={token}"),
        "EMAIL_VERIFY_URL": _env_str("EMAIL_VERIFY_URL", "http://localhost:3000/verify-email?token={token}"),
        "PASSWORD_RESET_MINUTES": _env_int("PASSWORD_RESET_MINUTES", 30),
        "EMAIL_VERIFY_HOURS": _env_int("EMAIL_VERIFY_HOURS", 48),
        "REQUIRE_VERIFIED_EMAIL": _env_bool("REQUIRE_VERIFIED_EMAIL", False),
        # A mail the SMTP server did not take is tried again this often for its first 10 minutes
        # (then less and less often, for 24 hours).
        "MAIL_RETRY_SECONDS": _env_float("MAIL_RETRY_SECONDS", 30),
        # gzip (Flask-Compress) for JSON answers over 1 KiB, streamed ones too, when the client takes it;
        # never image bytes. Registered by the app factory (its place among the hooks matters).
        "COMPRESS_REGISTER": False,
        "COMPRESS_MIMETYPES": ["application/json"],
        "COMPRESS_ALGORITHM": ["gzip"],
        "COMPRESS_ALGORITHM_STREAMING": ["gzip"],
        "COMPRESS_MIN_SIZE": 1025,
        "COMPRESS_LEVEL": 6,
        # app/api/conditional.py answers If-None-Match for either ETag (plain or compressed).
        "COMPRESS_EVALUATE_CONDITIONAL_REQUEST": False,
        # OpenAPI (flask-smorest)
        "API_TITLE": "Buckets, Images & Casting API",
        "API_VERSION": RELEASE_VERSION,
        "OPENAPI_VERSION": "3.0.3",
        "API_PREFIX": API_PREFIX,
        "OPENAPI_URL_PREFIX": API_PREFIX,
        "OPENAPI_JSON_PATH": "openapi.json",
    }
    config.update(overrides)
    if config["DB_POOL_SIZE"] is None:
        config["DB_POOL_SIZE"] = config["FAIR_SLOTS"]
    if config["DB_ANSWER_TIMEOUT_MS"] is None:
        statement_ms = config["DB_STATEMENT_TIMEOUT_MS"]
        config["DB_ANSWER_TIMEOUT_MS"] = statement_ms + 1000 if statement_ms else 0
    config["SQLALCHEMY_DATABASE_URI"] = normalize_database_url(config["SQLALCHEMY_DATABASE_URI"])
    config["SQLALCHEMY_ENGINE_OPTIONS"] = {**config["SQLALCHEMY_ENGINE_OPTIONS"], **pool_options(config)}
    _check_replicas(config)
    config["MAX_CONTENT_LENGTH"] = config["MAX_UPLOAD_BYTES"]
    config["LOG_FORMAT"] = _checked_log_format(config["LOG_FORMAT"])
    config["RATELIMIT_STORAGE_URI"] = rate_limit_store(config["RATELIMIT_STORAGE_URI"], config["REDIS_URL"])
    config.update(rate_limit_store_settings(config["RATELIMIT_STORAGE_URI"], config["RATELIMIT_FAIL_CLOSED"]))
    _check_oidc(config)
    _check_mail(config)
    if production:
        check_production_secret(config["SECRET_KEY"])
    return config


def _checked_log_format(value):
    try:
        return logs.log_format(value)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def pool_options(config):
    """Pool sizing for a server database; SQLite's pools are the driver's own business."""
    if config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        return {}
    return {
        "pool_size": config["DB_POOL_SIZE"],
        "max_overflow": config["DB_MAX_OVERFLOW"],
        "pool_timeout": config["DB_POOL_TIMEOUT_SECONDS"],
    }


def rate_limit_store(storage_uri, redis_url):
    """Where the rate-limit counters live: RATELIMIT_STORAGE_URI, else REDIS_URL, else memory://."""
    return storage_uri or redis_url or "memory://"


def rate_limits_counted_apart():
    """From the environment: rate limits are on and each process counts them in its own memory."""
    store = rate_limit_store(_env_str("RATELIMIT_STORAGE_URI", None), _env_str("REDIS_URL", None))
    return _env_bool("RATELIMIT_ENABLED", True) and store.startswith("memory")


def rate_limit_store_settings(uri, fail_closed):
    """Flask-Limiter's settings for a store that may go away.

    Store errors surface as limits' StorageError; a Redis that hangs costs at most a second.
    """
    options = {"wrap_exceptions": True}
    if uri.startswith(("redis", "rediss")):
        options.update(socket_connect_timeout=1, socket_timeout=1)
    return {
        "RATELIMIT_STORAGE_OPTIONS": options,
        "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": not fail_closed,
        "RATELIMIT_SWALLOW_ERRORS": not fail_closed,
    }


def _check_replicas(config):
    """Normalise DATABASE_REPLICA_URLS to a list, refuse what cannot work, and make each replica an
    engine (a Flask-SQLAlchemy bind, `replica1`...) with the primary's engine options."""
    urls = config["DATABASE_REPLICA_URLS"] or []
    if isinstance(urls, str):
        urls = [url.strip() for url in urls.split(",") if url.strip()]
    urls = [normalize_database_url(url) for url in urls]
    config["DATABASE_REPLICA_URLS"] = urls
    if not urls:
        return
    if not all(url.startswith("postgresql") for url in [config["SQLALCHEMY_DATABASE_URI"], *urls]):
        raise ConfigError("DATABASE_REPLICA_URLS are PostgreSQL streaming replicas of a PostgreSQL DATABASE_URL.")
    if not config["REDIS_URL"]:
        raise ConfigError(
            "DATABASE_REPLICA_URLS needs REDIS_URL: every worker and instance keeps the write positions "
            "that let each client read its own writes there (see docs/replicas.md)."
        )
    if config["DATABASE_REPLICA_MAX_LAG_MS"] < 0 or config["DATABASE_REPLICA_RETRY_SECONDS"] < 0:
        raise ConfigError("DATABASE_REPLICA_MAX_LAG_MS and DATABASE_REPLICA_RETRY_SECONDS cannot be negative.")
    replicas = {f"replica{n}": {**config["SQLALCHEMY_ENGINE_OPTIONS"], "url": url} for n, url in enumerate(urls, 1)}
    config["SQLALCHEMY_BINDS"] = {**config.get("SQLALCHEMY_BINDS", {}), **replicas}


def _check_oidc(config):
    """Complete and check the OIDC settings: an issuer needs an audience, and only
    asymmetric algorithms, so no token of the issuer is ever checked like one of ours."""
    issuer = config["OIDC_ISSUER"]
    if not issuer:
        return
    if not config["OIDC_AUDIENCE"]:
        raise ConfigError("OIDC_AUDIENCE must be set when OIDC_ISSUER is (the API identifier at the provider).")
    if not config["OIDC_JWKS_URL"]:
        config["OIDC_JWKS_URL"] = issuer.rstrip("/") + "/.well-known/jwks.json"
    algorithms = config["OIDC_ALGORITHMS"]
    if isinstance(algorithms, str):
        algorithms = [name.strip() for name in algorithms.split(",") if name.strip()]
    if not algorithms or not set(algorithms) <= ASYMMETRIC_ALGORITHMS:
        raise ConfigError(f"OIDC_ALGORITHMS must name some of {', '.join(sorted(ASYMMETRIC_ALGORITHMS))}.")
    config["OIDC_ALGORITHMS"] = algorithms


SMTP_SCHEMES = ("smtp", "smtp+starttls", "smtps")


def _check_mail(config):
    """A malformed SMTP_URL or link template is refused at start; a missing SMTP_URL never is
    (mails then go to the log)."""
    url = config["SMTP_URL"]
    if url:
        parts = urlsplit(url)
        try:
            parts.port  # noqa: B018 (raises for a port that is not a number)
        except ValueError:
            raise ConfigError("SMTP_URL has a port that is not a number.") from None
        if parts.scheme not in SMTP_SCHEMES or not parts.hostname:
            raise ConfigError(
                "SMTP_URL must look like smtp://host:port, smtp+starttls://user:pass@host:587 "
                "or smtps://user:pass@host:465."  # never echo the value: it may hold a password
            )
    for name in ("PASSWORD_RESET_URL", "EMAIL_VERIFY_URL"):
        if "{token}" not in config[name]:
            raise ConfigError(f"{name} must contain {{token}}, where the mail's token goes.")
    if config["MAIL_RETRY_SECONDS"] <= 0 or config["SMTP_TIMEOUT_SECONDS"] <= 0:
        raise ConfigError("MAIL_RETRY_SECONDS and SMTP_TIMEOUT_SECONDS must be positive.")


def check_production_secret(secret):
    if not secret:
        raise ConfigError("SECRET_KEY is not set: production refuses to start without one.")
    if secret in KNOWN_WEAK_SECRETS:
        raise ConfigError("SECRET_KEY is a known default: set a random secret for production.")
    if len(secret.encode("utf-8")) < MIN_SECRET_BYTES:
        raise ConfigError(
            f"SECRET_KEY is too short: production needs at least {MIN_SECRET_BYTES} bytes "
            "(try: python -c 'import secrets; print(secrets.token_urlsafe(48))')."
        )
