"""The autoscaling signal: `zemeow/Runner Sessions{service=<QUEUE_PREFIX>-runner}`, every minute.

infra/runner.yaml's target-tracking policy scales the ECS service on the Average of this
metric across runners (= sessions per runner). Published with `PutMetricData` rather than
as an EMF line on stdout (which the awslogs driver would ship and CloudWatch Logs would
extract), because:
- the scaling signal then does not depend on the log pipeline: a log driver swapped for
  FireLens to another vendor, or a log group renamed, would silently starve the policy
  (the failure issue 14 was filed for), with nothing failing loudly;
- it is provable here: LocalStack serves CloudWatch metrics (tests read the datapoint
  back), not the extraction of EMF from logs;
- the task role already allows exactly this call, pinned to the namespace; one call a
  minute per runner costs about $0.43 a month.
It runs on its own thread with a short-timeout client, so a slow CloudWatch never delays
the supervisor's lease heartbeat; a failed call is logged and the next minute tries again.
"""
from __future__ import annotations

import threading
from typing import Any, Callable

NAMESPACE = "zemeow/Runner"
METRIC_NAME = "Sessions"
DIMENSION = "service"


def service_dimension(queue_prefix: str) -> str:
    """infra/runner.yaml: `service=${NamePrefix}-runner`, NamePrefix being the stage's QUEUE_PREFIX."""
    return f"{queue_prefix}-runner"


def metric_datum(queue_prefix: str, sessions: int) -> dict[str, Any]:
    return {"MetricName": METRIC_NAME, "Dimensions": [{"Name": DIMENSION, "Value": service_dimension(queue_prefix)}],
            "Value": float(sessions), "Unit": "Count"}


class SessionsMetricPublisher:
    def __init__(self, cloudwatch: Any, queue_prefix: str, sessions: Callable[[], int], *, interval: float = 60.0,
                 log: Any = None):
        self.cloudwatch = cloudwatch
        self.queue_prefix = queue_prefix
        self.sessions = sessions
        self.interval = interval
        self.log = log
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def publish(self) -> bool:
        try:
            self.cloudwatch.put_metric_data(Namespace=NAMESPACE,
                                            MetricData=[metric_datum(self.queue_prefix, self.sessions())])
            return True
        except Exception as exc:  # noqa: BLE001 - a missed minute only delays scaling
            if self.log:
                self.log.warning("sessions metric not published", extra={"reason": str(exc)[:200]})
            return False

    def _run(self) -> None:
        self.publish()  # at once: a new runner counts from its first minute
        while not self._stop.wait(self.interval):
            self.publish()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sessions-metric", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
