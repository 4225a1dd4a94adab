"""The runner's composition root: everything the runner process uses, built once here.

`chalicelib.bootstrap.Container` gives the shared pieces (settings, database, SQS,
queues, the command outbox, the event publisher, the secret box, the network policies);
this builds the runner's own from them and hands them over: the actors and the media
worker get a `SessionPorts`, the supervisor a `RunnerParts`. Nothing below reaches
back for a collaborator it was not given.
"""
from __future__ import annotations

import os
import socket
import uuid

from chalicelib.aws_clients import make_client
from chalicelib.bootstrap import Container
from chalicelib.repositories.commands import CommandRepository
from chalicelib.repositories.inbound_media import PendingMediaRepository
from chalicelib.repositories.message_store import MessageStoreRepository
from chalicelib.repositories.runners import RunnerRepository
from chalicelib.repositories.session_store import SessionStore
from chalicelib.repositories.slots import SlotRepository
from runner_container.acker import SqsAcker
from runner_container.drivers import make_driver
from runner_container.event_sender import EventSender
from runner_container.inbound_media import InboundMedia
from runner_container.lifeline import Lifeline
from runner_container.machine import Backoff, Tuning
from runner_container.metrics import RunnerMetrics
from runner_container.placement import PlacementManager
from runner_container.ports import ActorRegistry, ActorSettings, Clock, CommandLedger, SessionPorts
from runner_container.proxy import ProxyDialer
from runner_container.runner_queue import RunnerQueue
from runner_container.session import SessionActor
from runner_container.sessions_metric import SessionsMetricPublisher
from runner_container.supervisor import RunnerParts, RunnerSupervisor


def new_runner_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def build_ports(container: Container, runner_id: str, metrics: RunnerMetrics) -> SessionPorts:
    settings = container.settings
    driver_options = {"port": settings.emulator_port, "qr_rotate": settings.emulator_qr_rotate} \
        if settings.whatsapp_driver == "emulator" else {}
    ports = SessionPorts(
        store=SessionStore(container.db, container.events, settings.message_store),
        commands=CommandLedger(CommandRepository(container.db), metrics, runner_id, settings.runner_lease_ttl,
                               fenced=True),
        driver=make_driver(settings.whatsapp_driver, container, **driver_options),
        metrics=metrics,
        events=EventSender(container.events, container.logger),
        clock=Clock(),
        settings=ActorSettings(runner_id=runner_id, lease_ttl=settings.runner_lease_ttl,
                               tuning=Tuning(settings.qr_code_timeout,
                                             Backoff(settings.reconnect_backoff_base, settings.reconnect_backoff_max)),
                               history_sync=settings.history_sync),
        log=container.logger,
        message_store=MessageStoreRepository(container.db),
        pending=PendingMediaRepository(container.db),
        proxies=ProxyDialer(container.secret_box, lambda: container.proxy_policy),
    )
    ports.media = InboundMedia.for_ports(ports, container.media_store, enabled=settings.inbound_media == "s3",
                                         max_bytes=settings.inbound_media_max_bytes)
    ports.actors = ActorRegistry(lambda session_id: SessionActor(ports, session_id))
    return ports


def build_runner(container: Container) -> RunnerSupervisor:
    settings = container.settings
    runner_id = settings.runner_id or new_runner_id()
    ports = build_ports(container, runner_id, RunnerMetrics())
    assert isinstance(ports.actors, ActorRegistry)
    actors = ports.actors
    # its own fail-fast client: one try, short timeouts (never holds a thread for long)
    cloudwatch = make_client("cloudwatch", settings, connect_timeout=2, read_timeout=5, max_attempts=2)
    sessions_metric = SessionsMetricPublisher(
        cloudwatch, settings.queue_prefix, actors.held,
        interval=settings.sessions_metric_interval, log=container.logger)
    return RunnerSupervisor(RunnerParts(
        container=container, ports=ports, actors=actors,
        runners=RunnerRepository(container.db),
        placement=PlacementManager(container.db, runner_id, ttl=settings.runner_lease_ttl,
                                   step=settings.placement_step, max_sessions=settings.runner_max_sessions,
                                   memory_high_mb=settings.runner_memory_high_mb),
        lifeline=Lifeline(container.db, runner_id, enabled=settings.runner_lifeline, log=container.logger),
        slots=SlotRepository(container.db),
        queue=RunnerQueue(container.sqs, prefix=settings.queue_prefix, runner_id=runner_id,
                          dlq_name=settings.command_dlq_name, log=container.logger),
        acker=SqsAcker(container.sqs, container.logger), sessions_metric=sessions_metric))
