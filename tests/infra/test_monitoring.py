"""infra/monitoring.yaml: the dashboard and alarms read the metrics the code emits.

Every (namespace, metric, service dimension) the template names is checked against what
chalicelib/metrics.py prints and what the runner publishes, for a given NamePrefix; the
template is deployed on LocalStack and its alarms read back.
"""
from __future__ import annotations

import contextlib
import io
import json
import uuid

from chalicelib.metrics import (InvocationMetrics, api_service, record_deliveries, record_prune, record_request,
                               retention_service, webhook_service)
from runner_container.sessions_metric import metric_datum
from runner_container.sessions_metric import NAMESPACE as RUNNER_NAMESPACE
from tests.infra.test_infra import template
from tests.integration.test_metrics import emf_lines

PREFIX = "zemeow-stage"


def _emitted() -> set[tuple[str, str, str]]:
    """(namespace, metric name, service) of everything the code emits for PREFIX."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        api = InvocationMetrics(api_service(PREFIX))
        record_request(api, route="/sessions", method="GET", status=503, millis=3.0)
        api.flush()
        hooks = InvocationMetrics(webhook_service(PREFIX))
        record_deliveries(hooks, ["succeeded", "failed"], [5.0], 1)
        hooks.add("Errors", 1)
        hooks.flush()
        retention = InvocationMetrics(retention_service(PREFIX))
        record_prune(retention, 10, False)
        retention.flush()
    found = set()
    for line in emf_lines(out.getvalue()):
        [directive] = line["_aws"]["CloudWatchMetrics"]
        assert ["service"] in directive["Dimensions"]  # the totals the alarms read
        found |= {(directive["Namespace"], m["Name"], line["service"]) for m in directive["Metrics"]}
    datum = metric_datum(PREFIX, 1)
    found.add((RUNNER_NAMESPACE, datum["MetricName"], datum["Dimensions"][0]["Value"]))
    return found


def _resolve(value, prefix: str = PREFIX) -> str:
    text = value["Fn::Sub"] if isinstance(value, dict) else value
    return text.replace("${NamePrefix}", prefix)


def _alarm_metrics(tpl: dict) -> set[tuple[str, str, str]]:
    found = set()
    for resource in tpl["Resources"].values():
        if resource["Type"] != "AWS::CloudWatch::Alarm":
            continue
        for query in resource["Properties"]["Metrics"]:
            if "MetricStat" in query:
                metric = query["MetricStat"]["Metric"]
                [dimension] = metric["Dimensions"]
                assert dimension["Name"] == "service"
                found.add((metric["Namespace"], metric["MetricName"], _resolve(dimension["Value"])))
    return found


def _dashboard_metrics(tpl: dict) -> set[tuple[str, str, str]]:
    body = _resolve(tpl["Resources"]["Dashboard"]["Properties"]["DashboardBody"])
    body = body.replace("${AWS::Region}", "us-east-1").replace("${AWS::Partition}", "aws") \
        .replace("${AWS::AccountId}", "123456789012")
    doc = json.loads(body)
    found = set()
    for widget in doc["widgets"]:
        for metric in widget["properties"].get("metrics", []):
            namespace, name, dim_name, dim_value = metric[:4]
            found.add((namespace, name, dim_name, dim_value))
    return found


def test_alarms_and_dashboard_read_only_metrics_the_code_emits():
    emitted = _emitted()
    tpl = template("monitoring")
    alarms = _alarm_metrics(tpl)
    assert alarms == {("zemeow", "Requests", f"{PREFIX}-api"), ("zemeow", "Errors", f"{PREFIX}-api"),
                      ("zemeow", "WebhookDelivered", f"{PREFIX}-webhooks"),
                      ("zemeow", "WebhookFailed", f"{PREFIX}-webhooks")}
    assert alarms <= emitted
    dashboard = _dashboard_metrics(tpl)
    ours = {(ns, name, value) for ns, name, dim, value in dashboard if ns != "AWS/SQS"}
    assert ours <= emitted, ours - emitted
    assert {dim for ns, name, dim, value in dashboard if ns != "AWS/SQS"} == {"service"}
    # the DLQ widgets name the queues messaging.yaml creates
    queues = {value for ns, name, dim, value in dashboard if ns == "AWS/SQS"}
    messaging = template("messaging")["Resources"]
    assert queues == {_resolve(messaging["EventsDeadLetterQueue"]["Properties"]["QueueName"]).replace(
        "${QueuePrefix}", PREFIX),
        _resolve(messaging["CommandDeadLetterQueue"]["Properties"]["QueueName"]).replace("${QueuePrefix}", PREFIX)}
    # the sessions-per-runner widget shows the autoscaling metric
    assert (RUNNER_NAMESPACE, "Sessions", "service", f"{PREFIX}-runner") in dashboard


def test_the_monitoring_stack_deploys_on_localstack_with_both_alarms(stack, settings):
    from chalicelib.aws_clients import make_client
    from infra.deploy import deploy_stack
    from devstack.messaging_stack import delete_stack

    prefix = f"zm{uuid.uuid4().hex[:6]}"
    cfn = make_client("cloudformation", settings)
    try:
        outputs = deploy_stack(cfn, f"{prefix}-monitoring", template_path(), {"NamePrefix": prefix},
                               say=lambda _m: None, timeout=120)
        assert outputs["Api5xxRateAlarmName"] == f"{prefix}-api-5xx-rate"
        alarms = make_client("cloudwatch", settings).describe_alarms(AlarmNamePrefix=prefix + "-")["MetricAlarms"]
        assert {a["AlarmName"] for a in alarms} == {f"{prefix}-api-5xx-rate", f"{prefix}-webhook-failure-rate"}
    finally:
        delete_stack(cfn, f"{prefix}-monitoring")


def template_path():
    from tests.infra.test_infra import INFRA

    return INFRA / "monitoring.yaml"
