"""ops redrive: dead-letter messages go back to their source queue, in order, once, and only when sent."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from devstack.ops.cli import main
from devstack.ops.redrive import Redrive
from devstack.resources import Stack
from tests.unit.ops_support import deploy_outputs

GROUPS = ("o-citizen-a", "o-citizen-b", "o-citizen-c")


def put_fifo(stack: Stack, logical_id: str, group: str, body: str, dedup_id: str) -> None:
    stack.client("sqs").send_message(
        QueueUrl=stack.ref(logical_id),
        MessageBody=body,
        MessageGroupId=group,
        MessageDeduplicationId=dedup_id,
    )


def drain(stack: Stack, logical_id: str) -> list[dict[str, Any]]:
    """Receive and delete every message of a queue; return them in the order received."""
    sqs = stack.client("sqs")
    url = stack.ref(logical_id)
    received: list[dict[str, Any]] = []
    while True:
        messages = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return received
        for message in messages:
            received.append(message)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def queue_count(stack: Stack, logical_id: str) -> int:
    """Return visible plus in-flight messages of a queue."""
    attributes = stack.client("sqs").get_queue_attributes(
        QueueUrl=stack.ref(logical_id),
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def fill_inbound_dead_letter_queue(stack: Stack, per_group: int = 3) -> dict[str, list[str]]:
    bodies: dict[str, list[str]] = {group: [] for group in GROUPS}
    for index in range(per_group):
        for group in GROUPS:
            body = json.dumps({"group": group, "index": index})
            put_fifo(stack, "InboundDeadLetterQueue", group, body, f"{group}-{index}")
            bodies[group].append(body)
    return bodies


def test_redrive_inbound_keeps_group_order(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN 9 pushes of 3 citizens in the inbound dead-letter queue
    expected = fill_inbound_dead_letter_queue(stack)
    stack_name = deploy_outputs(stack)

    # WHEN the operator redrives the inbound queue
    status = main(["--stack-name", stack_name, "redrive", "--queue", "inbound", "--wait-seconds", "0"])

    # THEN every push is on the inbound queue once, in its citizen's order, with its group id
    moved = drain(stack, "InboundQueue")
    by_group: dict[str, list[str]] = {group: [] for group in GROUPS}
    for message in moved:
        by_group[message["Attributes"]["MessageGroupId"]].append(message["Body"])
    assert status == 0
    assert by_group == expected
    assert len(moved) == 9
    assert queue_count(stack, "InboundDeadLetterQueue") == 0
    assert json.loads(capsys.readouterr().out) == {"queue": "inbound", "moved": 9, "failed": 0, "skipped": 0}


def test_redrive_fifo_copy_not_dropped_as_duplicate(stack: Stack) -> None:
    # GIVEN a push that reached the inbound queue a moment ago and was then dead-lettered,
    # so its original deduplication id is still inside SQS's 5-minute window
    put_fifo(stack, "InboundQueue", GROUPS[0], "first attempt", "dedup-1")
    drain(stack, "InboundQueue")
    put_fifo(stack, "InboundDeadLetterQueue", GROUPS[0], "first attempt", "dedup-1")
    stack_name = deploy_outputs(stack)

    # WHEN it is redriven
    status = main(["--stack-name", stack_name, "redrive", "--queue", "inbound", "--wait-seconds", "0"])

    # THEN the copy arrives under a new deduplication id instead of being dropped
    moved = drain(stack, "InboundQueue")
    assert status == 0
    assert [message["Body"] for message in moved] == ["first attempt"]
    assert moved[0]["Attributes"]["MessageDeduplicationId"] != "dedup-1"


class FailingSendSqs:
    """The real (moto) SQS client, except that sending fails for one message group."""

    def __init__(self, sqs: Any, failing_group: str) -> None:
        self._sqs = sqs
        self._failing_group = failing_group

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sqs, name)

    def send_message(self, **arguments: Any) -> dict[str, Any]:
        if arguments.get("MessageGroupId") == self._failing_group:
            raise ClientError({"Error": {"Code": "InternalError", "Message": "send failed"}}, "SendMessage")
        return self._sqs.send_message(**arguments)


def test_redrive_failed_send_stays_in_dead_letter_queue(stack: Stack) -> None:
    # GIVEN 3 pushes of each of 3 citizens in the dead-letter queue, and sends of citizen A's fail
    fill_inbound_dead_letter_queue(stack)
    sqs = FailingSendSqs(stack.client("sqs"), GROUPS[0])
    redrive = Redrive(sqs, stack.ref("InboundDeadLetterQueue"), stack.ref("InboundQueue"), wait_seconds=0)

    # WHEN the redrive runs
    report = redrive.run()

    # THEN the other citizens' pushes moved, and none of citizen A's left the dead-letter queue
    moved_groups = [message["Attributes"]["MessageGroupId"] for message in drain(stack, "InboundQueue")]
    assert sorted(moved_groups) == sorted([GROUPS[1], GROUPS[2]] * 3)
    assert report.moved == 6
    assert report.failed >= 1
    assert queue_count(stack, "InboundDeadLetterQueue") == 3


def test_redrive_outbound_keeps_body_and_attributes(stack: Stack) -> None:
    # GIVEN two dead-lettered notices on the standard outbound dead-letter queue, one with an attribute
    sqs = stack.client("sqs")
    dead_letter_url = stack.ref("OutboundDeadLetterQueue")
    sqs.send_message(QueueUrl=dead_letter_url, MessageBody='{"detail": 1}')
    sqs.send_message(
        QueueUrl=dead_letter_url,
        MessageBody='{"detail": 2}',
        MessageAttributes={"origin": {"DataType": "String", "StringValue": "test"}},
    )
    stack_name = deploy_outputs(stack)

    # WHEN the outbound queue is redriven
    status = main(["--stack-name", stack_name, "redrive", "--queue", "outbound", "--wait-seconds", "0"])

    # THEN both are on the outbound queue with their bodies and attributes
    moved = drain(stack, "OutboundQueue")
    assert status == 0
    assert sorted(message["Body"] for message in moved) == ['{"detail": 1}', '{"detail": 2}']
    assert [
        message.get("MessageAttributes", {}).get("origin", {}).get("StringValue") for message in moved
    ].count("test") == 1
    assert queue_count(stack, "OutboundDeadLetterQueue") == 0


def test_redrive_max_messages_leaves_rest(stack: Stack) -> None:
    # GIVEN 5 media jobs in the media dead-letter queue
    sqs = stack.client("sqs")
    for index in range(5):
        sqs.send_message(QueueUrl=stack.ref("MediaDeadLetterQueue"), MessageBody=f'{{"job": {index}}}')
    stack_name = deploy_outputs(stack)

    # WHEN at most 2 are redriven
    status = main(
        [
            "--stack-name",
            stack_name,
            "redrive",
            "--queue",
            "media",
            "--max-messages",
            "2",
            "--wait-seconds",
            "0",
        ]
    )

    # THEN 2 moved and 3 wait in the dead-letter queue
    assert status == 0
    assert len(drain(stack, "MediaQueue")) == 2
    assert queue_count(stack, "MediaDeadLetterQueue") == 3


def test_redrive_unknown_stack_fails_clearly(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN no stack named "missing-stack"

    # WHEN the operator names it
    status = main(["--stack-name", "missing-stack", "redrive", "--queue", "inbound", "--wait-seconds", "0"])

    # THEN the command fails and says which stack was not found
    assert status == 1
    assert "stack missing-stack not found" in capsys.readouterr().err
