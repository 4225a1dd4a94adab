"""Where messages go: queue names, URLs and the command shard of a session.

Queue names are derived from `QUEUE_PREFIX` exactly as `infra/messaging.yaml` names
them, so the template and the code cannot drift; URLs are looked up once per process.
"""
from __future__ import annotations

import hashlib
import threading
from typing import Any

from chalicelib.config import Settings


def shard_for(session_id: str, shards: int) -> int:
    """Stable across processes and Python versions (unlike `hash()`)."""
    digest = hashlib.sha256(session_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") % shards


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

    def command_url(self, shard: int) -> str:
        return self.url(self.settings.command_queue_name(shard))

    @property
    def command_dlq_url(self) -> str:
        return self.url(self.settings.command_dlq_name)

    def command_url_for_session(self, session_id: str) -> str:
        return self.command_url(shard_for(session_id, self.settings.command_shards))

    def all_names(self) -> list[str]:
        s = self.settings
        return [s.events_queue_name, s.events_dlq_name, s.command_dlq_name] + [
            s.command_queue_name(k) for k in range(s.command_shards)
        ]
