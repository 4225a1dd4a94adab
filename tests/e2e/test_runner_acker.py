"""The runner's batched deletes of command messages, against LocalStack SQS."""
from __future__ import annotations

import uuid

from runner_container.acker import SqsAcker


class _Log:
    def __init__(self):
        self.warnings = []

    def warning(self, message, extra=None):
        self.warnings.append((message, extra))


def _counts(sqs, url):
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]), int(attrs["ApproximateNumberOfMessagesNotVisible"])


def test_acked_messages_leave_the_queue_in_batches_and_a_bad_receipt_is_only_logged(container):
    sqs = container.sqs
    # a standard queue: a FIFO one would hold each group's later messages back until the
    # earlier are deleted, which is what the runner relies on, not what is tested here
    name = f"{container.settings.queue_prefix}-acker-{uuid.uuid4().hex[:6]}"
    url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "60"})["QueueUrl"]
    try:
        for n in range(23):  # more than two batches
            sqs.send_message(QueueUrl=url, MessageBody=str(n))
        receipts: list[str] = []
        while len(receipts) < 23:
            answer = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            receipts += [m["ReceiptHandle"] for m in answer.get("Messages", [])]
        assert _counts(sqs, url) == (0, 23)  # all in flight

        calls = []
        original = sqs.delete_message_batch

        def counting(**kwargs):
            calls.append(len(kwargs["Entries"]))
            return original(**kwargs)

        log = _Log()
        acker = SqsAcker(type("Sqs", (), {"delete_message_batch": staticmethod(counting)})(), log)
        for receipt in receipts:
            acker.ack(url, receipt)
        acker.ack(url, "not-a-receipt-handle")
        acker.close()

        assert _counts(sqs, url) == (0, 0)  # every acked message is gone: none comes back
        assert sum(calls) == 24 and max(calls) <= 10 and len(calls) < 24  # batched, never over SQS's 10
        assert log.warnings and log.warnings[-1][0] == "command delete failed"
    finally:
        sqs.delete_queue(QueueUrl=url)
