"""An SQS stand-in that records what the webhook dispatcher sends (follow-up delivery and
probe messages), for tests that look at those messages rather than at a queue."""
from __future__ import annotations

from typing import Any


class RecordingSqs:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803 - boto3's names
        self.sent.extend(Entries)
        return {"Successful": [{"Id": e["Id"]} for e in Entries]}
