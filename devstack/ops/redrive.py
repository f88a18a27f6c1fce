"""Move messages from a dead-letter queue back to its source queue (`python -m devstack.ops redrive`).

The AWS China regions have no console redrive for SQS, and the redrive API does not keep FIFO order,
so this command copies each message itself:

- FIFO (the inbound queue): the copy keeps its `MessageGroupId`, so ticket-write sees a citizen's
  pushes in order. Its `MessageDeduplicationId` is derived from the original id and the message's
  `SentTimestamp`. The original id is not reused, because SQS would drop it as a duplicate within 5
  minutes of the first send. A rerun after a crash derives the same id again, so SQS drops the
  second copy within those 5 minutes. After that, ticket-write's push marker stops a duplicate.
- The message is deleted from the dead-letter queue only after its copy was sent. A failed send
  leaves it there. The rest of its group in the same batch is skipped, so that no later push
  overtakes it, and returns to the dead-letter queue after the receive's visibility timeout.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from devstack.ops.stack_outputs import StackTarget

logger = logging.getLogger(__name__)

# queue name on the command line -> (dead-letter queue output, source queue output)
QUEUE_OUTPUTS = {
    "inbound": ("InboundDeadLetterQueueUrl", "InboundQueueUrl"),
    "media": ("MediaDeadLetterQueueUrl", "MediaQueueUrl"),
    "outbound": ("OutboundDeadLetterQueueUrl", "OutboundQueueUrl"),
}
# Seconds a received message stays hidden while it is copied; a failed copy becomes visible again then.
RECEIVE_VISIBILITY_SECONDS = 60
MAX_BATCH = 10


@dataclass
class RedriveReport:
    moved: int = 0
    failed: int = 0
    # Messages left in the dead-letter queue because an earlier message of their group failed.
    skipped: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"moved": self.moved, "failed": self.failed, "skipped": self.skipped}


def redrive_deduplication_id(message: dict[str, Any]) -> str:
    """Return the deduplication id of a FIFO message's copy: stable per dead-lettered copy, new per send."""
    attributes = message.get("Attributes", {})
    original = attributes.get("MessageDeduplicationId") or message["MessageId"]
    sent = attributes.get("SentTimestamp", "")
    return hashlib.sha256(f"redrive:{original}:{sent}".encode()).hexdigest()


def _message_attributes(message: dict[str, Any]) -> dict[str, Any]:
    """Return the message attributes in the shape SendMessage takes."""
    copied = {}
    for name, attribute in message.get("MessageAttributes", {}).items():
        value = {"DataType": attribute["DataType"]}
        for key in ("StringValue", "BinaryValue"):
            if key in attribute:
                value[key] = attribute[key]
        copied[name] = value
    return copied


class Redrive:
    """Copies every message of one dead-letter queue to its source queue, then deletes it."""

    def __init__(self, sqs: Any, dead_letter_url: str, source_url: str, wait_seconds: int = 2) -> None:
        self._sqs = sqs
        self._dead_letter_url = dead_letter_url
        self._source_url = source_url
        self._fifo = source_url.endswith(".fifo")
        # Long polling asks every SQS server, so an empty answer means the queue is empty.
        self._wait_seconds = wait_seconds

    def _receive(self, limit: int) -> list[dict[str, Any]]:
        response = self._sqs.receive_message(
            QueueUrl=self._dead_letter_url,
            MaxNumberOfMessages=min(MAX_BATCH, limit),
            VisibilityTimeout=RECEIVE_VISIBILITY_SECONDS,
            WaitTimeSeconds=self._wait_seconds,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages: list[dict[str, Any]] = response.get("Messages", [])
        return messages

    def _send_copy(self, message: dict[str, Any]) -> None:
        arguments: dict[str, Any] = {"QueueUrl": self._source_url, "MessageBody": message["Body"]}
        attributes = _message_attributes(message)
        if attributes:
            arguments["MessageAttributes"] = attributes
        if self._fifo:
            arguments["MessageGroupId"] = message["Attributes"]["MessageGroupId"]
            arguments["MessageDeduplicationId"] = redrive_deduplication_id(message)
        self._sqs.send_message(**arguments)

    def run(self, max_messages: int | None = None) -> RedriveReport:
        """Move up to `max_messages` messages (all when None) and return the counts."""
        report = RedriveReport()
        while True:
            handled = report.moved + report.failed + report.skipped
            budget = MAX_BATCH if max_messages is None else max_messages - handled
            if budget <= 0:
                break
            # A FIFO queue returns no message of a group whose earlier message is still hidden, so the
            # loop ends when only groups with a failed copy remain.
            messages = self._receive(budget)
            if not messages:
                break
            failed_groups: set[str] = set()
            for message in messages:
                group = message.get("Attributes", {}).get("MessageGroupId")
                if group is not None and group in failed_groups:
                    report.skipped += 1
                    continue
                try:
                    self._send_copy(message)
                except (ClientError, BotoCoreError) as err:
                    logger.error(
                        "redrive: send failed, message %s stays in the dead-letter queue (%s)",
                        message["MessageId"],
                        type(err).__name__,
                    )
                    report.failed += 1
                    if group is not None:
                        failed_groups.add(group)
                    continue
                self._sqs.delete_message(
                    QueueUrl=self._dead_letter_url, ReceiptHandle=message["ReceiptHandle"]
                )
                report.moved += 1
        return report


def redrive_queue(
    target: StackTarget, queue: str, max_messages: int | None = None, wait_seconds: int = 2
) -> RedriveReport:
    """Move the dead-letter messages of `queue` (inbound, media or outbound) back to its source queue."""
    dead_letter_output, source_output = QUEUE_OUTPUTS[queue]
    redrive = Redrive(
        target.client("sqs"), target.output(dead_letter_output), target.output(source_output), wait_seconds
    )
    report = redrive.run(max_messages)
    logger.info(
        "redrive %s: %d moved, %d failed, %d skipped", queue, report.moved, report.failed, report.skipped
    )
    return report
