"""The autoscaling signal: what the runner publishes is what infra/runner.yaml's policy tracks.

The policy (namespace, metric name, dimensions, statistic) is read from the template; the
runner's datapoint is read back from LocalStack's CloudWatch with exactly that query.
"""
from __future__ import annotations

import datetime as dt

import pytest

from chalicelib.aws_clients import make_client
from runner_container import sessions_metric
from runner_container.sessions_metric import SessionsMetricPublisher, metric_datum
from tests.conftest import session_headers
from tests.support.runner_harness import start_runner, wait_for
from tests.infra.test_infra import template


def _policy() -> dict:
    resources = template("runner")["Resources"]
    policy = resources["SessionsPerRunnerScaling"]["Properties"]["TargetTrackingScalingPolicyConfiguration"]
    return policy["CustomizedMetricSpecification"]


def _sub(value: object, prefix: str) -> str:
    """The policy's `!Sub "${NamePrefix}-runner"` for a stage whose NamePrefix is `prefix`."""
    text = value["Fn::Sub"] if isinstance(value, dict) else value
    return str(text).replace("${NamePrefix}", prefix)


def policy_query(prefix: str) -> dict:
    spec = _policy()
    return {"Namespace": spec["Namespace"], "MetricName": spec["MetricName"],
            "Dimensions": [{"Name": d["Name"], "Value": _sub(d["Value"], prefix)} for d in spec["Dimensions"]],
            "Statistics": [spec["Statistic"]]}


def test_what_the_runner_publishes_matches_the_scaling_policy():
    spec = _policy()
    datum = metric_datum("zemeow-prod", 7)
    assert spec["Namespace"] == sessions_metric.NAMESPACE
    assert spec["MetricName"] == datum["MetricName"]
    assert [(d["Name"], _sub(d["Value"], "zemeow-prod")) for d in spec["Dimensions"]] == [
        (d["Name"], d["Value"]) for d in datum["Dimensions"]]
    assert spec["Statistic"] == "Average"  # the average over runners is sessions per runner
    assert "Unit" not in spec or spec["Unit"] == datum["Unit"]
    # the runner's QUEUE_PREFIX is the template's NamePrefix, so its dimension is the policy's
    container = template("runner")["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"][0]
    env = {e["Name"]: e["Value"] for e in container["Environment"]}
    assert env["QUEUE_PREFIX"] == {"Ref": "NamePrefix"}
    # and the task role may publish exactly there
    role = template("runner")["Resources"]["TaskRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    [allow] = [s for s in role["Statement"] if s.get("Action") == "cloudwatch:PutMetricData"]
    assert allow["Condition"]["StringEquals"]["cloudwatch:namespace"] == spec["Namespace"]


@pytest.fixture
def cloudwatch(settings):
    """LocalStack's CloudWatch, checked first: one whose metrics database (under its state
    directory) was removed answers every call with 500 "unable to open database file"."""
    from botocore.exceptions import ClientError

    client = make_client("cloudwatch", settings)
    try:
        client.list_metrics(Namespace=sessions_metric.NAMESPACE)
    except ClientError as exc:
        pytest.fail(f"LocalStack's CloudWatch at {settings.aws_endpoint_url} is broken, not the code: {exc}. "
                    "Restart that LocalStack (or run with AWS_ENDPOINT_URL on a free port: the suite starts one).")
    return client


def _datapoints(cloudwatch, prefix: str, statistic: str | None = None) -> list[dict]:
    now = dt.datetime.now(dt.timezone.utc)
    query = policy_query(prefix)
    if statistic:
        query["Statistics"] = [statistic]
    answer = cloudwatch.get_metric_statistics(StartTime=now - dt.timedelta(minutes=10),
                                              EndTime=now + dt.timedelta(minutes=1), Period=60, **query)
    return answer["Datapoints"]


def test_a_published_datapoint_is_read_back_with_the_policys_query(settings, cloudwatch):
    prefix = f"{settings.queue_prefix}-unit"
    assert SessionsMetricPublisher(cloudwatch, prefix, lambda: 3).publish()
    [point] = wait_for(lambda: _datapoints(cloudwatch, prefix), timeout=10, message="datapoint")
    assert point["Average"] == 3.0


def test_a_running_runner_publishes_the_sessions_it_holds(stack, settings, api, make_session, clean_runners,
                                                          cloudwatch):
    created = make_session()
    runner = start_runner(stack.env, "runner-sessions-metric", SESSIONS_METRIC_INTERVAL="1s")
    try:
        assert api.post(f"/sessions/{created['session_id']}/connect",
                        headers=session_headers(created)).status_code in (200, 202)
        # the same query with Maximum: the minute's Average mixes the 0 published before the connect
        points = wait_for(lambda: [p for p in _datapoints(cloudwatch, settings.queue_prefix, "Maximum")
                                   if p["Maximum"] >= 1],
                          timeout=30, interval=0.5, message="a Sessions datapoint >= 1 from the runner")
        assert points
    finally:
        runner.stop()
