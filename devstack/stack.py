"""The local stack, piece by piece: database, LocalStack, messaging stack, API, runner,
SQS bridge. `make run` starts all of it; the test suite starts what it needs through
the same code, with its own database and queue prefix so it can run beside `make run`.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit, urlunsplit

import psycopg
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.aws_clients import make_client
from chalicelib.config import Settings, load_settings
from chalicelib.db import migrator
from chalicelib.db.embedded import start_embedded
from chalicelib.repositories.events import EventOutboxRepository
from devstack import PROJECT_ROOT
from devstack.localstack import LocalStackHandle, ensure_localstack, is_ready
from devstack.messaging_stack import MEDIA_TEMPLATE_PATH, delete_stack, deploy_messaging_stack
from devstack.processes import Child, start_child, wait_http

VENV_BIN = Path(sys.executable).parent


class LocalStackEnvironment:
    """Owns every resource it starts and stops exactly those in `stop()`."""

    def __init__(self, env: dict[str, str], *, database_name: str = "zemeow",
                 log: Callable[[str], None] = print, fresh_database: bool = False):
        self.env = dict(env)
        self.database_name = database_name
        self.fresh_database = fresh_database
        self.log = log
        self.settings: Settings = load_settings(self.env)
        self.data_dir = (PROJECT_ROOT / self.settings.data_dir).resolve() \
            if not self.settings.data_dir.is_absolute() else self.settings.data_dir
        self.env["DATA_DIR"] = str(self.data_dir)
        self.localstack: LocalStackHandle | None = None
        self.embedded = None
        self.children: list[Child] = []
        self.stack_outputs: dict[str, str] = {}
        self._deployed_stack: str | None = None
        self._media_stack: str | None = None
        self._admin_url: str | None = None
        self._queues_seen_at: float | None = None  # last time redeploy_if_missing found the queues

    # -- database -----------------------------------------------------------------------
    def start_database(self) -> str:
        if self.settings.database_url:
            url = self._admin_url = self.settings.database_url
            if self.fresh_database:
                url = _recreate_database(url, self.database_name)
        else:
            self.embedded = start_embedded(self.data_dir / "pgdata")
            admin_url = self._admin_url = self.embedded.get_uri()
            if self.fresh_database:
                _recreate_database(admin_url, self.database_name)
            else:
                _create_database_if_missing(admin_url, self.database_name)
            url = with_database(admin_url, self.database_name)
        self.env["DATABASE_URL"] = url
        self.settings = load_settings(self.env)
        return url

    def migrate(self) -> list[int]:
        with psycopg.connect(self.env["DATABASE_URL"], autocommit=True) as conn:
            return migrator.migrate(conn)

    # -- AWS side -----------------------------------------------------------------------
    def start_localstack(self) -> str:
        self.localstack = ensure_localstack(self.settings.aws_endpoint_url, self.data_dir / "localstack",
                                            log=self.log)
        self.env["AWS_ENDPOINT_URL"] = self.localstack.endpoint
        self.env.setdefault("AWS_ACCESS_KEY_ID", "test")
        self.env.setdefault("AWS_SECRET_ACCESS_KEY", "test")
        self.env.setdefault("AWS_DEFAULT_REGION", self.settings.aws_region)
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
        self.settings = load_settings(self.env)
        return self.localstack.endpoint

    def deploy_messaging(self, **overrides: int) -> dict[str, str]:
        cfn = make_client("cloudformation", self.settings)
        parameters = {"QueuePrefix": self.settings.queue_prefix, **overrides}
        self.stack_outputs = deploy_messaging_stack(cfn, self.settings.messaging_stack_name, parameters)
        self._deployed_stack = self.settings.messaging_stack_name
        return self.stack_outputs

    def deploy_media(self) -> str:
        """infra/media.yaml on LocalStack, one bucket per queue prefix (so test runs are apart);
        MEDIA_BUCKET is set for the API, the runner and the tests. (LocalStack 4.13.1's
        CloudFormation creates the bucket with its encryption, public access block and policy
        but ignores LifecycleConfiguration: local media does not expire by itself.)"""
        cfn = make_client("cloudformation", self.settings)
        name = f"{self.settings.queue_prefix}-media"
        prefix = "".join(c if c.isalnum() or c == "-" else "-" for c in self.settings.queue_prefix.lower())[:30]
        outputs = deploy_messaging_stack(cfn, name, {"NamePrefix": prefix}, template=MEDIA_TEMPLATE_PATH)
        self._media_stack = name
        self.env["MEDIA_BUCKET"] = outputs["MediaBucketName"]
        self.settings = load_settings(self.env)
        return outputs["MediaBucketName"]

    def delete_media(self) -> None:
        """The stack keeps its bucket (DeletionPolicy: Retain, as on AWS): empty and remove it here."""
        if not self._media_stack:
            return
        bucket = self.env.get("MEDIA_BUCKET")
        delete_stack(make_client("cloudformation", self.settings), self._media_stack)
        self._media_stack = None
        if bucket:
            s3 = make_client("s3", self.settings)
            try:
                for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                    keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                    if keys:
                        s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
                s3.delete_bucket(Bucket=bucket)
            except Exception as exc:  # noqa: BLE001 - already gone
                if "NoSuchBucket" not in str(exc):
                    raise

    def redeploy_if_missing(self) -> bool:
        """Deploy the messaging (and media) stacks again when their queues are gone; True if it did.

        LocalStack keeps no state across a restart: its queues come back missing, and every
        enqueue fails until the stacks exist again (the outboxes keep what SQS did not take and
        resend it then). `make run` calls this every few seconds; a LocalStack that does not
        answer yet is left alone (False): the next call tries again."""
        if not self._deployed_stack:
            return False
        if not is_ready(self.settings.aws_endpoint_url or ""):
            return False
        try:
            make_client("sqs", self.settings).get_queue_url(QueueName=self.settings.events_queue_name)
            self._queues_seen_at = time.time()
            return False
        except ClientError as exc:
            if "NonExistentQueue" not in str(exc) and "QueueDoesNotExist" not in str(exc):
                raise
        except (BotoCoreError, OSError):  # down again, or not up yet: next call
            return False
        self.log(f"the queues of {self._deployed_stack} are gone (LocalStack restarted?); deploying again")
        self.deploy_messaging()
        if self._media_stack:
            self.deploy_media()
        self._resend_what_the_queues_lost()
        return True

    def _resend_what_the_queues_lost(self, margin: float = 120.0) -> None:
        """What the old LocalStack had taken and held is gone with it (on AWS a queue keeps
        what it acknowledged): events handed over since shortly before the queues were last
        seen, and not yet taken by the dispatcher, are marked unsent for the sweeper to send
        again. Queued commands need nothing: the runners' backlog scan runs them from the table."""
        window = time.time() - self._queues_seen_at + margin if self._queues_seen_at else 3600.0
        with psycopg.connect(self.env["DATABASE_URL"], autocommit=True) as conn:
            count = EventOutboxRepository.mark_unsent_undelivered(conn, window)
        if count:
            self.log(f"{count} event(s) the old queues held will be sent again")

    def delete_messaging(self) -> None:
        if self._deployed_stack:
            delete_stack(make_client("cloudformation", self.settings), self._deployed_stack)
            self._deployed_stack = None
        self.delete_runner_queues()

    def delete_runner_queues(self) -> int:
        """The command queues the runners created for themselves (runner_container/runner_queue.py):
        not in the stack, so deleted by name prefix."""
        sqs = make_client("sqs", self.settings)
        urls = sqs.list_queues(QueueNamePrefix=f"{self.settings.queue_prefix}-runner-").get("QueueUrls", [])
        for url in urls:
            sqs.delete_queue(QueueUrl=url)
        return len(urls)

    # -- processes ----------------------------------------------------------------------
    def start_api(self, port: int, *, wait: float = 60.0, stdout=None) -> Child:
        env = {**self.env, "SERVER_PORT": str(port)}
        child = start_child("api", [str(VENV_BIN / "chalice"), "local", "--stage", "local",
                                    "--host", "127.0.0.1", "--port", str(port), "--no-autoreload"],
                            env, str(PROJECT_ROOT), stdout=stdout, stderr=stdout)
        self.children.append(child)
        wait_http(f"http://127.0.0.1:{port}/health", timeout=wait, child=child)
        return child

    def start_runner(self, *, extra_env: dict[str, str] | None = None, stdout=None) -> Child:
        env = {**self.env, **(extra_env or {})}
        child = start_child("runner", [sys.executable, "-m", "runner_container"], env,
                            str(PROJECT_ROOT), stdout=stdout, stderr=stdout)
        self.children.append(child)
        return child

    def start_bridge(self, *, stdout=None) -> Child:
        child = start_child("sqs-bridge", [sys.executable, "-m", "devstack", "bridge"], self.env,
                            str(PROJECT_ROOT), stdout=stdout, stderr=stdout)
        self.children.append(child)
        return child

    def stop(self, *, delete_queues: bool = False, drop_database: bool = False) -> None:
        for child in reversed(self.children):
            started = time.monotonic()
            child.stop()
            self.log(f"    {child.name} stopped in {time.monotonic() - started:.1f}s")
        self.children.clear()
        if drop_database and self._admin_url:
            try:
                _drop_database(self._admin_url, self.database_name)
            except Exception as exc:  # noqa: BLE001 - best effort on the way out
                self.log(f"could not drop database {self.database_name}: {exc}")
        if delete_queues:
            try:
                self.delete_messaging()
            except Exception as exc:  # noqa: BLE001 - best effort on the way out
                self.log(f"could not delete the messaging stack: {exc}")
            try:
                self.delete_media()
            except Exception as exc:  # noqa: BLE001 - best effort on the way out
                self.log(f"could not delete the media bucket: {exc}")
        if self.localstack is not None:
            self.localstack.stop()
            self.localstack = None
        if self.embedded is not None:
            started = time.monotonic()
            self.embedded.cleanup()  # stops the server when no other process uses it
            self.embedded = None
            self.log(f"    embedded PostgreSQL released in {time.monotonic() - started:.1f}s")


def _create_database_if_missing(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def _drop_database(url: str, name: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _recreate_database(url: str, name: str) -> str:
    """Drop and create `name` on the server of `url`; return a URL for it."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return with_database(url, name)


def with_database(url: str, name: str) -> str:
    """The same server URL, naming database `name` (keeps the query, e.g. a socket dir)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def timed(log: Callable[[str], None]):
    """Context helper printing `==> step ... done in 1.2s`."""

    class _Step:
        def __init__(self, title: str):
            self.title = title

        def __enter__(self):
            self.started = time.monotonic()
            log(f"==> {self.title}")
            return self

        def __exit__(self, exc_type, exc, tb):
            if exc is None:
                log(f"    done in {time.monotonic() - self.started:.1f}s")
            return False

    return _Step
