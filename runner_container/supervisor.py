"""The runner supervisor: registers this process, keeps its heartbeat, stops cleanly.

The heartbeat is what `/ready` and other runners read to know this runner is alive;
missing `RUNNER_LEASE_TTL` worth of heartbeats means it is gone. On SIGTERM the row is
marked stopped at once, so nobody waits for the TTL to notice.
"""
from __future__ import annotations

import os
import socket
import threading
import uuid

from chalicelib.bootstrap import Container
from chalicelib.errors import DependencyUnavailable
from chalicelib.repositories.runners import RunnerRepository


def new_runner_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class RunnerSupervisor:
    def __init__(self, container: Container):
        self.container = container
        self.settings = container.settings
        self.log = container.logger
        self.runner_id = self.settings.runner_id or new_runner_id()
        self.runners = RunnerRepository(container.db)

    def run(self, stop: threading.Event) -> None:
        self.runners.register(
            self.runner_id,
            hostname=socket.gethostname(),
            pid=os.getpid(),
            version=self.settings.version,
            driver=self.settings.whatsapp_driver,
        )
        self.log.info("runner started", extra={"runner_id": self.runner_id,
                                               "driver": self.settings.whatsapp_driver})
        try:
            while not stop.wait(self.settings.runner_heartbeat_interval):
                self._beat()
        finally:
            try:
                self.runners.mark_stopped(self.runner_id)
            except DependencyUnavailable as exc:
                self.log.warning("could not mark runner stopped", extra={"reason": exc.message})

    def _beat(self) -> None:
        try:
            if not self.runners.heartbeat(self.runner_id):
                self.log.warning("heartbeat row missing; registering again",
                                 extra={"runner_id": self.runner_id})
                self.runners.register(self.runner_id, hostname=socket.gethostname(),
                                      pid=os.getpid(), version=self.settings.version,
                                      driver=self.settings.whatsapp_driver)
        except DependencyUnavailable as exc:
            # The database is down: keep trying; the lease TTL tells others we may be gone.
            self.log.warning("heartbeat failed", extra={"reason": exc.message})
