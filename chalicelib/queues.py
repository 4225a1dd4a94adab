"""Where messages go: the names and URLs of the fixed queues.

Queue names are derived from `QUEUE_PREFIX` exactly as `infra/messaging.yaml` names
them, so the template and the code cannot drift; URLs are looked up once per process.
Commands go to the queue of the runner holding the session (`runner_container/runner_queue.py`,
`chalicelib/repositories/placement.py`), not to a fixed queue.
"""
from __future__ import annotations

import threading
from typing import Any

from chalicelib.config import Settings


class QueueDirectory:
    def __init__(self, sqs: Any, settings: Settings):
        self.sqs = sqs
        self.settings = settings
        self._urls: dict[str, str] = {}
        self._lock = threading.Lock()

    def url(self, name: str) -> str:
        with self._lock:
            cached = self._urls.get(name)
        if cached:
            return cached
        url = self.sqs.get_queue_url(QueueName=name)["QueueUrl"]
        with self._lock:
            self._urls[name] = url
        return url

    @property
    def events_url(self) -> str:
        return self.url(self.settings.events_queue_name)

    @property
    def events_dlq_url(self) -> str:
        return self.url(self.settings.events_dlq_name)

    @property
    def command_dlq_url(self) -> str:
        return self.url(self.settings.command_dlq_name)

    def all_names(self) -> list[str]:
        s = self.settings
        return [s.events_queue_name, s.events_dlq_name, s.command_dlq_name]
