"""infra/: CloudFormation templates, the deploy script, the runner image, the compose file.

Nothing here calls AWS. The templates are linted with cfn-lint and read for what the
code relies on: queue names derived from QUEUE_PREFIX, the IAM actions the code's boto3
calls need, the variables the code reads. The media template and the messaging alarms
are deployed on LocalStack; the deploy script runs in --dry-run with sample outputs.
"""
from __future__ import annotations

import ast
import fnmatch
import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import cfn_yaml

from chalicelib.config import Settings, database_url_with_secret, load_settings

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
TEMPLATES = sorted(INFRA.glob("*.yaml"))
VENV_BIN = Path(sys.executable).parent
SAMPLE = json.loads((INFRA / "sample-outputs.json").read_text())
HEALTHZ = re.compile(r"urlopen\('http://127\.0\.0\.1:%s/healthz' % os\.environ\.get\('METRICS_PORT', '9100'\)")


def template(name: str) -> dict[str, Any]:
    return cfn_yaml.load(str(INFRA / f"{name}.yaml"))


def resources(tpl: dict, kind: str) -> dict[str, dict]:
    return {k: v for k, v in tpl["Resources"].items() if v["Type"] == kind}


# -- lint -------------------------------------------------------------------------------
def test_every_template_passes_cfn_lint():
    assert {p.stem for p in TEMPLATES} >= {"network", "database", "runner", "media", "messaging"}
    result = subprocess.run([str(VENV_BIN / "cfn-lint"), *map(str, TEMPLATES)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_template_has_description_parameters_and_outputs(path):
    tpl = cfn_yaml.load(str(path))
    assert tpl.get("Description") and tpl.get("Parameters") and tpl.get("Outputs"), path.name
    readme = (INFRA / "README.md").read_text()
    assert path.name in readme, f"{path.name} is not documented in infra/README.md"
    for parameter in tpl["Parameters"]:
        assert parameter in readme, f"parameter {parameter} of {path.name} is not in infra/README.md"


# -- queue names: template == code ------------------------------------------------------
def _template_queue_names(prefix: str) -> set[str]:
    names = set()
    for res in resources(template("messaging"), "AWS::SQS::Queue").values():
        name = res["Properties"]["QueueName"]
        name = name["Fn::Sub"] if isinstance(name, dict) else name
        names.add(name.replace("${QueuePrefix}", prefix))
    return names


def test_messaging_template_declares_every_queue_the_code_names():
    from chalicelib.queues import QueueDirectory

    settings = Settings(queue_prefix="zq")
    expected = set(QueueDirectory(None, settings).all_names())
    assert expected == _template_queue_names("zq"), expected ^ _template_queue_names("zq")
    # no fixed command queue any more: each runner creates its own (runner_container/runner_queue.py)
    assert _template_queue_names("zq") == {"zq-events", "zq-events-dlq", "zq-commands-dlq.fifo"}
    params = template("messaging")["Parameters"]
    assert "CommandShards" not in params and "CommandVisibilityTimeout" not in params


def test_deploy_derives_queue_arns_from_every_queue_of_the_template():
    from infra import deploy

    assert set(deploy.template_queue_names("zq")) == _template_queue_names("zq")
    arns = deploy.queue_arns("us-east-1", "zq", "123456789012")
    assert set(arns) == {f"arn:aws:sqs:us-east-1:123456789012:{n}" for n in _template_queue_names("zq")}


def test_runner_queue_pattern_matches_every_runner_queue_and_no_other_queue():
    """IAM names the runners' queues by a pattern (they are created at run time); it must
    match what runner_queue_name makes for any runner id, and nothing else of this or
    another stage (prod's prefix `zemeow` is a prefix of dev's `zemeow-dev`)."""
    from infra import deploy
    from runner_container.runner_queue import runner_queue_name

    pattern = deploy.runner_queue_arn("us-east-1", "zemeow", "123456789012")
    assert pattern == "arn:aws:sqs:us-east-1:123456789012:zemeow-runner-????????????????.fifo"
    for runner_id in ("ip-10-0-1-7:41", "r" * 300, "runner-é", ""):
        arn = f"arn:aws:sqs:us-east-1:123456789012:{runner_queue_name('zemeow', runner_id)}"
        assert fnmatch.fnmatchcase(arn, pattern), arn
    others = [*_template_queue_names("zemeow"), runner_queue_name("zemeow-dev", "a"),
              runner_queue_name("zemeow-runner-x", "a"), "zemeow-runner-x-events", "zemeow-runner-0123456789abcdef"]
    for name in others:
        assert not fnmatch.fnmatchcase(f"arn:aws:sqs:us-east-1:123456789012:{name}", pattern), name


def test_every_dead_letter_queue_has_an_alarm():
    tpl = template("messaging")
    queues = resources(tpl, "AWS::SQS::Queue")
    dlqs = {res["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
            for res in queues.values() if "RedrivePolicy" in res["Properties"]}
    alarmed = {alarm["Properties"]["Dimensions"][0]["Value"]["Fn::GetAtt"][0]
               for alarm in resources(tpl, "AWS::CloudWatch::Alarm").values()
               if alarm["Properties"]["MetricName"] == "ApproximateNumberOfMessagesVisible"}
    assert dlqs and dlqs <= alarmed, dlqs - alarmed


def test_dlq_alarms_exist_on_localstack(stack, settings):
    from chalicelib.aws_clients import make_client

    alarms = make_client("cloudwatch", settings).describe_alarms(AlarmNamePrefix=settings.queue_prefix + "-")
    watched = {a["Dimensions"][0]["Value"] for a in alarms["MetricAlarms"]}
    assert watched >= {settings.events_dlq_name, settings.command_dlq_name}


# -- IAM: what the code calls is what the roles allow ------------------------------------
# A boto3 call is `<receiver>.<operation>(...)` where the receiver names the service
# (`self.sqs`, `queues.sqs`) or the operation name is the service's own vocabulary.
_SERVICE_HINTS = {
    "sqs": (r"sqs", r"queue|message_batch|message_visibility|^receive_message$|^delete_message$"),
    "secretsmanager": (r"secret", r"secret_value"),
    "s3": (r"s3", r"_object|bucket"),
    "cloudwatch": (r"cloudwatch|metrics?_client", r"metric_data|alarm"),
}
_IAM_ALIASES = {"sqs:SendMessageBatch": "sqs:SendMessage", "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
                "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
                "s3:HeadObject": "s3:GetObject", "s3:ListObjectsV2": "s3:ListBucket",
                "s3:HeadBucket": "s3:ListBucket", "s3:DeleteObjects": "s3:DeleteObject"}
_TRANSFER = {"upload_file": "s3:PutObject", "upload_fileobj": "s3:PutObject",
             "download_file": "s3:GetObject", "download_fileobj": "s3:GetObject"}


def _operations() -> dict[str, dict[str, str]]:
    import botocore.session
    from botocore import xform_name

    session = botocore.session.get_session()
    return {svc: {xform_name(op): op for op in session.get_service_model(svc).operation_names}
            for svc in _SERVICE_HINTS}


def required_actions(*paths: str) -> dict[str, set[str]]:
    """IAM action -> files calling it, for every boto3 call under `paths`."""
    ops = _operations()
    found: dict[str, set[str]] = {}
    files = [f for p in paths for f in ([ROOT / p] if p.endswith(".py") else (ROOT / p).rglob("*.py"))]
    for file in files:
        for node in ast.walk(ast.parse(file.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            method, receiver = node.func.attr, ast.unparse(node.func.value).lower()
            last = receiver.rsplit(".", 1)[-1]
            for service, (receiver_hint, op_hint) in _SERVICE_HINTS.items():
                action = None
                if method in ops[service] and (re.search(receiver_hint, last) or re.search(op_hint, method)):
                    action = f"{service}:{ops[service][method]}"
                elif service == "s3" and method in _TRANSFER and re.search(receiver_hint, last):
                    action = _TRANSFER[method]
                if action:
                    action = _IAM_ALIASES.get(action, action)
                    found.setdefault(action, set()).add(str(file.relative_to(ROOT)))
    return found


def _allowed(statements: list[dict], action: str) -> list[dict]:
    hits = []
    for statement in statements:
        if statement.get("Effect") != "Allow":
            continue
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        if any(fnmatch.fnmatch(action.lower(), a.lower()) for a in actions):
            hits.append(statement)
    return hits


_RUNNER_STACK = {"AWS::Partition": "aws", "AWS::Region": "us-east-1", "AWS::AccountId": SAMPLE["account"],
                 "NamePrefix": "zemeow"}


def _resources(statement: dict) -> list[str]:
    """A statement's resources as ARN patterns: runner.yaml's `!Sub` resolved for the prod
    stage of the sample account, `!Ref QueueArns` as deploy.py fills it."""
    from infra import deploy

    items = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
    out = []
    for item in items:
        if item == {"Ref": "QueueArns"}:
            out += deploy.queue_arns("us-east-1", "zemeow", SAMPLE["account"])
        elif isinstance(item, dict) and "Fn::Sub" in item:
            out.append(re.sub(r"\$\{([^}]+)\}", lambda m: _RUNNER_STACK[m.group(1)], item["Fn::Sub"]))
        else:
            out.append(item)
    return out


def _allowed_on(statements: list[dict], action: str, arn: str) -> bool:
    return any(fnmatch.fnmatchcase(arn, pattern) for s in _allowed(statements, action) for pattern in _resources(s))


def _sqs_arn(name: str) -> str:
    return f"arn:aws:sqs:us-east-1:{SAMPLE['account']}:{name}"


def _runner_task_statements() -> list[dict]:
    role = template("runner")["Resources"]["TaskRole"]["Properties"]
    return [s for policy in role["Policies"] for s in policy["PolicyDocument"]["Statement"]]


def _lambda_policy(stage: str = "prod") -> dict:
    from infra import deploy

    opts = deploy.parse_args(["--stage", stage, "--dry-run"])
    opts.account = SAMPLE["account"]
    return deploy.lambda_policy(stage, deploy.STAGES[stage], SAMPLE, opts)


def test_the_scanner_finds_the_calls_we_know_of():
    lambda_needs = required_actions("app.py", "chalicelib")
    assert {"sqs:SendMessage", "sqs:GetQueueUrl", "secretsmanager:GetSecretValue"} <= set(lambda_needs)
    assert "secretsmanager:RotateSecret" not in lambda_needs  # webhooks' own rotate_secret, not boto3
    runner_needs = required_actions("runner_container", "chalicelib")
    assert {"sqs:ReceiveMessage", "sqs:DeleteMessage"} <= set(runner_needs)


def test_lambda_policy_allows_every_aws_call_of_the_api_and_webhook_code():
    needs = required_actions("app.py", "chalicelib")
    statements = _lambda_policy()["Statement"]
    missing = {a: sorted(f) for a, f in needs.items() if not _allowed(statements, a)}
    assert not missing, f"the Lambda policy (infra/deploy.py lambda_policy) lacks {missing}"
    # the SQS event source mapping polls with the function's role
    for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"):
        assert _allowed(statements, action)


def test_runner_task_role_allows_every_aws_call_of_the_runner():
    needs = required_actions("runner_container", "chalicelib")
    statements = _runner_task_statements()
    missing = {a: sorted(f) for a, f in needs.items() if not _allowed(statements, a)}
    assert not missing, f"infra/runner.yaml TaskRole lacks {missing}"


def test_roles_reach_only_this_stages_queues_secrets_and_bucket():
    statements = _runner_task_statements()
    by_sid = {s["Sid"]: s for s in statements}
    assert by_sid["Queues"]["Resource"] == {"Ref": "QueueArns"}
    assert by_sid["Secrets"]["Resource"] == [{"Ref": "AdminApiKeySecretArn"}, {"Ref": "EncryptionKeySecretArn"},
                                             {"Ref": "DatabaseSecretArn"}]
    assert by_sid["MediaObjects"]["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:s3:::${MediaBucketName}/sessions/*"}  # media keys' prefix only
    assert by_sid["MediaBucket"]["Condition"] == {"StringLike": {"s3:prefix": "sessions/*"}}
    for statement in statements:  # no wildcard resource except PutMetricData, pinned by namespace
        if statement.get("Resource") == "*":
            assert statement["Action"] == "cloudwatch:PutMetricData" and "Condition" in statement

    lambda_statements = {s["Sid"]: s for s in _lambda_policy()["Statement"]}
    queue_names = {arn.rsplit(":", 1)[-1] for arn in lambda_statements["Queues"]["Resource"]}
    assert queue_names == _template_queue_names("zemeow")
    assert not any("zemeow-dev" in n for n in queue_names)  # prod's prefix is a prefix of dev's
    assert lambda_statements["MediaObjects"]["Resource"] == SAMPLE["media"]["MediaBucketArn"] + "/sessions/*"
    assert lambda_statements["MediaBucket"]["Condition"] == {"StringLike": {"s3:prefix": "sessions/*"}}
    assert set(lambda_statements["Secrets"]["Resource"]) == {
        SAMPLE["messaging"]["AdminApiKeySecretArn"], SAMPLE["messaging"]["EncryptionKeySecretArn"],
        SAMPLE["database"]["DatabaseSecretArn"]}


def test_runner_role_creates_and_drains_runner_queues_and_nothing_wider():
    """Each runner creates its own command queue (with a redrive to the commands DLQ),
    receives from it, forwards to the others' and drains and deletes a gone runner's
    (runner_container/runner_queue.py): all of it on `<prefix>-runner-*` queues only."""
    from runner_container.runner_queue import runner_queue_name

    statements = _runner_task_statements()
    mine, other = _sqs_arn(runner_queue_name("zemeow", "runner-a")), _sqs_arn(runner_queue_name("zemeow", "b"))
    for action in ("sqs:CreateQueue", "sqs:DeleteQueue", "sqs:SetQueueAttributes", "sqs:GetQueueAttributes",
                   "sqs:GetQueueUrl", "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
                   "sqs:SendMessage"):
        assert _allowed_on(statements, action, mine) and _allowed_on(statements, action, other), action
    # the redrive names the DLQ by ARN: the runner looks it up
    dlq = _sqs_arn("zemeow-commands-dlq.fifo")
    assert _allowed_on(statements, "sqs:GetQueueUrl", dlq) and _allowed_on(statements, "sqs:GetQueueAttributes", dlq)
    # events out, as before
    assert _allowed_on(statements, "sqs:SendMessage", _sqs_arn("zemeow-events"))
    # creating, configuring and deleting queues: runner queues of this stage only
    for action in ("sqs:CreateQueue", "sqs:DeleteQueue", "sqs:SetQueueAttributes"):
        grants = _allowed(statements, action)
        assert [s["Sid"] for s in grants] == ["RunnerQueues"], action
        for arn in (dlq, _sqs_arn("zemeow-events"), _sqs_arn("zemeow-events-dlq"),
                    _sqs_arn(runner_queue_name("zemeow-dev", "runner-a")), _sqs_arn("zemeow-anything.fifo")):
            assert not _allowed_on(statements, action, arn), (action, arn)
    assert not any("*" in pattern for s in statements if any(a.startswith("sqs:") for a in s["Action"])
                   for pattern in _resources(s))


def test_lambda_may_send_to_runner_queues_and_do_nothing_else_there():
    """The API sends each command to the queue of the runner holding its session
    (chalicelib/commands/outbox.py); it never creates, reads or deletes a runner's queue."""
    from runner_container.runner_queue import runner_queue_name

    statements = _lambda_policy()["Statement"]
    runner_queue = _sqs_arn(runner_queue_name("zemeow", "runner-a"))
    assert _allowed_on(statements, "sqs:SendMessage", runner_queue)
    for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:CreateQueue", "sqs:DeleteQueue",
                   "sqs:SetQueueAttributes", "sqs:GetQueueAttributes", "sqs:PurgeQueue"):
        assert not _allowed_on(statements, action, runner_queue), action
    assert not _allowed_on(statements, "sqs:SendMessage", _sqs_arn(runner_queue_name("zemeow-dev", "runner-a")))
    assert not any(_allowed(statements, action) for action in ("sqs:CreateQueue", "sqs:DeleteQueue"))
    # the fixed queues as before: the event source mapping polls the events queue
    assert _allowed_on(statements, "sqs:ReceiveMessage", _sqs_arn("zemeow-events"))


# -- variables: what the templates and the stage set is what the code reads ---------------
_EXTRA_VARIABLES = {"MEDIA_BUCKET", "POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE"}


def _variables_the_code_reads() -> set[str]:
    """Quoted UPPER_CASE names in the code: config.py's variables and the runner's own."""
    files = [ROOT / "chalicelib" / "config.py", *(ROOT / "runner_container").rglob("*.py")]
    return {name for f in files for name in re.findall(r'"([A-Z][A-Z0-9_]+)"', f.read_text())}


def test_runner_task_sets_only_variables_the_code_reads():
    container = template("runner")["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"][0]
    names = {e["Name"] for e in container["Environment"]} | {s["Name"] for s in container["Secrets"]}
    unknown = names - _variables_the_code_reads() - _EXTRA_VARIABLES
    assert not unknown, unknown
    assert {"QUEUE_PREFIX", "POSTGRES_HOST", "POSTGRES_USER", "POSTGRES_PASSWORD",
            "ADMIN_API_KEY_SECRET_ARN", "ENCRYPTION_KEY_SECRET_ARN", "METRICS_PORT",
            "RUNNER_MAX_SESSIONS", "RUNNER_MEMORY_HIGH_MB", "PLACEMENT_STEP"} <= names
    assert "COMMAND_SHARDS" not in names  # placement by slot replaced the shards (issue 18)


def test_runner_placement_parameters_default_to_the_codes_defaults():
    """The stack passes RUNNER_MAX_SESSIONS, RUNNER_MEMORY_HIGH_MB and PLACEMENT_STEP; its
    defaults are the code's, its bounds the ones config.py accepts, and any runner count is
    allowed (no MaxCount bound from shards)."""
    tpl = template("runner")
    params = tpl["Parameters"]
    container = tpl["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"][0]
    env = {e["Name"]: e["Value"] for e in container["Environment"]}
    defaults = Settings()
    for variable, parameter, default in (("RUNNER_MAX_SESSIONS", "RunnerMaxSessions", defaults.runner_max_sessions),
                                         ("RUNNER_MEMORY_HIGH_MB", "RunnerMemoryHighMb",
                                          defaults.runner_memory_high_mb),
                                         ("PLACEMENT_STEP", "PlacementStep", defaults.placement_step)):
        assert env[variable] == {"Ref": parameter}
        assert params[parameter]["Default"] == default
        for bound in ("MinValue", "MaxValue"):
            load_settings({variable: str(params[parameter][bound])})  # accepted by config.py
    with pytest.raises(Exception, match="PLACEMENT_STEP"):
        load_settings({"PLACEMENT_STEP": str(params["PlacementStep"]["MinValue"] - 1)})
    assert "MaxValue" not in params["MaxCount"] and "CommandShards" not in params


# -- runner service -----------------------------------------------------------------------
def _dockerfile() -> str:
    return (ROOT / "runner_container" / "Dockerfile").read_text()


def test_runner_service_never_runs_zero_runners_and_is_health_checked():
    tpl = template("runner")
    params, res = tpl["Parameters"], tpl["Resources"]
    assert params["DesiredCount"]["MinValue"] >= 1 and params["DesiredCount"]["Default"] >= 1
    service = res["Service"]["Properties"]
    deployment = service["DeploymentConfiguration"]
    assert deployment["MinimumHealthyPercent"] == 100 and deployment["MaximumPercent"] >= 200
    assert deployment["DeploymentCircuitBreaker"] == {"Enable": True, "Rollback": True}
    assert service["LaunchType"] == "FARGATE" and service["DesiredCount"] == {"Ref": "DesiredCount"}
    task = res["TaskDefinition"]["Properties"]
    assert task["Cpu"] == {"Ref": "Cpu"} and task["Memory"] == {"Ref": "Memory"}
    container = task["ContainerDefinitions"][0]
    health = container["HealthCheck"]["Command"]
    assert health[:3] == ["CMD", "python", "-c"] and HEALTHZ.search(health[3])
    assert health[3] in _dockerfile(), "the ECS health check and the Dockerfile HEALTHCHECK differ"
    assert container["PortMappings"][0]["ContainerPort"] == {"Ref": "MetricsPort"}
    assert params["MetricsPort"]["Default"] == 9100 == Settings().metrics_port
    assert container["LogConfiguration"]["Options"]["awslogs-group"] == {"Ref": "LogGroup"}
    assert "RetentionInDays" in res["LogGroup"]["Properties"]
    assert "Command" not in container and "EntryPoint" not in container  # the image's CMD runs
    # autoscaling on sessions per runner, never below the desired count
    target = res["ScalableTarget"]["Properties"]
    assert target["MinCapacity"] == {"Ref": "DesiredCount"} and target["MaxCapacity"] == {"Ref": "MaxCount"}
    tracking = res["SessionsPerRunnerScaling"]["Properties"]["TargetTrackingScalingPolicyConfiguration"]
    metric = tracking["CustomizedMetricSpecification"]
    assert (metric["Namespace"], metric["MetricName"], metric["Statistic"]) == ("zemeow/Runner", "Sessions",
                                                                               "Average")
    assert tracking["TargetValue"] == {"Ref": "SessionsPerRunnerTarget"}


def test_database_is_private_encrypted_with_secret_and_proxy():
    res = template("database")["Resources"]
    cluster = res["Cluster"]["Properties"]
    assert cluster["Engine"] == "aurora-postgresql" and cluster["StorageEncrypted"] is True
    assert "ServerlessV2ScalingConfiguration" in cluster
    assert "{{resolve:secretsmanager:${DatabaseSecret}:SecretString:password}}" in str(cluster["MasterUserPassword"])
    assert res["WriterInstance"]["Properties"]["PubliclyAccessible"] is False
    assert res["SubnetGroup"]["Properties"]["SubnetIds"] == {"Ref": "PrivateSubnetIds"}
    proxy = res["Proxy"]["Properties"]
    assert proxy["EngineFamily"] == "POSTGRESQL" and proxy["RequireTLS"] is True
    assert proxy["Auth"][0]["SecretArn"] == {"Ref": "DatabaseSecret"}
    assert res["SecretAttachment"]["Properties"]["TargetId"] == {"Ref": "Cluster"}
    assert res["Cluster"]["DeletionPolicy"] == "Snapshot"


def test_network_has_private_subnets_and_endpoints():
    res = template("network")["Resources"]
    services = {r["Properties"]["ServiceName"]["Fn::Sub"].rsplit(".", 1)[-1]
                for r in res.values() if r["Type"] == "AWS::EC2::VPCEndpoint"}
    assert services == {"sqs", "secretsmanager", "s3"}
    private = [k for k in res if k.startswith("PrivateSubnet") and res[k]["Type"] == "AWS::EC2::Subnet"]
    assert len(private) == 2
    for name in private:
        assert "MapPublicIpOnLaunch" not in res[name]["Properties"]


def test_media_bucket_is_private_encrypted_and_expires():
    bucket = template("media")["Resources"]["MediaBucket"]["Properties"]
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    rule = bucket["LifecycleConfiguration"]["Rules"][0]
    assert rule["Status"] == "Enabled" and rule["ExpirationInDays"] == {"Ref": "MediaExpirationDays"}


def test_media_stack_deploys_on_localstack(stack, settings):
    from chalicelib.aws_clients import make_client
    from infra.deploy import deploy_stack

    cfn = make_client("cloudformation", settings)
    name = f"zi{uuid.uuid4().hex[:8]}-media"
    outputs: dict[str, str] = {}
    try:
        outputs = deploy_stack(cfn, name, INFRA / "media.yaml",
                               {"NamePrefix": name[:10], "MediaExpirationDays": "7"}, say=lambda _m: None,
                               timeout=120)
        s3 = make_client("s3", settings)
        bucket = outputs["MediaBucketName"]
        assert bucket.startswith(name[:10] + "-media-")
        # (LocalStack 4.13.1's CloudFormation ignores LifecycleConfiguration: the expiry
        # rule is checked in the template by test_media_bucket_is_private_encrypted_and_expires)
        block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        assert all(block.values())
        policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
        assert policy["Statement"][0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        encryption = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]
        assert encryption["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    finally:
        cfn.delete_stack(StackName=name)
        try:  # DeletionPolicy Retain keeps the bucket on AWS; remove it here
            make_client("s3", settings).delete_bucket(Bucket=outputs.get("MediaBucketName", name))
        except Exception:  # noqa: BLE001
            pass


# -- the runner image ---------------------------------------------------------------------
def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", _dockerfile())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def _local_runner_command(monkeypatch) -> list[str]:
    import devstack.stack as stack_module

    seen = {}

    def fake_start_child(name, command, env, cwd, **_kw):
        seen["command"] = command
        return object()

    monkeypatch.setattr(stack_module, "start_child", fake_start_child)
    environment = stack_module.LocalStackEnvironment({"DATA_DIR": "/tmp/zemeow-infra-test"}, log=lambda _m: None)
    environment.start_runner()
    return seen["command"]


def test_image_command_is_the_local_runner_command(monkeypatch):
    local = _local_runner_command(monkeypatch)
    assert Path(local[0]).name.startswith("python")
    instructions = _dockerfile_instructions()
    cmd = [json.loads(arg) for kind, arg in instructions if kind == "CMD"][-1]
    entrypoints = [arg for kind, arg in instructions if kind == "ENTRYPOINT"]
    assert not entrypoints
    assert cmd[0] == "python" and cmd[1:] == local[1:], (cmd, local)


def test_image_is_multi_stage_small_non_root_with_ffmpeg_and_healthcheck():
    instructions = _dockerfile_instructions()
    kinds = [k for k, _ in instructions]
    froms = [arg for kind, arg in instructions if kind == "FROM"]
    assert len(froms) >= 2 and all("slim" in f for f in froms)
    assert any(kind == "COPY" and "--from=build" in arg for kind, arg in instructions)
    user = [arg for kind, arg in instructions if kind == "USER"][-1]
    assert user.split(":")[0] not in ("root", "0")
    assert kinds.index("USER") < kinds.index("CMD")
    assert any(kind == "RUN" and "ffmpeg" in arg and "--no-install-recommends" in arg for kind, arg in instructions)
    assert ("STOPSIGNAL", "SIGTERM") in instructions
    health = [arg for kind, arg in instructions if kind == "HEALTHCHECK"][0]
    assert HEALTHZ.search(health)
    copied = [arg.split()[-2] for kind, arg in instructions if kind == "COPY" and "--from" not in arg]
    assert set(copied) <= {"runner_container/requirements.txt", "chalicelib", "runner_container"}, copied
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert "**" in ignore and "!runner_container" in ignore and "!chalicelib" in ignore


def test_healthcheck_one_liner_exits_zero_on_200_and_nonzero_otherwise(tmp_path):
    """Run the HEALTHCHECK command against a tiny server on a free loopback port."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    status = {"code": 200}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(status["code"] if self.path == "/healthz" else 404)
            self.end_headers()

        def log_message(self, *_args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    health = [arg for kind, arg in _dockerfile_instructions() if kind == "HEALTHCHECK"][0]
    command = json.loads(health[health.index("CMD") + 3:].strip())
    try:
        env = {**os.environ, "METRICS_PORT": str(server.server_address[1])}
        assert subprocess.run([sys.executable, *command[1:]], env=env, timeout=10).returncode == 0
        status["code"] = 503
        assert subprocess.run([sys.executable, *command[1:]], env=env, timeout=10,
                              capture_output=True).returncode != 0
    finally:
        server.shutdown()


def test_lambda_requirements_leave_the_runner_only_packages_out():
    lambda_reqs = "\n".join(line.split("#")[0] for line in (ROOT / "requirements.txt").read_text().lower().splitlines())
    assert "neonize" not in lambda_reqs and "prometheus" not in lambda_reqs
    assert "neonize" in (ROOT / "runner_container" / "requirements.txt").read_text()


def test_compose_pins_a_free_localstack_and_builds_the_runner_image():
    import yaml

    compose = yaml.safe_load((ROOT / "localstack-compose.yml").read_text())
    services = compose["services"]
    assert services["localstack"]["image"] == "localstack/localstack:4.13.1"
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["runner"]["build"]["dockerfile"] == "runner_container/Dockerfile"
    runner_env = services["runner"]["environment"]
    assert runner_env["AWS_ENDPOINT_URL"] == "http://localstack:4566"
    assert set(runner_env) - _variables_the_code_reads() <= {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                                             "AWS_DEFAULT_REGION"}
    # the messaging stack is deployed from the same template before the runner starts
    assert "infra/messaging.yaml" in json.dumps(services["messaging"])
    assert services["runner"]["depends_on"]["messaging"]["condition"] == "service_completed_successfully"


def test_compose_messaging_job_creates_the_stack_on_localstack(stack, settings):
    """The compose file's one-shot `messaging` job, run here against our LocalStack."""
    import yaml

    from chalicelib.aws_clients import make_client
    from devstack.messaging_stack import delete_stack

    script = yaml.safe_load((ROOT / "localstack-compose.yml").read_text())["services"]["messaging"]["command"][2]
    script = script.replace("/infra/messaging.yaml", str(INFRA / "messaging.yaml"))
    prefix = f"zc{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "AWS_ENDPOINT_URL": stack.env["AWS_ENDPOINT_URL"], "AWS_ACCESS_KEY_ID": "test",
           "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1", "QUEUE_PREFIX": prefix,
           }
    try:
        first = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
        assert first.returncode == 0 and "created" in first.stdout, first.stderr
        again = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
        assert again.returncode == 0 and "already there" in again.stdout, again.stderr
        sqs = make_client("sqs", settings)
        assert sqs.get_queue_url(QueueName=f"{prefix}-commands-dlq.fifo")["QueueUrl"]
    finally:
        delete_stack(make_client("cloudformation", settings), f"{prefix}-messaging")


# -- the deploy script ----------------------------------------------------------------------
def _dry_run(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, Path]:
    chalice_dir = tmp_path / ".chalice"
    chalice_dir.mkdir()
    for name in ("config.json", "policy-prod.json", "policy-dev.json"):
        (chalice_dir / name).write_text((ROOT / ".chalice" / name).read_text())
    # an AWS call would go to a closed loopback port, without credentials, and fail
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
                "AWS_CONFIG_FILE": "/nonexistent", "AWS_EC2_METADATA_DISABLED": "true"})
    result = subprocess.run([sys.executable, "-m", "infra.deploy", *args, "--dry-run",
                             "--chalice-dir", str(chalice_dir)],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    return result, chalice_dir


def test_dry_run_prints_every_step_and_writes_the_prod_stage(tmp_path):
    before = json.loads((ROOT / ".chalice" / "config.json").read_text())
    result, chalice_dir = _dry_run(tmp_path, "--stage", "prod", "--outputs-file",
                                   str(INFRA / "sample-outputs.json"), "--image", "example/zemeow-runner:1")
    out = result.stdout
    for key in ("network", "media", "messaging", "database", "runner"):
        assert f"deploy stack zemeow-{key} from infra/{key}.yaml" in out
    assert "run QUEUE_PREFIX=zemeow chalice deploy --stage prod" in out
    assert "ReportBatchItemFailures" in out and "API URL" in out
    assert out.index("zemeow-network") < out.index("zemeow-database") < out.index("zemeow-runner") \
        < out.index("write stage") < out.index("chalice deploy") < out.index("ReportBatchItemFailures")

    config = json.loads((chalice_dir / "config.json").read_text())
    stage = config["stages"]["prod"]
    db, msg, media = SAMPLE["database"], SAMPLE["messaging"], SAMPLE["media"]
    assert stage["environment_variables"] == {
        **before["stages"]["prod"]["environment_variables"],
        "ENVIRONMENT": "production", "QUEUE_PREFIX": "zemeow",
        "ADMIN_API_KEY_SECRET_ARN": msg["AdminApiKeySecretArn"],
        "ENCRYPTION_KEY_SECRET_ARN": msg["EncryptionKeySecretArn"],
        "MEDIA_BUCKET": media["MediaBucketName"],
        "POSTGRES_HOST": db["ProxyEndpoint"], "POSTGRES_PORT": "5432", "POSTGRES_DB": "zemeow",
        "DATABASE_SECRET_ARN": db["DatabaseSecretArn"], "LOG_LEVEL": "INFO", "POWERTOOLS_SERVICE_NAME": "zemeow-api",
    }
    assert stage["subnet_ids"] == SAMPLE["network"]["PrivateSubnetIds"].split(",")
    assert stage["security_group_ids"] == [db["DatabaseClientSecurityGroupId"]]
    assert stage["iam_policy_file"] == "policy-prod.json" and stage["autogen_policy"] is False
    assert stage["reserved_concurrency"] == before["stages"]["prod"]["reserved_concurrency"]  # kept
    assert config["stages"]["local"] == before["stages"]["local"]  # other stages untouched
    assert config["stages"]["dev"] == before["stages"]["dev"]
    # every variable of the stage is one the code reads
    assert set(stage["environment_variables"]) - _variables_the_code_reads() - _EXTRA_VARIABLES == set()
    # the stage's settings parse, and the database URL is completed from the secret
    settings = load_settings(stage["environment_variables"])
    assert settings.database_secret_arn == db["DatabaseSecretArn"] and settings.environment == "production"
    url = database_url_with_secret(settings.database_url, {"username": "zemeow", "password": "p@ss"})
    assert url == f"postgresql://zemeow:p%40ss@{db['ProxyEndpoint']}:5432/zemeow"

    from infra.deploy import SQS_HANDLER_TIMEOUT, sqs_handler_names

    for handler in sqs_handler_names():
        assert stage["lambda_functions"][handler]["lambda_timeout"] == SQS_HANDLER_TIMEOUT
    from infra.deploy import schedule_handler_names

    assert schedule_handler_names() == ["prune_retention"]
    assert stage["lambda_functions"]["prune_retention"]["reserved_concurrency"] == 1
    visibility = template("messaging")["Parameters"]["EventsVisibilityTimeout"]["Default"]
    assert visibility >= 6 * SQS_HANDLER_TIMEOUT  # AWS: visibility >= 6x the function timeout

    policy = json.loads((chalice_dir / "policy-prod.json").read_text())
    sids = {s["Sid"] for s in policy["Statement"]}
    assert {"Logs", "Queues", "RunnerQueues", "Secrets", "MediaObjects", "VpcNetworkInterfaces"} <= sids


def test_stage_config_drops_command_shards_and_keeps_what_it_does_not_own():
    """A stage written before placement by slot carries COMMAND_SHARDS, which the code no
    longer reads: a deploy removes it; variables someone else added stay."""
    from infra import deploy

    opts = deploy.parse_args(["--stage", "prod", "--dry-run"])
    existing = {"environment_variables": {"COMMAND_SHARDS": "4", "API_RATE_LIMIT": "50/1m"}}
    env = deploy.stage_config("prod", deploy.STAGES["prod"], SAMPLE, opts, existing)["environment_variables"]
    assert "COMMAND_SHARDS" not in env and env["API_RATE_LIMIT"] == "50/1m"
    committed = json.loads((ROOT / ".chalice" / "config.json").read_text())
    assert not [name for name, stage in committed["stages"].items()
                if "COMMAND_SHARDS" in stage.get("environment_variables", {})]


def test_dry_run_without_outputs_uses_placeholders_and_never_touches_the_real_config(tmp_path):
    committed = (ROOT / ".chalice" / "config.json").read_text()
    env = {**os.environ, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
    result = subprocess.run([sys.executable, "-m", "infra.deploy", "--stage", "dev", "--dry-run"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "<database.ProxyEndpoint>" in result.stdout and "zemeow-dev-messaging" in result.stdout
    assert (ROOT / ".chalice" / "config.json").read_text() == committed


def test_dry_run_with_an_existing_vpc_skips_the_network_stack(tmp_path):
    result, chalice_dir = _dry_run(tmp_path, "--stage", "dev", "--vpc-id", "vpc-123",
                                   "--private-subnet-ids", "subnet-a,subnet-b", "--stacks", "database,messaging")
    assert "zemeow-dev-network" not in result.stdout
    assert '"VpcId": "vpc-123"' in result.stdout
    stage = json.loads((chalice_dir / "config.json").read_text())["stages"]["dev"]
    assert stage["subnet_ids"] == ["subnet-a", "subnet-b"]
    assert stage["environment_variables"]["QUEUE_PREFIX"] == "zemeow-dev"


def test_dry_run_for_localstack_deploys_queues_and_bucket_and_gives_the_lambdas_a_database_url(tmp_path):
    url = "postgresql://zemeow:zemeow@postgres:5432/zemeow"
    result, chalice_dir = _dry_run(tmp_path, "--stage", "dev", "--localstack", "--database-url", url)
    deployed = re.findall(r"deploy stack (\S+) from", result.stdout)
    assert deployed == ["zemeow-dev-media", "zemeow-dev-messaging"]
    stage = json.loads((chalice_dir / "config.json").read_text())["stages"]["dev"]
    env = stage["environment_variables"]
    assert env["DATABASE_URL"] == url and "POSTGRES_HOST" not in env and "DATABASE_SECRET_ARN" not in env
    assert "subnet_ids" not in stage and env["QUEUE_PREFIX"] == "zemeow-dev"
    placeholders = {k for k, v in env.items() if v.startswith("<")}  # outputs a dry run cannot know
    assert "MEDIA_BUCKET" in placeholders  # (validated as a bucket name by load_settings)
    assert load_settings({k: v for k, v in env.items() if k not in placeholders}).database_url == url


def test_localstack_run_deploys_media_and_messaging_and_writes_the_stage(stack, settings, tmp_path):
    """A real (not dry) run against LocalStack, up to the stage config (--skip-chalice:
    LocalStack's Lambda needs Docker)."""
    from chalicelib.aws_clients import make_client
    from devstack.messaging_stack import delete_stack

    prefix = f"zd{uuid.uuid4().hex[:6]}"
    chalice_dir = tmp_path / ".chalice"
    chalice_dir.mkdir()
    (chalice_dir / "config.json").write_text((ROOT / ".chalice" / "config.json").read_text())
    env = {**os.environ, "AWS_ENDPOINT_URL": stack.env["AWS_ENDPOINT_URL"], "AWS_ACCESS_KEY_ID": "test",
           "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
    url = "postgresql://zemeow:zemeow@postgres:5432/zemeow"
    try:
        result = subprocess.run([sys.executable, "-m", "infra.deploy", "--stage", "dev", "--prefix", prefix,
                                 "--localstack", "--database-url", url, "--skip-chalice",
                                 "--chalice-dir", str(chalice_dir)],
                                cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"{prefix}-messaging: CREATE_COMPLETE" in result.stdout
        env_vars = json.loads((chalice_dir / "config.json").read_text())["stages"]["dev"]["environment_variables"]
        assert env_vars["QUEUE_PREFIX"] == prefix and env_vars["DATABASE_URL"] == url
        sm = make_client("secretsmanager", settings)
        assert len(sm.get_secret_value(SecretId=env_vars["ENCRYPTION_KEY_SECRET_ARN"])["SecretString"]) == 64
        assert make_client("s3", settings).head_bucket(Bucket=env_vars["MEDIA_BUCKET"])
        policy = json.loads((chalice_dir / "policy-dev.json").read_text())
        queues = {s["Sid"]: s for s in policy["Statement"]}["Queues"]["Resource"]
        assert f"arn:aws:sqs:us-east-1:000000000000:{prefix}-events" in queues  # LocalStack's account
        # a second run updates nothing and succeeds
        again = subprocess.run([sys.executable, "-m", "infra.deploy", "--stage", "dev", "--prefix", prefix,
                                "--localstack", "--database-url", url, "--skip-chalice", "--stacks", "messaging",
                                "--chalice-dir", str(chalice_dir)],
                               cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert again.returncode == 0 and "no changes" in again.stdout, again.stdout + again.stderr
    finally:
        cfn = make_client("cloudformation", settings)
        delete_stack(cfn, f"{prefix}-messaging")
        delete_stack(cfn, f"{prefix}-media")
        s3 = make_client("s3", settings)
        for bucket in s3.list_buckets()["Buckets"]:
            if bucket["Name"].startswith(prefix):
                s3.delete_bucket(Bucket=bucket["Name"])


def test_real_run_refuses_the_runner_stack_without_an_image(tmp_path):
    env = {**os.environ, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
    result = subprocess.run([sys.executable, "-m", "infra.deploy", "--stage", "prod", "--stacks", "runner",
                             "--skip-chalice", "--chalice-dir", str(tmp_path)], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1 and "--image" in result.stderr


# -- DATABASE_SECRET_ARN, end to end on LocalStack + the test database ---------------------
def test_database_secret_arn_supplies_the_credentials(stack, settings):
    import dataclasses
    from urllib.parse import urlsplit

    from chalicelib.aws_clients import make_client
    from chalicelib.bootstrap import Container

    user = urlsplit(settings.database_url).username or "postgres"
    sm = make_client("secretsmanager", settings)
    arn = sm.create_secret(Name=f"{settings.queue_prefix}/database-{uuid.uuid4().hex[:6]}",
                           SecretString=json.dumps({"username": user, "password": "unused-by-trust-auth",
                                                    "engine": "postgres", "port": 5432}))["ARN"]
    container = Container(dataclasses.replace(settings, database_secret_arn=arn))
    try:
        assert urlsplit(container.database_url).password == "unused-by-trust-auth"
        with container.db.connection() as conn:
            assert conn.execute("SELECT current_user AS u").fetchone()["u"] == user
    finally:
        container.close()
        sm.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)


def test_database_secret_alone_gives_host_port_and_database():
    secret = {"username": "u", "password": "p w", "host": "db.example", "port": 6543, "dbname": "z"}
    assert database_url_with_secret(None, secret) == "postgresql://u:p%20w@db.example:6543/z"
