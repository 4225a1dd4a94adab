"""Finding 14: a second `make run` with its own DATA_DIR (and ports) runs beside the first:
its queue prefix, messaging stack and media bucket are derived from its data dir, and a
stack deploy that loses a CreateStack race waits for the winner instead of failing."""
from __future__ import annotations

from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from chalicelib.aws_clients import make_client
from chalicelib.config import QUEUE_PREFIX_PATTERN
from devstack import PROJECT_ROOT
from devstack.local_env import queue_prefix_for, read_env_file
from devstack.localstack import is_ready
from devstack.messaging_stack import MEDIA_TEMPLATE_PATH, delete_stack, deploy_messaging_stack
from devstack.processes import free_port, port_in_use
from tests.support.runner_harness import http_json
from tests.security.test_local_bindings import ADDRESS, assert_loopback_only
from tests.support.launched import Launched


def test_each_data_dir_gets_its_own_stable_queue_prefix(tmp_path):
    first, second = tmp_path / "one", tmp_path / "two"
    assert queue_prefix_for(first) != queue_prefix_for(second)
    assert queue_prefix_for(first) == queue_prefix_for(tmp_path / "x" / ".." / "one")  # the resolved path
    for prefix in (queue_prefix_for(first), queue_prefix_for(second)):
        assert QUEUE_PREFIX_PATTERN.match(prefix) and prefix.startswith("zemeow-")
        assert len(prefix) <= 30 and prefix == prefix.lower()  # the media bucket's NamePrefix as is
    # the default data dir keeps the plain prefix (one stack, and the compose file, say `zemeow`)
    assert queue_prefix_for(PROJECT_ROOT / ".zemeow") == "zemeow"


class _LosingRaceCloudFormation:
    """CloudFormation as the launcher that lost: the stack did not exist when asked, and
    another launcher's CreateStack got there first."""

    def __init__(self) -> None:
        self.status: str | None = None

    def describe_stacks(self, StackName: str) -> dict:  # noqa: N803 - boto3's names
        if self.status is None:
            raise ClientError({"Error": {"Code": "ValidationError",
                                         "Message": f"Stack with id {StackName} does not exist"}}, "DescribeStacks")
        return {"Stacks": [{"StackStatus": self.status,
                            "Outputs": [{"OutputKey": "MediaBucketName", "OutputValue": "theirs"}]}]}

    def create_stack(self, **_kwargs: object) -> None:
        self.status = "CREATE_IN_PROGRESS"
        raise ClientError({"Error": {"Code": "AlreadyExistsException",
                                     "Message": "Stack [zemeow-media] already exists"}}, "CreateStack")

    def update_stack(self, **_kwargs: object) -> None:
        raise AssertionError("nothing to update: the stack was just created")


def test_a_deploy_that_loses_the_create_race_waits_for_the_winner(monkeypatch):
    cfn = _LosingRaceCloudFormation()
    real_wait = __import__("devstack.messaging_stack", fromlist=["_wait"])._wait

    def finishing_wait(client, name, wanted, timeout):
        cfn.status = "CREATE_COMPLETE"  # the winner's stack completes while we wait
        return real_wait(client, name, wanted, timeout)

    monkeypatch.setattr("devstack.messaging_stack._wait", finishing_wait)
    outputs = deploy_messaging_stack(cfn, "zemeow-media", {"NamePrefix": "zemeow"},
                                     template=MEDIA_TEMPLATE_PATH, timeout=5)
    assert outputs == {"MediaBucketName": "theirs"}


def _make_run_env(stack_env: dict[str, str], data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in stack_env.items()
           if k not in ("DATABASE_URL", "ADMIN_API_KEY", "ENCRYPTION_KEY", "EMULATOR_TOKEN", "QUEUE_PREFIX",
                        "MEDIA_BUCKET")}
    env.update({"DATA_DIR": str(data_dir), "SERVER_PORT": str(free_port()), "METRICS_PORT": str(free_port()),
                "EMULATOR_PORT": str(free_port())})
    return env


@pytest.mark.slow
@pytest.mark.timeout(480)
def test_a_second_make_run_with_its_own_data_dir_runs_beside_the_first(stack, settings, tmp_path):
    dirs = [tmp_path / "first", tmp_path / "second"]
    envs = [_make_run_env(stack.env, d) for d in dirs]
    prefixes = [queue_prefix_for(d) for d in dirs]
    assert prefixes[0] != prefixes[1]
    launched: list[Launched] = []
    try:
        for env in envs:  # both at once, as two terminals would
            launched.append(Launched(env))
        outputs = [stack_run.wait_for_output(r"Ctrl-C stops everything", timeout=240) for stack_run in launched]
        for data_dir, env, prefix, output in zip(dirs, envs, prefixes, outputs):
            assert "zemeow is up" in output
            assert f"QUEUE_PREFIX={prefix}" in output
            local = read_env_file(data_dir / "local.env")
            assert f"X-Emulator-Token: {local['EMULATOR_TOKEN']}" in output  # generated and printed
            status, ready = http_json("GET", f"http://127.0.0.1:{env['SERVER_PORT']}/ready",
                                      headers={"Authorization": f"Bearer {local['ADMIN_API_KEY']}"})
            assert status == 200, ready
            names = set(ready["details"]["queues"])
            assert f"{prefix}-events" in names
            assert all(name.startswith(prefix + "-") for name in names), names  # its own queues only
        if ADDRESS is not None:  # what make run started listens on loopback only
            assert_loopback_only(int(envs[1]["SERVER_PORT"]), "make run's API")
            assert_loopback_only(int(envs[1]["METRICS_PORT"]), "make run's runner metrics")
            assert_loopback_only(int(envs[1]["EMULATOR_PORT"]), "make run's emulator")
        for stack_run in launched:
            stack_run.interrupt()
        for stack_run in launched:
            assert stack_run.wait_stopped(timeout=60) == 0, stack_run.output[-3000:]
            assert "stopped" in stack_run.output
        # neither started the shared LocalStack, so neither stopped it
        assert is_ready(stack.env["AWS_ENDPOINT_URL"])
    finally:
        for stack_run in launched:
            stack_run.kill()
        cfn, s3 = make_client("cloudformation", settings), make_client("s3", settings)
        for prefix in prefixes:
            delete_stack(cfn, f"{prefix}-messaging")
            delete_stack(cfn, f"{prefix}-media")
            for bucket in s3.list_buckets()["Buckets"]:  # the stack retains its bucket
                if bucket["Name"].startswith(f"{prefix}-media-"):
                    s3.delete_bucket(Bucket=bucket["Name"])
    for env in envs:
        assert not port_in_use(int(env["SERVER_PORT"]))
