"""CloudWatch metrics of the Lambdas (Powertools `Metrics`, embedded metric format).

Each Lambda invocation adds its figures to one `InvocationMetrics` and flushes it once,
at the end: one EMF line on stdout, which Lambda ships to CloudWatch Logs, where it
becomes metrics in the `zemeow` namespace (no API call, no IAM action, no latency).

Dimensions are a closed set of low-cardinality names (`ALLOWED_DIMENSIONS`); a route is
its template (`/sessions/{session_id}`), never the path a caller sent. A key, URL, phone
number or session id as a dimension would make one metric per customer (CloudWatch bills
each) and copy personal data into a store with other access rules: `dimension()` refuses
any other name, and the test suite checks real EMF lines for such values.

Every metric goes out under two dimension sets: `[service]` (the totals alarms and the
dashboard use; CloudWatch alarms cannot sum across dimension values) and the detailed
one (`[service, route, method, status_class]` for the API).
"""
from __future__ import annotations

import threading
from typing import Any

NAMESPACE = "zemeow"
ALLOWED_DIMENSIONS = frozenset({"service", "route", "method", "status_class"})
# delivery row status after a batch -> metric name (chalicelib/webhooks/dispatcher.py)
DELIVERY_OUTCOMES = {"succeeded": "WebhookDelivered", "retrying": "WebhookRetried", "lost": "WebhookRetried",
                     "failed": "WebhookFailed", "skipped": "WebhookSkipped"}


class InvocationMetrics:
    """One Lambda's metrics between two flushes; the first flush of the process carries
    `ColdStart`. Thread-safe: a webhook attempt that outlives its batch reports its outcome
    from its own thread, and that figure goes out with the next invocation's flush."""

    def __init__(self, service: str, *, namespace: str = NAMESPACE):
        self.service = service
        self.namespace = namespace
        self._cold = True
        self._lock = threading.Lock()
        self._metrics: Any = None
        self._dimensions: dict[str, str] = {}

    def _powertools(self) -> Any:
        if self._metrics is None:
            # imported on first use: `import app` stays as cheap as before (bench/cold_import.py)
            from aws_lambda_powertools import Metrics  # noqa: PLC0415
            from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import (  # noqa: PLC0415
                AmazonCloudWatchEMFProvider,
            )

            # a provider of our own: Powertools' default `Metrics` shares one metric set per process
            provider = AmazonCloudWatchEMFProvider(namespace=self.namespace, service=self.service)
            self._metrics = Metrics(namespace=self.namespace, service=self.service, provider=provider)
        return self._metrics

    def dimension(self, name: str, value: str) -> None:
        if name not in ALLOWED_DIMENSIONS:
            raise ValueError(f"metric dimension {name!r} is not one of {sorted(ALLOWED_DIMENSIONS)}")
        with self._lock:
            self._dimensions[name] = value

    def add(self, name: str, value: float, unit: str = "Count") -> None:
        with self._lock:
            self._powertools().add_metric(name=name, unit=unit, value=value)

    def flush(self) -> None:
        """Print this invocation's EMF line (if anything was added) and start afresh."""
        with self._lock:
            metrics = self._powertools()
            if self._cold:
                self._cold = False
                metrics.add_metric(name="ColdStart", unit="Count", value=1)
            if self._dimensions:
                metrics.add_dimensions(service=self.service, **self._dimensions)
            if metrics.provider.metric_set:
                metrics.flush_metrics()
            metrics.provider.dimension_sets.clear()
            self._dimensions = {}


def api_service(queue_prefix: str) -> str:
    """The `service` dimension: per stage (QUEUE_PREFIX), as the runner's `<prefix>-runner`, so two
    stages in one account never add up in one metric (infra/monitoring.yaml reads the same names)."""
    return f"{queue_prefix}-api"


def webhook_service(queue_prefix: str) -> str:
    return f"{queue_prefix}-webhooks"


def retention_service(queue_prefix: str) -> str:
    return f"{queue_prefix}-retention"


def status_class(status: int) -> str:
    return f"{status // 100}xx"


def record_request(metrics: InvocationMetrics, *, route: str, method: str, status: int, millis: float) -> None:
    """An API request: its count, latency and (5xx) error, by route template and status class."""
    metrics.dimension("route", route)
    metrics.dimension("method", method)
    metrics.dimension("status_class", status_class(status))
    metrics.add("Requests", 1)
    metrics.add("Latency", round(millis, 3), "Milliseconds")
    metrics.add("Errors", 1 if status >= 500 else 0)


def record_prune(metrics: InvocationMetrics, deleted: int, complete: bool) -> None:
    """An hourly retention run: rows deleted, and 1 when its time budget ran out with rows left
    (several in a row: the job does not keep up; raise RETENTION_TIME_BUDGET or the batch size)."""
    metrics.add("RetentionDeleted", deleted)
    metrics.add("RetentionIncomplete", 0 if complete else 1)


def record_deliveries(metrics: InvocationMetrics, statuses: list[str], latencies_ms: list[float],
                      breaker_opens: int) -> None:
    """A webhook batch: deliveries by outcome, attempt latencies, breakers opened."""
    counts = dict.fromkeys(sorted(set(DELIVERY_OUTCOMES.values())), 0)
    for status in statuses:
        name = DELIVERY_OUTCOMES.get(status)
        if name:
            counts[name] += 1
    for name, count in counts.items():
        metrics.add(name, count)
    for latency in latencies_ms:
        metrics.add("WebhookDeliveryLatency", latency, "Milliseconds")
    metrics.add("WebhookBreakerOpens", breaker_opens)
