"""Plays EventBridge for every `@app.schedule` handler of app.py (the local stack only).

In AWS, `chalice deploy` turns `@app.schedule(Rate(...))` into an EventBridge rule that
invokes the handler's Lambda. Locally this bridge, running in the same process as the SQS
bridge (`python -m devstack bridge`), invokes the same handler with the event EventBridge
sends, once at start and then every period. That is why retention runs here and not in the
runner's reconcile tick: the handler, its settings and its code path are those of AWS, and
in AWS nothing runs twice (every runner would run it).
"""
from __future__ import annotations

import threading
import time
import traceback
import uuid
from datetime import datetime, timezone
from typing import Any, Callable

from chalice import Chalice, Rate
from chalice.app import ScheduledEventConfig

from devstack.sqs_bridge import LocalLambdaContext

_UNIT_SECONDS = {Rate.MINUTES: 60.0, Rate.HOURS: 3600.0, Rate.DAYS: 86400.0}


def period_seconds(expression: Any) -> float | None:
    """A `Rate`'s period; None for a cron expression (not played locally)."""
    if isinstance(expression, Rate):
        return expression.value * _UNIT_SECONDS[expression.unit]
    return None


def scheduled_event(region: str = "us-east-1") -> dict[str, Any]:
    """The event an EventBridge schedule gives its target."""
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "000000000000", "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": region, "resources": ["arn:aws:events:us-east-1:000000000000:rule/local"], "detail": {}}


class ScheduleBridge:
    def __init__(self, app: Chalice, app_module: Any, *, region: str = "us-east-1",
                 log: Callable[[str], None] = print):
        self.app = app
        self.app_module = app_module
        self.region = region
        self.log = log

    def sources(self) -> list[ScheduledEventConfig]:
        return [s for s in self.app.event_sources
                if isinstance(s, ScheduledEventConfig) and period_seconds(s.schedule_expression)]

    def invoke(self, source: ScheduledEventConfig) -> Any:
        handler = getattr(self.app_module, source.handler_string.rsplit(".", 1)[-1])
        return handler(scheduled_event(self.region), LocalLambdaContext(function_name=f"{self.app.app_name}-{source.name}"))

    def run(self, stop: threading.Event) -> list[threading.Thread]:
        threads = []
        for source in self.sources():
            thread = threading.Thread(target=self._loop, args=(source, stop), name=f"schedule-{source.name}",
                                      daemon=True)
            thread.start()
            threads.append(thread)
        return threads

    def _loop(self, source: ScheduledEventConfig, stop: threading.Event) -> None:
        period = period_seconds(source.schedule_expression) or 3600.0
        while not stop.is_set():
            started = time.monotonic()
            try:
                result = self.invoke(source)
                self.log(f"schedule {source.name}: {result}")
            except Exception:  # noqa: BLE001 - as EventBridge: the next period tries again
                self.log(f"schedule {source.name} raised\n" + traceback.format_exc(limit=5))
            stop.wait(max(1.0, period - (time.monotonic() - started)))
