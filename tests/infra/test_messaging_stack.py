"""infra/messaging.yaml deployed through CloudFormation on LocalStack."""
from __future__ import annotations

import json

from chalicelib.aws_clients import make_client
from chalicelib.queues import QueueDirectory, shard_for


def test_stack_outputs_name_every_queue(stack, settings):
    out = stack.stack_outputs
    assert out["QueuePrefix"] == settings.queue_prefix
    assert out["EventsQueueUrl"].endswith("/" + settings.events_queue_name)
    assert out["EventsDeadLetterQueueUrl"].endswith("/" + settings.events_dlq_name)
    for shard in range(settings.command_shards):
        assert out[f"CommandQueue{shard}Url"].endswith("/" + settings.command_queue_name(shard))
    assert f"CommandQueue{settings.command_shards}Url" not in out  # conditions keep only N shards
    assert ":secret:" in out["AdminApiKeySecretArn"]


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

    command_dlq_arn = attrs(queues.command_dlq_url)["QueueArn"]
    for shard in range(settings.command_shards):
        command = attrs(queues.command_url(shard))
        assert command["FifoQueue"] == "true"
        assert command["ContentBasedDeduplication"] == "false"
        assert json.loads(command["RedrivePolicy"])["deadLetterTargetArn"] == command_dlq_arn
        assert command["VisibilityTimeout"] == "60"


def test_admin_key_secret_is_generated(stack, settings):
    sm = make_client("secretsmanager", settings)
    value = sm.get_secret_value(SecretId=stack.stack_outputs["AdminApiKeySecretArn"])["SecretString"]
    assert len(value) == 48 and value.isalnum()


def test_fifo_shard_settings_order_and_deduplicate_per_session(settings):
    """A queue created with a stack shard's own attributes orders and dedupes per group.

    (A clone, because runners in other tests consume the stack's shards.)"""
    import uuid

    sqs = make_client("sqs", settings)
    queues = QueueDirectory(sqs, settings)
    shard = sqs.get_queue_attributes(QueueUrl=queues.command_url(0), AttributeNames=["All"])["Attributes"]
    copied = {k: shard[k] for k in ("FifoQueue", "ContentBasedDeduplication", "DeduplicationScope",
                                    "FifoThroughputLimit", "VisibilityTimeout")}
    url = sqs.create_queue(QueueName=f"clone-{uuid.uuid4().hex[:8]}.fifo", Attributes=copied)["QueueUrl"]
    try:
        for i in range(3):
            sqs.send_message(QueueUrl=url, MessageBody=str(i), MessageGroupId="order-test",
                             MessageDeduplicationId=f"cmd-{i}")
        sqs.send_message(QueueUrl=url, MessageBody="0-again", MessageGroupId="order-test",
                         MessageDeduplicationId="cmd-0")  # same command id: dropped by SQS
        got = []
        for _ in range(10):
            for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
                got.append(m["Body"])
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
            if len(got) >= 3:
                break
        assert got == ["0", "1", "2"]
    finally:
        sqs.delete_queue(QueueUrl=url)


def test_shard_choice_is_stable_and_spread():
    assert shard_for("session-a", 4) == shard_for("session-a", 4)
    spread = {shard_for(f"s{i}", 4) for i in range(100)}
    assert spread == {0, 1, 2, 3}
