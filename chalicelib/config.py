"""Configuration: every environment variable zemeow reads, parsed and validated once.

`load_settings()` turns the environment into a frozen `Settings`. A bad value raises
`ConfigError` naming the variable, the value's problem and the accepted form, so the
API, the runner and the local launcher all stop at start-up with the same message.

Precedence for the database: `DATABASE_URL` wins over `POSTGRES_HOST/PORT/DB/USER/
PASSWORD`, which win over the embedded server (`database_url` is then None and the
composition root starts `pgserver` under `DATA_DIR`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar
from urllib.parse import quote

from chalicelib.messaging.store_records import HISTORY_MODES, MODES as STORE_MODES
from chalicelib.config_values import (  # noqa: F401 - also imported from here
    DEFAULT_MEDIA_MAX_BYTES, DEFAULT_WEBHOOK_RETRY_SCHEDULE, DRIVERS, ENVIRONMENTS, INBOUND_MEDIA_MODES,
    LOG_LEVELS, MAX_PRESIGN_SECONDS, QUEUE_PREFIX_PATTERN, RATE_LIMIT_SETTINGS, parse_bool, parse_duration,
    parse_origins, parse_port, parse_rate, parse_rate_or_off, _parse_bind_host, _parse_bucket, _parse_choice,
    _parse_database_url, _parse_emulator_token, _parse_int_range, _parse_queue_prefix, _parse_retention,
    _parse_schedule, _parse_url, _parse_url_ttl,
)
from chalicelib.errors import ConfigError

T = TypeVar("T")

class _Reader:
    """Reads variables from a mapping, collecting every problem before failing."""

    def __init__(self, env: Mapping[str, str]):
        self.env = env
        self.problems: list[str] = []

    def get(self, name: str, parse: Callable[[str], Any], default: T) -> Any:
        raw = self.env.get(name)
        if raw is None or raw.strip() == "":
            return default
        try:
            return parse(raw)
        except ValueError as exc:
            shown = raw if len(raw) <= 40 else raw[:37] + "..."
            if _is_secret(name):
                shown = "<hidden>"
            self.problems.append(f"{name}={shown!s}: {exc}")
            return default

    def text(self, name: str, default: str | None = None) -> str | None:
        raw = self.env.get(name)
        if raw is None or raw.strip() == "":
            return default
        return raw.strip()


def _is_secret(name: str) -> bool:
    return name == "DATABASE_URL" or any(word in name for word in ("KEY", "PASSWORD", "SECRET", "TOKEN"))


@dataclass(frozen=True)
class Settings:
    environment: str = "development"
    server_port: int = 8080
    database_url: str | None = None  # None: the embedded server under data_dir
    database_secret_arn: str | None = None  # RDS-shaped JSON secret: username/password (+host/port/dbname)
    data_dir: Path = Path(".zemeow")
    admin_api_key: str | None = None
    admin_api_key_secret_arn: str | None = None
    encryption_key: str | None = None
    encryption_key_secret_arn: str | None = None
    qr_code_timeout: float = 60.0
    event_retention: float = 7 * 86400.0  # GET /sessions/{id}/events reads back this far; sent ones older are pruned
    log_level: str = "INFO"
    log_pretty: bool = False
    webhook_timeout: float = 10.0
    webhook_retry_count: int = 7
    webhook_retry_schedule: tuple[float, ...] = DEFAULT_WEBHOOK_RETRY_SCHEDULE
    webhook_allow_private: bool = False
    webhook_session_concurrency: int = 8  # POSTs in flight per session in one dispatcher
    webhook_breaker_threshold: int = 5  # consecutive failures that open an endpoint's breaker
    webhook_breaker_cooldown: float = 30.0  # seconds open before a half-open probe
    aws_credentials_configured: bool = False  # AWS_ACCESS_KEY_ID or AWS_PROFILE set
    proxy_allow_private: bool = False  # session proxies on private/loopback addresses (dev, tests)
    proxy_test_rate_limit: tuple[int, float] = (20, 60.0)  # POST /proxy/test per session
    whatsapp_driver: str = "neonize"
    emulator_port: int = 8081
    emulator_token: str | None = None  # X-Emulator-Token of the emulator's control API; required by it
    emulator_wire_log: Path | None = None  # the emulator appends every message it "sends" here (bench/faults.py)
    metrics_port: int = 9100
    runner_bind_host: str = "127.0.0.1"  # where the runner's /metrics and /healthz listen
    aws_endpoint_url: str | None = None
    aws_region: str = "us-east-1"
    queue_prefix: str = "zemeow"
    db_pool_max_size: int = 10
    db_connect_timeout: float = 5.0
    db_statement_timeout: float = 15.0
    runner_id: str | None = None
    runner_heartbeat_interval: float = 1.0  # also the placement tick: how soon a killed runner's slots move
    runner_lease_ttl: float = 15.0  # a frozen runner's slots move after it; a killed one's at once (lifeline)
    runner_max_sessions: int = 0  # placement never gives a runner more sessions than this; 0: no cap
    runner_memory_high_mb: int = 0  # above this resident memory a runner takes no more sessions; 0: off
    placement_step: int = 500  # sessions a runner takes (or gives) per placement tick, at most
    runner_lifeline: bool = True  # off: liveness by heartbeat and TTL only (a transaction-mode pooler in between)
    runner_reconcile_interval: float = 10.0  # sessions checked against desired_state, stale commands rerun
    reconnect_backoff_base: float = 1.0
    reconnect_backoff_max: float = 60.0
    command_stale_after: float = 5.0  # queued commands older than this are resent / run from the table
    emulator_qr_rotate: float = 20.0
    sessions_metric_interval: float = 60.0  # zemeow/Runner Sessions (runner_container/sessions_metric.py)
    max_body_bytes: int = 1024 * 1024
    contacts_check_max_batch: int = 50  # numbers per POST /contacts/check
    contacts_check_rate_limit: tuple[int, float] = (200, 3600.0)  # numbers per period, per session
    api_rate_limit: tuple[int, float] | None = (600, 60.0)  # requests per period, per session key; None: off
    api_admin_rate_limit: tuple[int, float] | None = (6000, 60.0)  # the same for the admin key
    cors_allow_origins: tuple[str, ...] = ()  # browser origins allowed to call the API; () = none
    media_bucket: str | None = None  # None: no media storage (upload-url answers 503, inbound media has no URL)
    media_max_bytes: int = DEFAULT_MEDIA_MAX_BYTES  # outgoing media: upload-url `size` and the runner's fetch cap
    inbound_media: str = "off"  # s3: the runner stores received media in the bucket; off: events say why not
    inbound_media_max_bytes: int = DEFAULT_MEDIA_MAX_BYTES
    media_url_ttl: float = float(MAX_PRESIGN_SECONDS)  # lifetime of presigned GET URLs for stored media
    # retention (chalicelib/services/retention.py): seconds a finished row is kept; None: forever
    command_retention: float | None = 7 * 86400.0
    webhook_delivery_retention: float | None = 3 * 86400.0  # delivered
    webhook_failed_delivery_retention: float | None = 30 * 86400.0  # failed or skipped: redeliverable
    audit_log_retention: float | None = 90 * 86400.0
    rate_limit_retention: float | None = 86400.0  # at least the longest rate-limit period
    poll_retention: float | None = 90 * 86400.0  # a vote on an older poll arrives without option names
    message_store_retention: float | None = 90 * 86400.0  # messages (by their timestamp), chats, contacts
    message_store: str = "full"  # full | metadata (no text, captions, content, media refs) | off
    history_sync: str = "recent"  # off | recent | full: what of the history a new device gets is stored
    contact_profile_ttl: float = 86400.0  # about text and picture URL fetched through the runner, cached
    retention_batch_size: int = 1000
    retention_time_budget: float = 25.0  # per run; the scheduled Lambda's timeout is 30 s
    version: str = field(default="0.1.0")

    @property
    def retention(self) -> dict[str, float | None]:
        """Rule name (chalicelib/repositories/retention.py RULES) -> seconds kept."""
        return {"event_outbox": self.event_retention, "commands": self.command_retention,
                "webhook_deliveries_delivered": self.webhook_delivery_retention,
                "webhook_deliveries_failed": self.webhook_failed_delivery_retention,
                "audit_log": self.audit_log_retention, "rate_limits": self.rate_limit_retention,
                "poll_secrets": self.poll_retention,
                "messages": self.message_store_retention, "chats": self.message_store_retention,
                "contacts": self.message_store_retention}

    @property
    def events_queue_name(self) -> str:
        return events_queue_name(self.queue_prefix)

    @property
    def events_dlq_name(self) -> str:
        return f"{self.queue_prefix}-events-dlq"

    @property
    def command_dlq_name(self) -> str:
        return f"{self.queue_prefix}-commands-dlq.fifo"

    @property
    def messaging_stack_name(self) -> str:
        return f"{self.queue_prefix}-messaging"

    def __repr__(self) -> str:  # never print secrets, even in a traceback
        hidden = {"admin_api_key", "encryption_key", "database_url", "emulator_token"}
        shown = ", ".join(
            f"{name}={'<set>' if name in hidden and getattr(self, name) else getattr(self, name)!r}"
            for name in self.__dataclass_fields__
        )
        return f"Settings({shown})"


def events_queue_name(prefix: str) -> str:
    return f"{prefix}-events"


def queue_prefix_from_env(env: Mapping[str, str] | None = None) -> str:
    """The queue prefix alone, for decorators evaluated when `app.py` is imported."""
    env = os.environ if env is None else env
    return _Reader(env).get("QUEUE_PREFIX", _parse_queue_prefix, "zemeow")


def _database_url(reader: _Reader) -> str | None:
    url = reader.get("DATABASE_URL", _parse_database_url, None)
    if url:
        return url
    host = reader.text("POSTGRES_HOST")
    if not host:
        return None
    port = reader.get("POSTGRES_PORT", parse_port, 5432)
    db = reader.text("POSTGRES_DB", "zemeow")
    user = reader.text("POSTGRES_USER", "zemeow")
    password = reader.text("POSTGRES_PASSWORD", "")
    credentials = quote(user or "", safe="")
    if password:
        credentials += ":" + quote(password, safe="")
    return f"postgresql://{credentials}@{host}:{port}/{quote(db or '', safe='')}"


def database_url_with_secret(url: str | None, secret: Mapping[str, object]) -> str:
    """Complete a database URL with a `DATABASE_SECRET_ARN` secret (the JSON RDS and
    Secrets Manager write: username, password, host, port, dbname). The secret's
    username and password always win; host, port and database come from the URL
    (DATABASE_URL or POSTGRES_HOST/PORT/DB, e.g. the RDS Proxy endpoint) when one is
    configured, else from the secret."""
    from urllib.parse import urlsplit, urlunsplit  # noqa: PLC0415

    user = quote(str(secret.get("username") or ""), safe="")
    password = quote(str(secret.get("password") or ""), safe="")
    credentials = user + (":" + password if password else "")
    if url:
        parts = urlsplit(url)
        netloc = parts.netloc.rsplit("@", 1)[-1]
        return urlunsplit((parts.scheme, f"{credentials}@{netloc}", parts.path, parts.query, parts.fragment))
    host = secret.get("host")
    if not host:
        raise ConfigError(["DATABASE_SECRET_ARN: the secret has no host; set POSTGRES_HOST or DATABASE_URL"])
    port = secret.get("port") or 5432
    dbname = quote(str(secret.get("dbname") or "zemeow"), safe="")
    return f"postgresql://{credentials}@{host}:{port}/{dbname}"


def _media_settings(r: _Reader) -> dict[str, Any]:
    """MEDIA_BUCKET and what depends on it. INBOUND_MEDIA defaults to `s3` when a bucket is
    configured; asking for `s3` without one is an error (it could never store anything)."""
    bucket = r.get("MEDIA_BUCKET", _parse_bucket, None)
    # outgoing media passes through the runner's memory and WhatsApp's upload: 64 MiB at most
    max_bytes = r.get("MEDIA_MAX_BYTES", _parse_int_range(1024, DEFAULT_MEDIA_MAX_BYTES), DEFAULT_MEDIA_MAX_BYTES)
    inbound = r.get("INBOUND_MEDIA", _parse_choice(INBOUND_MEDIA_MODES), "s3" if bucket else "off")
    if inbound == "s3" and not bucket and r.text("MEDIA_BUCKET") is None:
        r.problems.append("INBOUND_MEDIA=s3 needs MEDIA_BUCKET (the bucket the runner stores received media in)")
    return {
        "media_bucket": bucket,
        "media_max_bytes": max_bytes,
        "inbound_media": inbound,
        "inbound_media_max_bytes": r.get("INBOUND_MEDIA_MAX_BYTES", _parse_int_range(1024, 512 * 1024 ** 2),
                                         DEFAULT_MEDIA_MAX_BYTES),
        "media_url_ttl": r.get("MEDIA_URL_TTL", _parse_url_ttl, float(MAX_PRESIGN_SECONDS)),
    }


def _retention_settings(r: _Reader) -> dict[str, Any]:
    return {
        "command_retention": r.get("COMMAND_RETENTION", _parse_retention, 7 * 86400.0),
        "webhook_delivery_retention": r.get("WEBHOOK_DELIVERY_RETENTION", _parse_retention, 3 * 86400.0),
        "webhook_failed_delivery_retention": r.get("WEBHOOK_FAILED_DELIVERY_RETENTION", _parse_retention,
                                                   30 * 86400.0),
        "audit_log_retention": r.get("AUDIT_LOG_RETENTION", _parse_retention, 90 * 86400.0),
        "rate_limit_retention": r.get("RATE_LIMIT_RETENTION", _parse_retention, 86400.0),
        "poll_retention": r.get("POLL_RETENTION", _parse_retention, 90 * 86400.0),
        "message_store_retention": r.get("MESSAGE_STORE_RETENTION", _parse_retention, 90 * 86400.0),
        "message_store": r.get("MESSAGE_STORE", _parse_choice(STORE_MODES), "full"),
        "history_sync": r.get("HISTORY_SYNC", _parse_choice(HISTORY_MODES), "recent"),
        "contact_profile_ttl": r.get("CONTACT_PROFILE_TTL", parse_duration, 86400.0),
        "retention_batch_size": r.get("RETENTION_BATCH_SIZE", _parse_int_range(10, 50_000), 1000),
        "retention_time_budget": r.get("RETENTION_TIME_BUDGET", parse_duration, 25.0),
    }


def _runner_tuning(r: _Reader) -> dict[str, Any]:
    return {"runner_reconcile_interval": r.get("RUNNER_RECONCILE_INTERVAL", parse_duration, 10.0),
            "reconnect_backoff_base": r.get("RECONNECT_BACKOFF_BASE", parse_duration, 1.0),
            "reconnect_backoff_max": r.get("RECONNECT_BACKOFF_MAX", parse_duration, 60.0),
            "command_stale_after": r.get("COMMAND_STALE_AFTER", parse_duration, 5.0),
            "emulator_qr_rotate": r.get("EMULATOR_QR_ROTATE", parse_duration, 20.0),
            "sessions_metric_interval": r.get("SESSIONS_METRIC_INTERVAL", parse_duration, 60.0),
            "runner_max_sessions": r.get("RUNNER_MAX_SESSIONS", _parse_int_range(0, 1_000_000), 0),
            "runner_memory_high_mb": r.get("RUNNER_MEMORY_HIGH_MB", _parse_int_range(0, 1_000_000), 0),
            "placement_step": r.get("PLACEMENT_STEP", _parse_int_range(1, 100_000), 500)}


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Parse the environment; raise ConfigError listing every bad variable."""
    env = os.environ if env is None else env
    r = _Reader(env)
    in_lambda = bool(env.get("AWS_LAMBDA_FUNCTION_NAME"))
    settings = Settings(
        environment=r.get("ENVIRONMENT", _parse_choice(ENVIRONMENTS), "development"),
        server_port=r.get("SERVER_PORT", parse_port, 8080),
        database_url=_database_url(r),
        database_secret_arn=r.text("DATABASE_SECRET_ARN"),
        data_dir=Path(r.text("DATA_DIR", ".zemeow") or ".zemeow"),
        admin_api_key=r.text("ADMIN_API_KEY"),
        admin_api_key_secret_arn=r.text("ADMIN_API_KEY_SECRET_ARN"),
        encryption_key=r.text("ENCRYPTION_KEY"),
        encryption_key_secret_arn=r.text("ENCRYPTION_KEY_SECRET_ARN"),
        qr_code_timeout=r.get("QR_CODE_TIMEOUT", parse_duration, 60.0),
        event_retention=r.get("EVENT_RETENTION", parse_duration, 7 * 86400.0),
        log_level=r.get("LOG_LEVEL", _parse_choice(LOG_LEVELS, upper=True), "INFO"),
        log_pretty=r.get("LOG_PRETTY", parse_bool, False),
        proxy_allow_private=r.get("PROXY_ALLOW_PRIVATE", parse_bool, False),
        proxy_test_rate_limit=r.get("PROXY_TEST_RATE_LIMIT", parse_rate, (20, 60.0)),
        whatsapp_driver=r.get("WHATSAPP_DRIVER", _parse_choice(DRIVERS), "neonize"),
        emulator_port=r.get("EMULATOR_PORT", parse_port, 8081),
        emulator_token=r.get("EMULATOR_TOKEN", _parse_emulator_token, None),
        emulator_wire_log=Path(wire) if (wire := r.text("EMULATOR_WIRE_LOG")) else None,
        metrics_port=r.get("METRICS_PORT", parse_port, 9100),
        runner_bind_host=r.get("RUNNER_BIND_HOST", _parse_bind_host, "127.0.0.1"),
        aws_endpoint_url=r.get("AWS_ENDPOINT_URL", _parse_url, None),
        aws_region=r.text("AWS_REGION") or r.text("AWS_DEFAULT_REGION") or "us-east-1",
        aws_credentials_configured=bool(r.text("AWS_ACCESS_KEY_ID") or r.text("AWS_PROFILE")),
        queue_prefix=r.get("QUEUE_PREFIX", _parse_queue_prefix, "zemeow"),
        db_pool_max_size=r.get("DB_POOL_MAX_SIZE", _parse_int_range(1, 100), 1 if in_lambda else 10),
        db_connect_timeout=r.get("DB_CONNECT_TIMEOUT", parse_duration, 5.0),
        db_statement_timeout=r.get("DB_STATEMENT_TIMEOUT", parse_duration, 15.0),
        runner_id=r.text("RUNNER_ID"),
        runner_heartbeat_interval=r.get("RUNNER_HEARTBEAT_INTERVAL", parse_duration, 1.0),
        runner_lifeline=r.get("RUNNER_LIFELINE", parse_bool, True),
        runner_lease_ttl=r.get("RUNNER_LEASE_TTL", parse_duration, 15.0),
        **_runner_tuning(r),
        max_body_bytes=r.get("MAX_BODY_BYTES", _parse_int_range(1024, 6 * 1024 * 1024), 1024 * 1024),
        contacts_check_max_batch=r.get("CONTACTS_CHECK_MAX_BATCH", _parse_int_range(1, 500), 50),
        contacts_check_rate_limit=r.get("CONTACTS_CHECK_RATE_LIMIT", parse_rate, (200, 3600.0)),
        api_rate_limit=r.get("API_RATE_LIMIT", parse_rate_or_off, (600, 60.0)),
        api_admin_rate_limit=r.get("API_ADMIN_RATE_LIMIT", parse_rate_or_off, (6000, 60.0)),
        cors_allow_origins=r.get("CORS_ALLOW_ORIGINS", parse_origins, ()),
        **_media_settings(r),
        **_retention_settings(r),
        **_webhook_settings(r),
    )
    _cross_checks(settings, r)
    if r.problems:
        raise ConfigError(r.problems)
    return settings


def _parse_breaker_threshold(text: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise ValueError("expected a whole number of consecutive failures, e.g. 5") from None
    return max(1, value)  # 0 or less: the first failure opens it


def _webhook_settings(r: _Reader) -> dict[str, Any]:
    return {
        "webhook_timeout": r.get("WEBHOOK_TIMEOUT", parse_duration, 10.0),
        "webhook_retry_count": r.get("WEBHOOK_RETRY_COUNT", _parse_int_range(0, 50), 7),
        "webhook_retry_schedule": r.get("WEBHOOK_RETRY_SCHEDULE", _parse_schedule, DEFAULT_WEBHOOK_RETRY_SCHEDULE),
        "webhook_allow_private": r.get("WEBHOOK_ALLOW_PRIVATE", parse_bool, False),
        "webhook_session_concurrency": r.get("WEBHOOK_SESSION_CONCURRENCY", _parse_int_range(1, 64), 8),
        "webhook_breaker_threshold": r.get("WEBHOOK_BREAKER_THRESHOLD", _parse_breaker_threshold, 5),
        "webhook_breaker_cooldown": r.get("WEBHOOK_BREAKER_COOLDOWN", parse_duration, 30.0),
    }


def _cross_checks(settings: Settings, r: _Reader) -> None:
    """Rules between variables, and what production refuses."""
    if settings.runner_lease_ttl <= settings.runner_heartbeat_interval:
        r.problems.append(
            "RUNNER_LEASE_TTL must be longer than RUNNER_HEARTBEAT_INTERVAL "
            f"(got {settings.runner_lease_ttl:g}s <= {settings.runner_heartbeat_interval:g}s)"
        )
    if settings.contacts_check_rate_limit[0] < settings.contacts_check_max_batch:
        r.problems.append(
            "CONTACTS_CHECK_RATE_LIMIT must allow at least one full batch of CONTACTS_CHECK_MAX_BATCH numbers "
            f"(got {settings.contacts_check_rate_limit[0]} < {settings.contacts_check_max_batch})"
        )
    _retention_checks(settings, r)
    _production_refusals(settings, r)


def _retention_checks(settings: Settings, r: _Reader) -> None:
    name, longest_period = max(((name, getattr(settings, field)[1]) for name, field in RATE_LIMIT_SETTINGS.items()
                                if getattr(settings, field, None)), key=lambda item: item[1])
    if settings.rate_limit_retention is not None and settings.rate_limit_retention < longest_period:
        # a bucket deleted before it has refilled would hand its session a fresh allowance
        r.problems.append(f"RATE_LIMIT_RETENTION must be at least the longest rate-limit period "
                          f"({name}: {longest_period:g}s)")
    failed, delivered = settings.webhook_failed_delivery_retention, settings.webhook_delivery_retention
    if failed is not None and (delivered is None or failed < delivered):
        r.problems.append("WEBHOOK_FAILED_DELIVERY_RETENTION must not be shorter than WEBHOOK_DELIVERY_RETENTION "
                          "(failed deliveries are the ones a user redelivers)")


def _production_refusals(settings: Settings, r: _Reader) -> None:
    if settings.environment == "production" and settings.webhook_allow_private:
        r.problems.append("WEBHOOK_ALLOW_PRIVATE=true is refused when ENVIRONMENT=production")
    if settings.environment == "production" and settings.whatsapp_driver == "emulator":
        # its control API pairs and drives any session: a stand-in for tests and demos only
        r.problems.append("WHATSAPP_DRIVER=emulator is refused when ENVIRONMENT=production "
                          "(use neonize; the emulator is for development and tests)")
    if settings.environment == "production" and settings.proxy_allow_private:
        r.problems.append("PROXY_ALLOW_PRIVATE=true is refused when ENVIRONMENT=production")
