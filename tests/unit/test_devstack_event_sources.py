"""SQS event source mappings on moto's server: Lambda's SQS event, partial batch failures, the DLQ, FIFO order."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.event_sources import failed_message_ids, sqs_record
from devstack.function_pool import Invocation
from devstack.runner import LocalStack, LocalStackConfig

TEMPLATE = Path(__file__).resolve().parent.parent / "fixtures" / "devstack" / "template.yaml"


@pytest.fixture(scope="module")
def local_stack() -> Iterator[LocalStack]:
    config = LocalStackConfig(template_path=TEMPLATE, port=0, schedules=False, prewarm_api_functions=False)
    with LocalStack(config) as stack:
        yield stack


def _drain(stack: LocalStack, logical_id: str) -> list[str]:
    sqs = stack.stack.client("sqs")
    bodies = []
    while True:
        messages = sqs.receive_message(QueueUrl=stack.stack.ref(logical_id), MaxNumberOfMessages=10).get(
            "Messages", []
        )
        if not messages:
            return bodies
        for message in messages:
            bodies.append(message["Body"])
            sqs.delete_message(QueueUrl=stack.stack.ref(logical_id), ReceiptHandle=message["ReceiptHandle"])


def _wait_for(condition: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"condition not met within {timeout} s")


def _batch_bodies(stack: LocalStack, since: int) -> list[list[str]]:
    return [
        [record["body"] for record in invocation.event["Records"]]
        for invocation in stack.invocations("BatchFunction")[since:]
    ]


def test_sqs_record_has_lambda_shape() -> None:
    message = {
        "MessageId": "m1",
        "ReceiptHandle": "rh",
        "Body": "hello",
        "MD5OfBody": "5d41402abc4b2a76b9719d911017c592",
        "Attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1700000000000",
            "MessageGroupId": "g",
        },
        "MessageAttributes": {"kind": {"DataType": "String", "StringValue": "x"}},
    }

    record = sqs_record(message, "arn:aws:sqs:us-east-1:123456789012:q", "us-east-1")

    assert record["messageId"] == "m1"
    assert record["receiptHandle"] == "rh"
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == "arn:aws:sqs:us-east-1:123456789012:q"
    assert record["awsRegion"] == "us-east-1"
    assert record["attributes"]["MessageGroupId"] == "g"
    assert record["messageAttributes"]["kind"]["stringValue"] == "x"
    assert record["md5OfBody"] == "5d41402abc4b2a76b9719d911017c592"


@pytest.mark.parametrize(
    ("ok", "result", "expected"),
    [
        (False, None, {"a", "b"}),
        (True, {"batchItemFailures": []}, set()),
        (True, {"batchItemFailures": [{"itemIdentifier": "b"}]}, {"b"}),
        (True, {"batchItemFailures": [{"itemIdentifier": "unknown"}]}, {"a", "b"}),
        (True, {"batchItemFailures": [{"nope": "b"}]}, {"a", "b"}),
        (True, "not a dict", {"a", "b"}),
        (True, None, set()),
    ],
)
def test_failed_message_ids_follow_lambda_rules(ok: bool, result: Any, expected: set[str]) -> None:
    invocation = Invocation(function="f", source="sqs", request_id="r", ok=ok, result=result)

    failed = failed_message_ids(invocation, [{"messageId": "a"}, {"messageId": "b"}], partial=True)

    assert failed == expected


def test_partial_failure_poison_reaches_dlq(local_stack: LocalStack) -> None:
    # GIVEN two good records and one the function reports as failed (maxReceiveCount is 2)
    sqs = local_stack.stack.client("sqs")
    queue = local_stack.stack.ref("WorkQueue")
    for body in ("ok-1", "fail-1", "ok-2"):
        sqs.send_message(QueueUrl=queue, MessageBody=body)

    # WHEN the poller has retried the failed record past maxReceiveCount
    dead: list[str] = []
    _wait_for(lambda: bool(dead.extend(_drain(local_stack, "WorkDeadLetterQueue")) or dead), timeout=15)
    local_stack.wait_idle(timeout=10)

    # THEN only the failed record is in the DLQ and the work queue is empty
    assert dead == ["fail-1"]
    assert _drain(local_stack, "WorkQueue") == []
    delivered = [body for batch in _batch_bodies(local_stack, 0) for body in batch]
    assert delivered.count("ok-1") == 1
    assert delivered.count("ok-2") == 1
    assert delivered.count("fail-1") == 2


def test_handler_exception_fails_whole_batch(local_stack: LocalStack) -> None:
    sqs = local_stack.stack.client("sqs")
    queue = local_stack.stack.ref("WorkQueue")
    before = len(local_stack.invocations("BatchFunction"))
    sqs.send_message_batch(
        QueueUrl=queue,
        Entries=[{"Id": "1", "MessageBody": "crash"}, {"Id": "2", "MessageBody": "ok-3"}],
    )

    dead: list[str] = []
    _wait_for(lambda: len(dead.extend(_drain(local_stack, "WorkDeadLetterQueue")) or dead) >= 2, timeout=15)

    assert sorted(dead) == ["crash", "ok-3"]
    failed = [record for record in local_stack.invocations("BatchFunction")[before:] if not record.ok]
    assert failed
    assert failed[0].error_type == "RuntimeError"


def test_fifo_queue_keeps_group_order(local_stack: LocalStack) -> None:
    sqs = local_stack.stack.client("sqs")
    queue = local_stack.stack.ref("OrderedQueue")
    before = len(local_stack.invocations("BatchFunction"))
    for index in range(5):
        sqs.send_message(
            QueueUrl=queue,
            MessageBody=f"m{index}",
            MessageGroupId="citizen-1",
            MessageDeduplicationId=f"d{index}",
        )

    local_stack.wait_idle(timeout=15)

    delivered = [body for batch in _batch_bodies(local_stack, before) for body in batch]
    assert delivered == ["m0", "m1", "m2", "m3", "m4"]
    record = local_stack.invocations("BatchFunction")[-1].event["Records"][0]
    assert record["attributes"]["MessageGroupId"] == "citizen-1"
    assert record["attributes"]["MessageDeduplicationId"].startswith("d")
    assert json.loads(json.dumps(record))["eventSourceARN"].endswith(".fifo")


def test_invalid_batch_item_failure_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    invocation = Invocation(
        function="BatchFunction",
        source="sqs",
        request_id="r",
        ok=True,
        result={"batchItemFailures": [{"x": 1}]},
    )

    with caplog.at_level("ERROR", logger="devstack.event_sources"):
        failed = failed_message_ids(invocation, [{"messageId": "a"}], partial=True)

    assert failed == {"a"}
    assert "invalid batchItemFailures" in caplog.text
    assert "BatchFunction" in caplog.text
