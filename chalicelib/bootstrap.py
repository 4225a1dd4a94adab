"""The composition root: the one place where settings, database, queues and services meet.

The API, the webhook Lambda, the runner and the tests all build their collaborators
here. Everything is created lazily (a cold Lambda that serves `/health` does not open
what it does not need) and `reset_container()` lets tests start from a clean slate.
"""
from __future__ import annotations

import threading
from functools import cached_property
from typing import TYPE_CHECKING, Any

from chalicelib.aws_clients import make_client
from chalicelib.config import Settings, load_settings
from chalicelib.crypto import SecretBox
from chalicelib.db import Database, migrator
from chalicelib.errors import DependencyUnavailable
from chalicelib.events import EventPublisher
from chalicelib.metrics import (InvocationMetrics, api_service, record_deliveries, retention_service,
                               webhook_service)
from chalicelib.observability import make_logger
from chalicelib.queues import QueueDirectory
from chalicelib.repositories.audit import AuditRepository
from chalicelib.repositories.sessions import SessionRepository
from chalicelib.services.auth import AuthService, SecretSource
from chalicelib.services.health import HealthService

if TYPE_CHECKING:  # imported lazily below: only the processes that use them pay for them
    from chalicelib.commands import CommandOutbox
    from chalicelib.media import MediaStore
    from chalicelib.repositories.runtime import RuntimeRepository
    from chalicelib.services.api_limits import ApiRateLimiter
    from chalicelib.services.backup import SessionBackup
    from chalicelib.services.account import AccountService
    from chalicelib.services.chats import ChatService
    from chalicelib.services.connections import ConnectionService
    from chalicelib.services.event_feed import EventFeed
    from chalicelib.services.media import MediaService
    from chalicelib.services.messages import MessageService
    from chalicelib.services.proxy import ProxyService
    from chalicelib.services.store import StoreService
    from chalicelib.services.sessions import SessionService


class Container:
    def __init__(self, settings: Settings | None = None, *, service: str = "zemeow-api",
                 outbound_resolver: Any = None, proxy_resolver: Any = None):
        """`outbound_resolver` / `proxy_resolver`: how the network guard looks host names up
        for webhooks and media, and for proxies (`NetPolicy` resolvers; default: the
        system's). Tests pass loopback-only ones (chalicelib/netguard/offline.py)."""
        self._settings = settings
        self.service = service
        self._outbound_resolver = outbound_resolver
        self._proxy_resolver = proxy_resolver
        self._schema_ready = False
        self._schema_lock = threading.Lock()
        self._embedded: Any = None

    @cached_property
    def settings(self) -> Settings:
        return self._settings or load_settings()

    @cached_property
    def logger(self):
        return make_logger(self.service, level=self.settings.log_level, pretty=self.settings.log_pretty)

    @cached_property
    def database_url(self) -> str:
        if self.settings.database_secret_arn:  # AWS: credentials from Secrets Manager
            return self._database_url_from_secret()
        if self.settings.database_url:
            return self.settings.database_url
        from chalicelib.db.embedded import start_embedded  # noqa: PLC0415 - dev only

        self._embedded = start_embedded(self.settings.data_dir / "pgdata")
        return self._embedded.get_uri()

    @cached_property
    def db(self) -> Database:
        return Database(
            self.database_url,
            max_size=self.settings.db_pool_max_size,
            connect_timeout=self.settings.db_connect_timeout,
            statement_timeout=self.settings.db_statement_timeout,
            application_name=self.service,
        )

    def _database_url_from_secret(self) -> str:
        import json  # noqa: PLC0415

        from chalicelib.config import database_url_with_secret  # noqa: PLC0415

        try:
            answer = self.secretsmanager.get_secret_value(SecretId=self.settings.database_secret_arn)
            secret = json.loads(answer["SecretString"])
        except Exception as exc:  # noqa: BLE001 - one readable 503, never the secret
            raise DependencyUnavailable(f"cannot read DATABASE_SECRET_ARN: {exc.__class__.__name__}",
                                        code="database_unavailable") from None
        return database_url_with_secret(self.settings.database_url, secret)

    def ensure_schema(self) -> None:
        """Apply pending migrations once per process (cheap no-op afterwards)."""
        if self._schema_ready:
            return
        with self._schema_lock:
            if self._schema_ready:
                return
            with self.db.connection() as conn:
                applied = migrator.migrate(conn)
            if applied:
                self.logger.info("migrations applied", extra={"versions": applied})
            self._schema_ready = True

    @cached_property
    def sqs(self) -> Any:
        return make_client("sqs", self.settings)

    @cached_property
    def queues(self) -> QueueDirectory:
        return QueueDirectory(self.sqs, self.settings)

    @cached_property
    def health(self) -> HealthService:
        # Health checks use their own fail-fast client: one try, short timeouts.
        fast_sqs = make_client("sqs", self.settings, connect_timeout=2, read_timeout=3, max_attempts=1)
        return HealthService(self.settings, self.db, QueueDirectory(fast_sqs, self.settings))

    @cached_property
    def secretsmanager(self) -> Any:
        return make_client("secretsmanager", self.settings, read_timeout=5)

    @cached_property
    def admin_key(self) -> SecretSource:
        return SecretSource("admin key", self.settings.admin_api_key,
                            self.settings.admin_api_key_secret_arn, lambda: self.secretsmanager)

    @cached_property
    def encryption_key(self) -> SecretSource:
        return SecretSource("encryption key", self.settings.encryption_key,
                            self.settings.encryption_key_secret_arn, lambda: self.secretsmanager)

    def secret_box(self) -> SecretBox:
        """AES-GCM box for secrets at rest; rebuilt only when the key material changes."""
        key = self.encryption_key.get()
        if not key:
            raise DependencyUnavailable("ENCRYPTION_KEY (or ENCRYPTION_KEY_SECRET_ARN) is not configured",
                                        code="encryption_unavailable")
        cached = self.__dict__.get("_secret_box")
        if cached is None or cached[0] != key:
            cached = (key, SecretBox(key))
            self.__dict__["_secret_box"] = cached
        return cached[1]

    @cached_property
    def session_repo(self) -> SessionRepository:
        return SessionRepository(self.db)

    @cached_property
    def audit_repo(self) -> AuditRepository:
        return AuditRepository(self.db)

    @cached_property
    def events(self) -> EventPublisher:
        return EventPublisher(self.db, self.sqs, lambda: self.queues.events_url)

    @cached_property
    def auth(self) -> AuthService:
        # a session key's lookup also charges its request against API_RATE_LIMIT (one round trip)
        return AuthService(self.admin_key, self.api_limits.find_session_by_digest)

    @cached_property
    def api_limits(self) -> "ApiRateLimiter":
        from chalicelib.repositories.rate_limits import RateLimitRepository  # noqa: PLC0415
        from chalicelib.services.api_limits import ApiRateLimiter  # noqa: PLC0415

        return ApiRateLimiter(RateLimitRepository(self.db), session_limit=self.settings.api_rate_limit,
                              admin_limit=self.settings.api_admin_rate_limit,
                              find_by_key_digest=self.session_repo.find_by_key_digest)

    @cached_property
    def sessions(self) -> SessionService:
        from chalicelib.services.sessions import SessionService  # noqa: PLC0415 - loads the session schemas

        return SessionService(self.db, self.session_repo, self.events, self.secret_box,
                              before_delete=self.connections.logout_before_delete,
                              check_webhook_url=self.webhook_url_check,
                              check_proxy=self.proxy_host_check,
                              after_delete=lambda row: self.media.forget_session(str(row["id"])),
                              commands=self.commands)

    @cached_property
    def backup(self) -> "SessionBackup":
        from chalicelib.services.backup import SessionBackup  # noqa: PLC0415

        return SessionBackup(self.sessions, self.secret_box)

    @cached_property
    def commands(self) -> "CommandOutbox":
        from chalicelib.commands import CommandOutbox  # noqa: PLC0415
        from chalicelib.repositories.placement import PlacementRepository  # noqa: PLC0415

        placement = PlacementRepository(self.db)
        ttl = self.settings.runner_lease_ttl
        return CommandOutbox(self.db, self.sqs, lambda session_id: placement.queue_url_for_session(session_id, ttl)[1],
                             logger=self.logger)

    @cached_property
    def runtime_repo(self) -> "RuntimeRepository":
        from chalicelib.repositories.runtime import RuntimeRepository  # noqa: PLC0415

        return RuntimeRepository(self.db)

    @cached_property
    def connections(self) -> "ConnectionService":
        from chalicelib.repositories.runners import RunnerRepository  # noqa: PLC0415
        from chalicelib.services.connections import ConnectionService  # noqa: PLC0415

        return ConnectionService(self.db, self.session_repo, self.runtime_repo, self.commands,
                                 RunnerRepository(self.db), lease_ttl=self.settings.runner_lease_ttl)

    @cached_property
    def proxies(self) -> "ProxyService":
        from chalicelib.repositories.rate_limits import RateLimitRepository  # noqa: PLC0415
        from chalicelib.services.proxy import ProxyProber, ProxyService  # noqa: PLC0415

        # PROXY_ALLOW_PRIVATE decides (refused in production); the policy's resolver decides
        # which names and addresses exist (tests inject a loopback-only one)
        prober = ProxyProber(policy=self.proxy_policy)
        return ProxyService(self.sessions, self.session_repo.get, self.secret_box, prober,
                            rate_limits=RateLimitRepository(self.db),
                            rate_limit=self.settings.proxy_test_rate_limit)

    # -- network guards (chalicelib/netguard) --------------------------------------------
    @cached_property
    def outbound_policy(self):
        """Webhook deliveries and media downloads: WEBHOOK_ALLOW_PRIVATE."""
        from chalicelib.netguard.resolve import NetPolicy  # noqa: PLC0415

        return NetPolicy.from_settings(self.settings, allow_private=self.settings.webhook_allow_private,
                                       resolver=self._outbound_resolver)

    @cached_property
    def proxy_policy(self):
        """Session proxies (save, probe, the runner's dial): PROXY_ALLOW_PRIVATE."""
        from chalicelib.netguard.resolve import NetPolicy  # noqa: PLC0415

        return NetPolicy.from_settings(self.settings, allow_private=self.settings.proxy_allow_private,
                                       resolver=self._proxy_resolver)

    @cached_property
    def proxy_host_check(self):
        from chalicelib.netguard.validation import proxy_host_checker  # noqa: PLC0415

        return proxy_host_checker(lambda: self.proxy_policy)

    # -- webhooks (issue 5) -------------------------------------------------------------
    @cached_property
    def webhook_url_check(self):
        from chalicelib.netguard.validation import webhook_url_checker  # noqa: PLC0415

        return webhook_url_checker(lambda: self.outbound_policy)

    @cached_property
    def webhook_repo(self):
        from chalicelib.repositories.webhooks import WebhookRepository  # noqa: PLC0415

        return WebhookRepository(self.db)

    @cached_property
    def webhooks(self):
        from chalicelib.webhooks.service import WebhookService  # noqa: PLC0415

        return WebhookService(self.webhook_repo, self.queues, self.secret_box, self.webhook_url_check,
                              self.session_repo.get)

    @cached_property
    def webhook_dispatcher(self):
        from chalicelib.webhooks.breaker import BreakerConfig  # noqa: PLC0415
        from chalicelib.webhooks.dispatcher import WebhookDispatcher  # noqa: PLC0415
        from chalicelib.webhooks.retry import RetryPolicy  # noqa: PLC0415

        s = self.settings
        return WebhookDispatcher(
            repo=self.webhook_repo, sqs=self.sqs, events_queue_url=lambda: self.queues.events_url,
            dlq_url=lambda: self.queues.events_dlq_url, secret_box=self.secret_box,
            policy=RetryPolicy.from_settings(s.webhook_retry_schedule, s.webhook_retry_count),
            breaker_config=BreakerConfig.from_settings(s), timeout=s.webhook_timeout,
            net_policy=self.outbound_policy, session_concurrency=s.webhook_session_concurrency,
            logger=self.logger, observe=lambda statuses, latencies, opens: record_deliveries(
                self.webhook_metrics, statuses, latencies, opens))

    @cached_property
    def api_metrics(self) -> InvocationMetrics:
        return InvocationMetrics(api_service(self.settings.queue_prefix))

    @cached_property
    def webhook_metrics(self) -> InvocationMetrics:
        return InvocationMetrics(webhook_service(self.settings.queue_prefix))

    @cached_property
    def retention_metrics(self) -> InvocationMetrics:
        return InvocationMetrics(retention_service(self.settings.queue_prefix))

    @cached_property
    def messages(self) -> "MessageService":
        from chalicelib.services.messages import MessageService  # noqa: PLC0415

        return MessageService(self.session_repo, self.commands,
                              lambda url: self.outbound_policy.check_url(url, what="media_url",
                                                                         unresolvable_ok=True),
                              check_media_key=self.media.check_for_send if self.media_store else None)

    # -- media (issue 6) ------------------------------------------------------------------
    @cached_property
    def media_store(self) -> "MediaStore | None":
        """The S3 media bucket, or None without MEDIA_BUCKET."""
        if not self.settings.media_bucket:
            return None
        from chalicelib.media import MediaStore  # noqa: PLC0415

        return MediaStore(make_client("s3", self.settings), self.settings.media_bucket,
                          url_ttl=self.settings.media_url_ttl)

    @cached_property
    def media(self) -> "MediaService":
        from chalicelib.services.media import MediaService  # noqa: PLC0415

        return MediaService(self.media_store, self.session_repo, max_bytes=self.settings.media_max_bytes,
                            logger=self.logger)

    @cached_property
    def event_feed(self) -> "EventFeed":
        from chalicelib.services.event_feed import EventFeed  # noqa: PLC0415

        return EventFeed(self.db, self.session_repo.status_of, self.settings.event_retention)

    @cached_property
    def chats(self) -> "ChatService":
        from chalicelib.repositories.rate_limits import RateLimitRepository  # noqa: PLC0415
        from chalicelib.services.chats import ChatService  # noqa: PLC0415

        return ChatService(self.session_repo, self.commands, RateLimitRepository(self.db),
                           max_batch=self.settings.contacts_check_max_batch,
                           rate_limit=self.settings.contacts_check_rate_limit)

    @cached_property
    def account(self) -> "AccountService":
        from chalicelib.services.account import AccountService  # noqa: PLC0415

        return AccountService(self.session_repo, self.commands,
                              check_media_key=self.media.check_for_send if self.media_store else None)

    @cached_property
    def store(self) -> "StoreService":
        from chalicelib.repositories.store_reads import StoreReadRepository  # noqa: PLC0415
        from chalicelib.services.store import StoreService  # noqa: PLC0415

        return StoreService(StoreReadRepository(self.db), self.session_repo.status_of, self.commands,
                            profile_ttl=self.settings.contact_profile_ttl)

    @cached_property
    def retention(self):
        from chalicelib.services.retention import RetentionService  # noqa: PLC0415 - the hourly job only

        s = self.settings
        return RetentionService(self.db, s.retention, batch_size=s.retention_batch_size,
                                budget=s.retention_time_budget, logger=self.logger)

    def close(self) -> None:
        if "commands" in self.__dict__:
            self.commands.close()  # sends still in flight beside a wait
        if "db" in self.__dict__:
            self.db.close()


_container: Container | None = None
_container_lock = threading.Lock()


def get_container() -> Container:
    global _container
    with _container_lock:
        if _container is None:
            _container = Container()
        return _container


def reset_container(container: Container | None = None) -> None:
    """Replace the process-wide container (tests); closes the old one's pool."""
    global _container
    with _container_lock:
        old, _container = _container, container
    if old is not None and old is not container:
        old.close()
