"""infra/messaging.yaml deployed through CloudFormation on LocalStack, and the runner command
queues that take the place of the old fixed command shards (runner_container/runner_queue.py)."""
from __future__ import annotations

import json
import uuid

import pytest

from chalicelib.aws_clients import make_client
from chalicelib.queues import QueueDirectory
from runner_container.runner_queue import RunnerQueue, runner_queue_name


def test_stack_outputs_name_every_queue_and_no_command_queue(stack, settings):
    out = stack.stack_outputs
    assert out["QueuePrefix"] == settings.queue_prefix
    assert out["EventsQueueUrl"].endswith("/" + settings.events_queue_name)
    assert out["EventsDeadLetterQueueUrl"].endswith("/" + settings.events_dlq_name)
    assert out["CommandDeadLetterQueueUrl"].endswith("/" + settings.command_dlq_name)
    # the runners create their own command queues: the stack has none, and no shard count
    assert not [key for key in out if key.startswith("CommandQueue") or key == "CommandShards"]
    assert ":secret:" in out["AdminApiKeySecretArn"]


def test_stack_creates_no_command_queue_but_the_dlq(stack, settings):
    sqs = make_client("sqs", settings)
    listed = sqs.list_queues(QueueNamePrefix=f"{settings.queue_prefix}-commands").get("QueueUrls", [])
    assert [url.rsplit("/", 1)[-1] for url in listed] == [settings.command_dlq_name]


def test_queues_have_their_redrive_policies(settings):
    sqs = make_client("sqs", settings)
    queues = QueueDirectory(sqs, settings)

    def attrs(url):
        return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]

    events = attrs(queues.events_url)
    policy = json.loads(events["RedrivePolicy"])
    assert policy["deadLetterTargetArn"] == attrs(queues.events_dlq_url)["QueueArn"]
    assert int(policy["maxReceiveCount"]) == 5
    assert events["VisibilityTimeout"] == "360"
    assert attrs(queues.command_dlq_url)["FifoQueue"] == "true"  # a FIFO queue's DLQ must be FIFO


def test_admin_key_secret_is_generated(stack, settings):
    sm = make_client("secretsmanager", settings)
    value = sm.get_secret_value(SecretId=stack.stack_outputs["AdminApiKeySecretArn"])["SecretString"]
    assert len(value) == 48 and value.isalnum()


@pytest.fixture
def runner_queue(settings):
    """A runner's own command queue, as a runner creates it at start, removed afterwards."""
    sqs = make_client("sqs", settings)
    queue = RunnerQueue(sqs, prefix=settings.queue_prefix, runner_id=f"infra-{uuid.uuid4().hex[:8]}",
                        dlq_name=settings.command_dlq_name)
    queue.create()
    yield sqs, queue
    sqs.delete_queue(QueueUrl=queue.url)


def test_runner_queue_redrives_to_the_stacks_command_dlq(runner_queue, settings):
    sqs, queue = runner_queue
    assert queue.url.endswith("/" + queue.name)
    assert queue.name.startswith(settings.queue_prefix + "-runner-") and queue.name.endswith(".fifo")
    got = sqs.get_queue_attributes(QueueUrl=queue.url, AttributeNames=["All"])["Attributes"]
    assert got["FifoQueue"] == "true" and got["ContentBasedDeduplication"] == "false"
    assert got["VisibilityTimeout"] == "60"
    dlq_arn = sqs.get_queue_attributes(QueueUrl=QueueDirectory(sqs, settings).command_dlq_url,
                                       AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    policy = json.loads(got["RedrivePolicy"])
    assert policy["deadLetterTargetArn"] == dlq_arn and int(policy["maxReceiveCount"]) == 5


def test_runner_queue_orders_and_deduplicates_per_session(runner_queue):
    sqs, queue = runner_queue
    for i in range(3):
        sqs.send_message(QueueUrl=queue.url, MessageBody=str(i), MessageGroupId="order-test",
                         MessageDeduplicationId=f"cmd-{i}")
    sqs.send_message(QueueUrl=queue.url, MessageBody="0-again", MessageGroupId="order-test",
                     MessageDeduplicationId="cmd-0")  # same command id: dropped by SQS
    got: list[str] = []
    for _ in range(10):
        for m in sqs.receive_message(QueueUrl=queue.url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
            got.append(m["Body"])
            sqs.delete_message(QueueUrl=queue.url, ReceiptHandle=m["ReceiptHandle"])
        if len(got) >= 3:
            break
    assert got == ["0", "1", "2"]


def test_runner_queue_name_is_short_valid_and_distinct_per_runner():
    """SQS names: at most 80 characters of [A-Za-z0-9_-] plus .fifo; the longest prefix
    QUEUE_PREFIX allows (40) with any runner id still fits, and two runners never share one."""
    long_prefix = "p" * 40
    names = {runner_queue_name(long_prefix, f"runner-{i}-" + "x" * 200) for i in range(50)}
    assert len(names) == 50
    for name in names:
        stem = name.removesuffix(".fifo")
        assert len(name) <= 80 and stem.replace("-", "").replace("_", "").isalnum()
    assert runner_queue_name("z", "a") == runner_queue_name("z", "a")
