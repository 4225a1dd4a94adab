"""Deploy zemeow to AWS: CloudFormation stacks -> chalice stage config -> chalice deploy
-> ReportBatchItemFailures on the SQS event source mappings -> API Gateway stage throttling
-> the API URL.

    .venv/bin/python -m infra.deploy --stage prod --image ACCOUNT.dkr.ecr.REGION.amazonaws.com/zemeow-runner:TAG
    .venv/bin/python -m infra.deploy --stage prod --dry-run --outputs-file infra/sample-outputs.json

Stacks, in order (each one's outputs feed the next one's parameters):
  network   infra/network.yaml    VPC, private subnets, NAT, SQS/Secrets Manager/S3 endpoints
                                  (skipped with --vpc-id/--private-subnet-ids: an existing VPC)
  media     infra/media.yaml      S3 media bucket
  messaging infra/messaging.yaml  commands DLQ, events queue + DLQ, alarms, key secrets (each runner
                                  creates its own command queue: runner_container/runner_queue.py)
  database  infra/database.yaml   Aurora PostgreSQL Serverless v2, credentials secret, RDS Proxy
  runner    infra/runner.yaml     ECS Fargate service for runner_container (needs --image)
  monitoring infra/monitoring.yaml CloudWatch dashboard, API 5xx-rate and webhook failure-rate alarms

`--dry-run` calls no AWS API: it prints every step with the parameters it would pass,
takes stack outputs from --outputs-file (or placeholders) and writes the stage config to
--chalice-dir when one is given (else to a temporary directory, printed).
`--localstack` (with AWS_ENDPOINT_URL set) deploys only messaging and media, without
VPC or database stacks, and gives the Lambdas --database-url: see README, "Docker".
"""
from __future__ import annotations

import argparse
import ast
import copy
import dataclasses
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

PROJECT_ROOT = Path(__file__).resolve().parent.parent
INFRA = PROJECT_ROOT / "infra"
STACK_ORDER = ("network", "media", "messaging", "database", "runner", "monitoring")
LOCALSTACK_STACKS = ("media", "messaging")
# Lambda's SQS event source: a visibility timeout of 6x the function timeout (AWS's advice);
# messaging.yaml's EventsVisibilityTimeout is 360 s, so SQS handlers get 60 s.
SQS_HANDLER_TIMEOUT = 60


@dataclass(frozen=True)
class StageProfile:
    prefix: str
    environment: str
    lambda_memory: int = 512
    db_min_acu: str = "0.5"
    db_max_acu: str = "4"
    db_proxy: str = "true"
    db_deletion_protection: str = "true"
    runner_cpu: str = "1024"
    runner_memory: str = "2048"
    runner_desired: str = "1"
    runner_max: str = "4"
    nat_gateways: str = "1"
    # API Gateway stage throttling (every method): a flood is refused by API Gateway (429)
    # before it reaches, and pays for, a Lambda; the per-key limit (API_RATE_LIMIT) is
    # the finer one behind it. Rate in requests/s, burst in requests.
    api_throttle_rate: float = 500.0
    api_throttle_burst: int = 1000


STAGES: dict[str, StageProfile] = {
    "dev": StageProfile(prefix="zemeow-dev", environment="staging", lambda_memory=512,
                        db_min_acu="0", db_max_acu="2", db_proxy="false", db_deletion_protection="false",
                        runner_cpu="512", runner_memory="1024", runner_max="2",
                        api_throttle_rate=50.0, api_throttle_burst=100),
    "prod": StageProfile(prefix="zemeow", environment="production", lambda_memory=1024,
                         db_min_acu="0.5", db_max_acu="8", runner_cpu="1024", runner_memory="2048",
                         runner_max="4"),
}


class DeployError(RuntimeError):
    pass


# -- the plan: pure functions of the stage, the options and the outputs so far -----------
def stack_name(prefix: str, key: str) -> str:
    return f"{prefix}-{key}"  # messaging: chalicelib.config.Settings.messaging_stack_name


def template_queue_names(prefix: str) -> list[str]:
    """Every SQS queue name infra/messaging.yaml declares, for this prefix (the fixed queues:
    events, events DLQ, commands DLQ)."""
    text = (INFRA / "messaging.yaml").read_text()
    names = re.findall(r'QueueName:\s*!Sub\s*"([^"]+)"', text)
    return [n.replace("${QueuePrefix}", prefix) for n in names]


def queue_arns(region: str, prefix: str, account: str = "*") -> list[str]:
    return [f"arn:aws:sqs:{region}:{account}:{name}" for name in template_queue_names(prefix)]


# Each runner creates its own command queue at start, <prefix>-runner-<16 hex>.fifo
# (runner_container/runner_queue.runner_queue_name), so IAM cannot list them: it names them by
# pattern. Sixteen `?` (one character each), not `*`: the pattern then matches no queue of a
# stage whose prefix starts with "<prefix>-runner-", and nothing but a runner's queue.
RUNNER_QUEUE_PATTERN = "{prefix}-runner-" + "?" * 16 + ".fifo"


def runner_queue_arn(region: str, prefix: str, account: str = "*") -> str:
    """The ARN pattern of every runner command queue of the stage."""
    return f"arn:aws:sqs:{region}:{account}:{RUNNER_QUEUE_PATTERN.format(prefix=prefix)}"


def sqs_handler_names(app_path: Path = PROJECT_ROOT / "app.py") -> list[str]:
    """Names of the `@app.on_sqs_message` functions of app.py (their Lambda's suffix)."""
    return _decorated_names("on_sqs_message", app_path)


def schedule_handler_names(app_path: Path = PROJECT_ROOT / "app.py") -> list[str]:
    """Names of the `@app.schedule` functions of app.py (the hourly retention job)."""
    return _decorated_names("schedule", app_path)


def _decorated_names(decorator: str, app_path: Path) -> list[str]:
    tree = ast.parse(app_path.read_text())
    names = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for deco in node.decorator_list:
            call = deco if isinstance(deco, ast.Call) else None
            target = call.func if call else deco
            if isinstance(target, ast.Attribute) and target.attr == decorator:
                explicit = [k.value.value for k in (call.keywords if call else [])
                            if k.arg == "name" and isinstance(k.value, ast.Constant)]
                names.append(explicit[0] if explicit else node.name)
    return names


def stack_parameters(key: str, profile: StageProfile, outputs: dict[str, dict[str, str]],
                     opts: argparse.Namespace) -> dict[str, str]:
    net = _network(outputs, opts)
    prefix = profile.prefix
    if key == "network":
        return {"NamePrefix": prefix, "NatGateways": profile.nat_gateways}
    if key == "media":
        return {"NamePrefix": re.sub(r"[^a-z0-9-]", "-", prefix.lower())[:30],
                "MediaExpirationDays": str(opts.media_expiration_days)}
    if key == "messaging":
        params = {"QueuePrefix": prefix}
        if opts.alarm_topic_arn:
            params["AlarmTopicArn"] = opts.alarm_topic_arn
        return params
    if key == "database":
        return {"NamePrefix": prefix, "VpcId": net["VpcId"], "PrivateSubnetIds": net["PrivateSubnetIds"],
                "MinCapacity": profile.db_min_acu, "MaxCapacity": profile.db_max_acu,
                "CreateProxy": profile.db_proxy, "DeletionProtection": profile.db_deletion_protection}
    if key == "runner":
        db, msg, media = outputs["database"], outputs["messaging"], outputs["media"]
        return {
            "NamePrefix": prefix,
            "ImageUri": opts.image or "<--image: the runner image URI>",
            "VpcId": net["VpcId"], "SubnetIds": net["PrivateSubnetIds"],
            "DatabaseClientSecurityGroupId": db["DatabaseClientSecurityGroupId"],
            "DatabaseHost": db["ClusterEndpoint"], "DatabasePort": db.get("ClusterPort", "5432"),
            "DatabaseName": db.get("DatabaseName", "zemeow"), "DatabaseSecretArn": db["DatabaseSecretArn"],
            "AdminApiKeySecretArn": msg["AdminApiKeySecretArn"],
            "EncryptionKeySecretArn": msg["EncryptionKeySecretArn"],
            "QueueArns": ",".join(queue_arns(opts.region, prefix, _account(opts))),
            "MediaBucketName": media["MediaBucketName"],
            "Cpu": profile.runner_cpu, "Memory": profile.runner_memory,
            "DesiredCount": profile.runner_desired, "MaxCount": profile.runner_max,
            "Environment": profile.environment,
        }
    if key == "monitoring":
        params = {"NamePrefix": prefix}
        if opts.alarm_topic_arn:
            params["AlarmTopicArn"] = opts.alarm_topic_arn
        return params
    raise DeployError(f"unknown stack {key}")


def _account(opts: argparse.Namespace) -> str:
    return getattr(opts, "account", None) or "*"


def _network(outputs: dict[str, dict[str, str]], opts: argparse.Namespace) -> dict[str, str]:
    if opts.vpc_id:
        return {"VpcId": opts.vpc_id, "PrivateSubnetIds": opts.private_subnet_ids or ""}
    return outputs.get("network", {})


# Variables this script once set and the code no longer reads: removed from a kept stage
# (COMMAND_SHARDS: the fixed command shards gave way to placement by slot, issue 18).
RETIRED_VARIABLES = ("COMMAND_SHARDS",)


def stage_config(stage: str, profile: StageProfile, outputs: dict[str, dict[str, str]],
                 opts: argparse.Namespace, existing: dict[str, Any] | None = None) -> dict[str, Any]:
    """The chalice stage: keys this script owns are set, everything else is kept."""
    config = copy.deepcopy(existing or {})
    msg, media = outputs.get("messaging", {}), outputs.get("media", {})
    env = config.setdefault("environment_variables", {})
    for retired in RETIRED_VARIABLES:
        env.pop(retired, None)
    env.update({
        "ENVIRONMENT": profile.environment,
        "QUEUE_PREFIX": profile.prefix,
        "ADMIN_API_KEY_SECRET_ARN": msg.get("AdminApiKeySecretArn", ""),
        "ENCRYPTION_KEY_SECRET_ARN": msg.get("EncryptionKeySecretArn", ""),
        "MEDIA_BUCKET": media.get("MediaBucketName", ""),
        "LOG_LEVEL": env.get("LOG_LEVEL", "INFO"),
        "POWERTOOLS_SERVICE_NAME": "zemeow-api",
    })
    config.update({"api_gateway_stage": "api", "autogen_policy": False,
                   "iam_policy_file": f"policy-{stage}.json",
                   "lambda_timeout": config.get("lambda_timeout", 30),
                   "lambda_memory_size": profile.lambda_memory})
    if opts.localstack:
        env["DATABASE_URL"] = opts.database_url
        for key in ("POSTGRES_HOST", "POSTGRES_PORT", "POSTGRES_DB", "DATABASE_SECRET_ARN"):
            env.pop(key, None)
        config.pop("subnet_ids", None)
        config.pop("security_group_ids", None)
    else:
        db, net = outputs.get("database", {}), _network(outputs, opts)
        env.pop("DATABASE_URL", None)
        env.update({"POSTGRES_HOST": db.get("ProxyEndpoint", ""), "POSTGRES_PORT": db.get("ClusterPort", "5432"),
                    "POSTGRES_DB": db.get("DatabaseName", "zemeow"),
                    "DATABASE_SECRET_ARN": db.get("DatabaseSecretArn", "")})
        config["subnet_ids"] = [s for s in net.get("PrivateSubnetIds", "").split(",") if s]
        config["security_group_ids"] = [db["DatabaseClientSecurityGroupId"]] \
            if db.get("DatabaseClientSecurityGroupId") else []
    functions = config.setdefault("lambda_functions", {})
    for name in sqs_handler_names():
        functions.setdefault(name, {})["lambda_timeout"] = SQS_HANDLER_TIMEOUT
    for name in schedule_handler_names():
        # one run at a time, and none of the stage's reserved concurrency (meant for the API)
        functions.setdefault(name, {})["reserved_concurrency"] = 1
    if not functions:
        config.pop("lambda_functions")
    return config


OWNED_SIDS = ("Logs", "Queues", "RunnerQueues", "Secrets", "MediaObjects", "MediaBucket", "VpcNetworkInterfaces")


def lambda_policy(stage: str, profile: StageProfile, outputs: dict[str, dict[str, str]],
                  opts: argparse.Namespace, existing: dict[str, Any] | None = None) -> dict[str, Any]:
    """The Lambdas' IAM policy: statements with OWNED_SIDS are rewritten, others kept."""
    msg, media, db = outputs.get("messaging", {}), outputs.get("media", {}), outputs.get("database", {})
    secrets = [msg.get("AdminApiKeySecretArn"), msg.get("EncryptionKeySecretArn")]
    if not opts.localstack:
        secrets.append(db.get("DatabaseSecretArn"))
    secrets = [arn for arn in secrets if arn]
    statements = [
        {"Sid": "Logs", "Effect": "Allow",
         "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
         "Resource": f"arn:aws:logs:{opts.region}:*:log-group:/aws/lambda/zemeow-{stage}*"},
        {"Sid": "Queues", "Effect": "Allow",
         "Action": ["sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
                    "sqs:GetQueueUrl", "sqs:GetQueueAttributes"],
         "Resource": queue_arns(opts.region, profile.prefix, _account(opts))},
        # a command goes to the queue of the runner holding its session (chalicelib/commands/outbox.py):
        # send only; the runners create, read and delete their queues with their own role
        {"Sid": "RunnerQueues", "Effect": "Allow", "Action": ["sqs:SendMessage"],
         "Resource": runner_queue_arn(opts.region, profile.prefix, _account(opts))},
        {"Sid": "Secrets", "Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"],
         "Resource": secrets or [f"arn:aws:secretsmanager:{opts.region}:*:secret:{profile.prefix}/*"]},
    ]
    if media.get("MediaBucketArn"):
        # chalicelib/media.py: presigned PUT (upload-url) and GET (media/url) are signed by this
        # role, HEAD before a send; a session delete lists and deletes the session's prefix
        statements.append({"Sid": "MediaObjects", "Effect": "Allow",
                           "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                           "Resource": f"{media['MediaBucketArn']}/sessions/*"})
        statements.append({"Sid": "MediaBucket", "Effect": "Allow", "Action": ["s3:ListBucket"],
                           "Resource": media["MediaBucketArn"],
                           "Condition": {"StringLike": {"s3:prefix": "sessions/*"}}})
    if not opts.localstack:
        # a Lambda in a VPC creates its network interfaces with its own role
        statements.append({"Sid": "VpcNetworkInterfaces", "Effect": "Allow",
                           "Action": ["ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces",
                                      "ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses",
                                      "ec2:UnassignPrivateIpAddresses"],
                           "Resource": "*"})
    kept = [s for s in (existing or {}).get("Statement", []) if s.get("Sid") not in OWNED_SIDS]
    return {"Version": "2012-10-17", "Statement": statements + kept}


# -- the steps --------------------------------------------------------------------------
class Deployer:
    def __init__(self, opts: argparse.Namespace, say: Callable[[str], None] = print):
        self.opts = opts
        self.say = say
        self.stage = opts.stage
        self.profile = STAGES[opts.stage]
        if opts.prefix:  # e.g. a second environment in the same account
            self.profile = dataclasses.replace(self.profile, prefix=opts.prefix)
        self.outputs: dict[str, dict[str, str]] = {}
        self.sample = json.loads(Path(opts.outputs_file).read_text()) if opts.outputs_file else {}
        self.step_no = 0
        self._session = None

    def step(self, text: str) -> None:
        self.step_no += 1
        prefix = "[dry-run] " if self.opts.dry_run else ""
        self.say(f"{prefix}step {self.step_no}: {text}")

    def client(self, service: str) -> Any:
        if self.opts.dry_run:
            raise DeployError("dry run must not call AWS")  # a bug guard
        import boto3  # noqa: PLC0415

        if self._session is None:
            self._session = boto3.session.Session(region_name=self.opts.region)
        return self._session.client(service)  # AWS_ENDPOINT_URL is honoured by boto3 itself

    def stacks(self) -> list[str]:
        wanted = self.opts.stacks.split(",") if self.opts.stacks else \
            list(LOCALSTACK_STACKS if self.opts.localstack else STACK_ORDER)
        unknown = set(wanted) - set(STACK_ORDER)
        if unknown:
            raise DeployError(f"unknown stacks: {', '.join(sorted(unknown))} (known: {', '.join(STACK_ORDER)})")
        if self.opts.vpc_id and "network" in wanted:
            wanted.remove("network")
        return [key for key in STACK_ORDER if key in wanted]

    def run(self) -> int:
        stacks = self.stacks()
        if "runner" in stacks and not self.opts.image and not self.opts.dry_run:
            raise DeployError("the runner stack needs --image (build and push runner_container/Dockerfile; "
                              "see infra/README.md), or leave it out with --stacks")
        if self.opts.localstack and not self.opts.database_url:
            raise DeployError("--localstack needs --database-url (the PostgreSQL the Lambdas reach)")
        self.opts.account = self.sample.get("account", "*") if self.opts.dry_run else \
            self.client("sts").get_caller_identity()["Account"]
        for key in stacks:
            self.deploy_stack(key)
        for key in STACK_ORDER:  # outputs of stacks not deployed now (already there)
            if key not in self.outputs and not (key == "network" and self.opts.vpc_id):
                self.outputs[key] = self.existing_outputs(key)
        self.write_chalice_config()
        if self.opts.skip_chalice:
            self.say("chalice deploy skipped (--skip-chalice)")
            return 0
        self.chalice_deploy()
        self.enable_partial_batch_responses()
        self.throttle_api_stage()
        self.print_api_url()
        return 0

    def deploy_stack(self, key: str) -> None:
        name = stack_name(self.profile.prefix, key)
        template = INFRA / f"{key}.yaml"
        params = stack_parameters(key, self.profile, self.outputs, self.opts)
        self.step(f"deploy stack {name} from {template.relative_to(PROJECT_ROOT)} with parameters "
                  + json.dumps(params, sort_keys=True))
        if self.opts.dry_run:
            self.outputs[key] = self.sample.get(key) or _placeholders(key)
            self.say(f"    outputs ({'from ' + self.opts.outputs_file if key in self.sample else 'placeholders'}): "
                     + json.dumps(self.outputs[key], sort_keys=True))
            return
        self.outputs[key] = deploy_stack(self.client("cloudformation"), name, template, params, say=self.say)
        self.say("    outputs: " + json.dumps(self.outputs[key], sort_keys=True))

    def existing_outputs(self, key: str) -> dict[str, str]:
        if self.opts.dry_run:
            return self.sample.get(key, {})
        from botocore.exceptions import ClientError  # noqa: PLC0415

        try:
            stack = self.client("cloudformation").describe_stacks(
                StackName=stack_name(self.profile.prefix, key))["Stacks"][0]
        except ClientError:
            return {}
        return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}

    def chalice_dir(self) -> Path:
        if self.opts.chalice_dir:
            return Path(self.opts.chalice_dir)
        if self.opts.dry_run:  # never touch the committed config in a dry run
            target = Path(tempfile.mkdtemp(prefix="zemeow-dry-run-")) / ".chalice"
            target.mkdir()
            source = PROJECT_ROOT / ".chalice"
            for name in ("config.json", f"policy-{self.stage}.json"):
                if (source / name).exists():
                    (target / name).write_text((source / name).read_text())
            return target
        return PROJECT_ROOT / ".chalice"

    def write_chalice_config(self) -> None:
        directory = self.chalice_dir()
        config_path, policy_path = directory / "config.json", directory / f"policy-{self.stage}.json"
        self.step(f"write stage '{self.stage}' into {config_path} and its IAM policy {policy_path}")
        config = json.loads(config_path.read_text()) if config_path.exists() else \
            {"version": "2.0", "app_name": "zemeow", "stages": {}}
        stages = config.setdefault("stages", {})
        stages[self.stage] = stage_config(self.stage, self.profile, self.outputs, self.opts,
                                          stages.get(self.stage))
        policy = lambda_policy(self.stage, self.profile, self.outputs, self.opts,
                               json.loads(policy_path.read_text()) if policy_path.exists() else None)
        directory.mkdir(parents=True, exist_ok=True)
        config_path.write_text(json.dumps(config, indent=2) + "\n")
        policy_path.write_text(json.dumps(policy, indent=2) + "\n")
        self.say("    stage: " + json.dumps(stages[self.stage], sort_keys=True))

    def chalice_env(self) -> dict[str, str]:
        # app.py names its SQS queues from QUEUE_PREFIX when chalice imports it
        return {**os.environ, "QUEUE_PREFIX": self.profile.prefix, "AWS_DEFAULT_REGION": self.opts.region}

    def chalice_command(self) -> list[str]:
        return [str(Path(sys.executable).parent / "chalice"), "deploy", "--stage", self.stage]

    def chalice_deploy(self) -> None:
        command = self.chalice_command()
        self.step(f"run QUEUE_PREFIX={self.profile.prefix} chalice {' '.join(command[1:])}")
        if self.opts.dry_run:
            return
        subprocess.run(command, cwd=PROJECT_ROOT, env=self.chalice_env(), check=True)

    def deployed(self) -> dict[str, Any]:
        path = PROJECT_ROOT / ".chalice" / "deployed" / f"{self.stage}.json"
        return json.loads(path.read_text()) if path.exists() else {"resources": []}

    def enable_partial_batch_responses(self) -> None:
        handlers = sqs_handler_names()
        self.step("enable ReportBatchItemFailures on the SQS event source mapping of "
                  + (", ".join(handlers) if handlers else "(no @app.on_sqs_message handler in app.py: nothing)"))
        if self.opts.dry_run or not handlers:
            return
        lam = self.client("lambda")
        for resource in self.deployed().get("resources", []):
            if resource.get("resource_type") == "sqs_event":
                lam.update_event_source_mapping(UUID=resource["event_uuid"],
                                                FunctionResponseTypes=["ReportBatchItemFailures"])
                self.say(f"    {resource['name']}: ReportBatchItemFailures on")

    def throttle_api_stage(self) -> None:
        rate, burst = self.profile.api_throttle_rate, self.profile.api_throttle_burst
        self.step(f"throttle the API Gateway stage 'api': {rate:g} requests/s, burst {burst} (every method)")
        if self.opts.dry_run:
            return
        apis = [r["rest_api_id"] for r in self.deployed().get("resources", []) if r.get("rest_api_id")]
        if not apis:
            raise DeployError("no rest_api_id in .chalice/deployed: cannot throttle the API stage")
        self.client("apigateway").update_stage(restApiId=apis[0], stageName="api",
                                               patchOperations=stage_throttling(rate, burst))
        self.say(f"    {apis[0]}/api: throttled")

    def print_api_url(self) -> None:
        self.step("print the API URL")
        if self.opts.dry_run:
            self.say(f"    API URL: https://<rest-api-id>.execute-api.{self.opts.region}.amazonaws.com/api/")
            return
        urls = [r["rest_api_url"] for r in self.deployed().get("resources", []) if r.get("rest_api_url")]
        self.say(f"    API URL: {urls[0] if urls else '(not found in .chalice/deployed)'}")


def stage_throttling(rate: float, burst: int) -> list[dict[str, str]]:
    """API Gateway `UpdateStage` patch: the default method settings (`/*/*`) of every route."""
    return [{"op": "replace", "path": "/*/*/throttling/rateLimit", "value": f"{rate:g}"},
            {"op": "replace", "path": "/*/*/throttling/burstLimit", "value": str(burst)}]


def _placeholders(key: str) -> dict[str, str]:
    names = {
        "network": ["VpcId", "VpcCidr", "PrivateSubnetIds", "PublicSubnetIds"],
        "media": ["MediaBucketName", "MediaBucketArn"],
        "messaging": ["QueuePrefix", "EventsQueueUrl", "EventsQueueArn", "AdminApiKeySecretArn",
                      "EncryptionKeySecretArn"],
        "database": ["DatabaseSecretArn", "ClusterEndpoint", "ClusterPort", "ProxyEndpoint", "DatabaseName",
                     "DatabaseClientSecurityGroupId"],
        "runner": ["ClusterName", "ServiceName", "TaskRoleArn", "LogGroupName"],
        "monitoring": ["DashboardName", "Api5xxRateAlarmName", "WebhookFailureRateAlarmName"],
    }[key]
    return {name: f"<{key}.{name}>" for name in names}


def deploy_stack(cfn: Any, name: str, template: Path, params: dict[str, str], *,
                 say: Callable[[str], None] = print, timeout: float = 3600) -> dict[str, str]:
    """Create or update a stack, wait for it, return its outputs."""
    from botocore.exceptions import ClientError  # noqa: PLC0415

    kwargs = {"StackName": name, "TemplateBody": template.read_text(),
              "Parameters": [{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()],
              "Capabilities": ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
              "Tags": [{"Key": "app", "Value": "zemeow"}]}
    try:
        status = cfn.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"]
    except ClientError as exc:
        if "does not exist" not in str(exc):
            raise
        status = None
    if status == "ROLLBACK_COMPLETE":  # a failed first create cannot be updated
        cfn.delete_stack(StackName=name)
        _wait(cfn, name, timeout, say)
        status = None
    if status is None:
        cfn.create_stack(**kwargs)
    else:
        try:
            cfn.update_stack(**kwargs)
        except ClientError as exc:
            if "No updates are to be performed" not in str(exc):
                raise
            say("    no changes")
    final = _wait(cfn, name, timeout, say)
    if final not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
        events = cfn.describe_stack_events(StackName=name)["StackEvents"]
        reasons = [f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason')}"
                   for e in events if "FAILED" in e.get("ResourceStatus", "")][:5]
        raise DeployError(f"stack {name} ended in {final}: " + "; ".join(reasons))
    stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def _wait(cfn: Any, name: str, timeout: float, say: Callable[[str], None]) -> str:
    from botocore.exceptions import ClientError  # noqa: PLC0415

    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            status = cfn.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"]
        except ClientError:
            return "DELETE_COMPLETE"
        if status != last:
            say(f"    {name}: {status}")
            last = status
        if not status.endswith("_IN_PROGRESS"):
            return status
        time.sleep(5)
    raise DeployError(f"stack {name} still {last} after {timeout:g}s")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m infra.deploy", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", choices=sorted(STAGES), required=True)
    parser.add_argument("--region", default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
                        or "us-east-1")
    parser.add_argument("--image", help="runner image URI (required for the runner stack)")
    parser.add_argument("--prefix", help="QUEUE_PREFIX and stack-name prefix instead of the stage's "
                                         "(prod: zemeow, dev: zemeow-dev)")
    parser.add_argument("--stacks", help="comma-separated subset of " + ",".join(STACK_ORDER))
    parser.add_argument("--vpc-id", help="use an existing VPC (skips the network stack)")
    parser.add_argument("--private-subnet-ids", help="with --vpc-id: comma-separated private subnets (NAT route)")
    parser.add_argument("--alarm-topic-arn", help="SNS topic for the alarms (DLQs, API 5xx rate, webhook failures)")
    parser.add_argument("--media-expiration-days", type=int, default=30)
    parser.add_argument("--dry-run", action="store_true", help="print every step, call no AWS API")
    parser.add_argument("--outputs-file", help="dry run: JSON {stack: {OutputKey: value}} to use as stack outputs")
    parser.add_argument("--chalice-dir", help="where config.json and policy-<stage>.json are written "
                                              "(default .chalice; a dry run uses a temporary copy)")
    parser.add_argument("--skip-chalice", action="store_true", help="stop after writing the stage config")
    parser.add_argument("--localstack", action="store_true",
                        help="messaging + media only, no VPC/database/runner stacks (AWS_ENDPOINT_URL)")
    parser.add_argument("--database-url", help="--localstack: DATABASE_URL of the Lambdas")
    opts = parser.parse_args(argv)
    if opts.vpc_id and not opts.private_subnet_ids:
        parser.error("--vpc-id needs --private-subnet-ids")
    if opts.chalice_dir and not (opts.dry_run or opts.skip_chalice) \
            and Path(opts.chalice_dir).resolve() != PROJECT_ROOT / ".chalice":
        parser.error("chalice deploy reads the project's .chalice/: --chalice-dir needs --dry-run or --skip-chalice")
    return opts


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    try:
        return Deployer(opts).run()
    except DeployError as exc:
        print(f"infra.deploy: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - botocore's errors, in one line
        if exc.__class__.__module__.startswith("botocore"):
            print(f"infra.deploy: AWS call failed: {exc}", file=sys.stderr)
            return 1
        if not isinstance(exc, subprocess.CalledProcessError):
            raise
        print(f"infra.deploy: {' '.join(map(str, exc.cmd))} failed with exit code {exc.returncode}",
              file=sys.stderr)
        return exc.returncode or 1


if __name__ == "__main__":
    sys.exit(main())
