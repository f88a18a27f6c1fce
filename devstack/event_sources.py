"""SQS event source mappings: long-poll a queue, invoke the function with a Lambda SQS event, delete.

Behaviour follows Lambda's mapping. A handler error fails the whole batch, so nothing is deleted.
With `ReportBatchItemFailures` only the records the function did not list in `batchItemFailures` are
deleted. Failed records become visible again after the queue's visibility timeout, and moto's server
moves a record to the dead-letter queue on the receive after `maxReceiveCount` (checked against moto
5.2 in server mode). For FIFO queues moto keeps a message group locked while a batch of it is in flight.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from devstack.function_pool import Invocation

# One second of long polling keeps shutdown and `wait_idle` quick.
WAIT_TIME_SECONDS = 1

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SqsMapping:
    """One `SQS` event of a function."""

    function: str
    event_name: str
    queue_arn: str
    queue_url: str
    batch_size: int
    report_batch_item_failures: bool


def sqs_mappings(
    functions: dict[str, dict[str, dict[str, Any]]], queue_urls_by_arn: dict[str, str]
) -> list[SqsMapping]:
    """Return the mappings for every `SQS` event; `functions` maps logical id to resolved events."""
    mappings = []
    for function, events in functions.items():
        for event_name, event in events.items():
            if event.get("Type") != "SQS":
                continue
            properties = event["Properties"]
            arn = properties["Queue"]
            mappings.append(
                SqsMapping(
                    function=function,
                    event_name=event_name,
                    queue_arn=arn,
                    queue_url=queue_urls_by_arn[arn],
                    batch_size=int(properties.get("BatchSize", 10)),
                    report_batch_item_failures="ReportBatchItemFailures"
                    in properties.get("FunctionResponseTypes", []),
                )
            )
    return mappings


def _message_attribute(value: dict[str, Any]) -> dict[str, Any]:
    attribute: dict[str, Any] = {
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": value["DataType"],
    }
    if "StringValue" in value:
        attribute["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        attribute["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode("ascii")
    return attribute


def complete_eventbridge_envelope(body: str, account_id: str) -> str:
    """Add the `account` field that moto (5.2.5) leaves out of EventBridge events it delivers to SQS.

    EventBridge always sends `account`, and Powertools' EventBridgeModel requires it. Bodies that are
    not such an envelope come back unchanged.
    """
    try:
        document = json.loads(body)
    except ValueError:
        return body
    if not isinstance(document, dict) or "detail-type" not in document or "account" in document:
        return body
    document["account"] = account_id
    return json.dumps(document, ensure_ascii=False)


def sqs_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """Build one record of a Lambda SQS event from a ReceiveMessage message."""
    attributes = {
        name: str(value)
        for name, value in message.get("Attributes", {}).items()
        if name
        in (
            "ApproximateReceiveCount",
            "SentTimestamp",
            "SenderId",
            "ApproximateFirstReceiveTimestamp",
            "SequenceNumber",
            "MessageGroupId",
            "MessageDeduplicationId",
            "AWSTraceHeader",
        )
    }
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": complete_eventbridge_envelope(message["Body"], queue_arn.split(":")[4]),
        "attributes": attributes,
        "messageAttributes": {
            name: _message_attribute(value) for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message.get("MD5OfBody") or hashlib.md5(message["Body"].encode()).hexdigest(),  # noqa: S324
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def failed_message_ids(invocation: Invocation, records: list[dict[str, Any]], partial: bool) -> set[str]:
    """Return the ids of the records to leave on the queue after an invocation.

    An error, or with `partial` a response whose `batchItemFailures` is malformed or names an
    unknown id, fails every record, as Lambda does.
    """
    every_id = {record["messageId"] for record in records}
    if not invocation.ok:
        return every_id
    if not partial:
        return set()
    result = invocation.result
    if result is None:
        return set()
    if not isinstance(result, dict):
        return every_id
    failures = result.get("batchItemFailures") or []
    if not isinstance(failures, list):
        return every_id
    failed: set[str] = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not isinstance(identifier, str) or identifier not in every_id:
            logger.error(
                "%s returned an invalid batchItemFailures entry; failing the batch", invocation.function
            )
            return every_id
        failed.add(identifier)
    return failed


class SqsPoller:
    """A thread that drives one `SqsMapping`, like Lambda's event source mapping poller."""

    def __init__(
        self,
        mapping: SqsMapping,
        sqs_client: Any,
        invoke: Callable[[str, dict[str, Any]], Invocation],
        region: str,
    ) -> None:
        self.mapping = mapping
        self._sqs = sqs_client
        self._invoke = invoke
        self._region = region
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"sqs-{mapping.function}-{mapping.event_name}", daemon=True
        )

    def start(self) -> SqsPoller:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:
                if self._stop.is_set():
                    return
                logger.exception("SQS poller for %s failed; retrying in 1 s", self.mapping.function)
                self._stop.wait(1)

    def poll_once(self) -> int:
        """Receive one batch and process it; returns the number of records received."""
        response = self._sqs.receive_message(
            QueueUrl=self.mapping.queue_url,
            MaxNumberOfMessages=min(self.mapping.batch_size, 10),
            WaitTimeSeconds=WAIT_TIME_SECONDS,
            AttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = response.get("Messages", [])
        if not messages:
            return 0
        records = [sqs_record(message, self.mapping.queue_arn, self._region) for message in messages]
        invocation = self._invoke(self.mapping.function, {"Records": records})
        failed = failed_message_ids(invocation, records, self.mapping.report_batch_item_failures)
        done = [record for record in records if record["messageId"] not in failed]
        for start in range(0, len(done), 10):
            chunk = done[start : start + 10]
            self._sqs.delete_message_batch(
                QueueUrl=self.mapping.queue_url,
                Entries=[
                    {"Id": str(index), "ReceiptHandle": record["receiptHandle"]}
                    for index, record in enumerate(chunk)
                ],
            )
        if failed:
            logger.info(
                "%s left %d of %d records on the queue for a retry",
                self.mapping.function,
                len(failed),
                len(records),
            )
        return len(records)
