"""ops resend-notice: a failed notice is published again from the dead-letter queue, a delivered one never."""

from __future__ import annotations

import json
from typing import Any

import pytest

from devstack.ops.cli import main
from devstack.resources import Stack
from tests.unit.ops_support import deploy_outputs

OPEN_ID = "o6_bmjrPTlm6_2sgVt7hMZOPfL2M"
NOTICE_TEXT = "您反映的问题（工单号 DG20261204-0001）已受理。"
NOTICE_ID = "DG20261204-0001:ack"


def notice(notice_id: str = NOTICE_ID) -> dict[str, Any]:
    return {
        "notice_id": notice_id,
        "kind": "acknowledgement",
        "open_id": OPEN_ID,
        "ticket_id": "DG20261204-0001",
        "status": "collecting",
        "text": NOTICE_TEXT,
        "template_values": {},
        "media": [],
        "created_at": 1796349600.0,
    }


def envelope(detail: dict[str, Any]) -> str:
    """Return the SQS body that CitizenNoticeRule puts on the outbound queue: the EventBridge event."""
    return json.dumps(
        {
            "version": "0",
            "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
            "detail-type": "CitizenNoticeRequested",
            "source": "intake.tickets",
            "account": "123456789012",
            "time": "2026-12-04T02:00:00Z",
            "region": "us-east-1",
            "resources": [],
            "detail": detail,
        },
        ensure_ascii=False,
    )


def dead_letter(stack: Stack, *details: dict[str, Any]) -> None:
    for detail in details:
        stack.client("sqs").send_message(
            QueueUrl=stack.ref("OutboundDeadLetterQueue"), MessageBody=envelope(detail)
        )


def put_ledger(stack: Stack, state: str, notice_id: str = NOTICE_ID) -> None:
    table = stack.session.resource("dynamodb").Table(stack.ref("TicketsTable"))
    table.put_item(
        Item={
            "PK": f"NOTICE#{notice_id}",
            "SK": "STATE",
            "item_type": "notice",
            "notice_id": notice_id,
            "state": state,
        }
    )


def receive_all(stack: Stack, logical_id: str) -> list[dict[str, Any]]:
    sqs = stack.client("sqs")
    messages = sqs.receive_message(QueueUrl=stack.ref(logical_id), MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(message["Body"]) for message in messages]


def resend(stack: Stack, notice_id: str = NOTICE_ID) -> int:
    return main(["--stack-name", deploy_outputs(stack), "resend-notice", "--notice-id", notice_id])


def test_resend_notice_publishes_failed_notice(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a notice reply-push gave up on (ledger still sending) in the dead-letter queue, next to another one
    put_ledger(stack, "sending")
    dead_letter(stack, notice(), notice("DG20261204-0002:ack"))

    # WHEN the operator resends it
    status = resend(stack)

    # THEN it is on the outbound queue again, unchanged, and only the other notice stays dead-lettered
    republished = receive_all(stack, "OutboundQueue")
    remaining = receive_all(stack, "OutboundDeadLetterQueue")
    captured = capsys.readouterr()
    assert status == 0
    assert [event["detail"] for event in republished] == [notice()]
    assert republished[0]["detail-type"] == "CitizenNoticeRequested"
    assert [event["detail"]["notice_id"] for event in remaining] == ["DG20261204-0002:ack"]
    assert OPEN_ID not in captured.out + captured.err
    assert NOTICE_TEXT not in captured.out + captured.err


def test_resend_notice_without_ledger_publishes(stack: Stack) -> None:
    # GIVEN a dead-lettered notice that reply-push never started (no ledger item)
    dead_letter(stack, notice())

    # WHEN the operator resends it
    status = resend(stack)

    # THEN it is published
    assert status == 0
    assert len(receive_all(stack, "OutboundQueue")) == 1


@pytest.mark.parametrize("state", ["sent", "undeliverable"])
def test_resend_notice_final_state_refused(
    stack: Stack, capsys: pytest.CaptureFixture[str], state: str
) -> None:
    # GIVEN a notice whose ledger is final, with a stale copy in the dead-letter queue
    put_ledger(stack, state)
    dead_letter(stack, notice())

    # WHEN the operator resends it
    status = resend(stack)

    # THEN nothing is published and the copy stays in the dead-letter queue
    assert status == 1
    assert f"is already {state}" in capsys.readouterr().err
    assert receive_all(stack, "OutboundQueue") == []
    assert len(receive_all(stack, "OutboundDeadLetterQueue")) == 1


def test_resend_notice_not_in_dead_letter_queue(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a failed notice whose copy is not in the dead-letter queue
    put_ledger(stack, "sending")

    # WHEN the operator resends it
    status = resend(stack)

    # THEN the command fails and says where the text would have been
    assert status == 1
    assert "is not in the outbound dead-letter queue" in capsys.readouterr().err
    assert receive_all(stack, "OutboundQueue") == []


def test_resend_notice_invalid_copy_refused(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a dead-lettered event with the notice id but no text
    invalid = {key: value for key, value in notice().items() if key != "text"}
    dead_letter(stack, invalid)

    # WHEN the operator resends it
    status = resend(stack)

    # THEN nothing is published and the copy stays in the dead-letter queue
    assert status == 1
    assert "is not a valid CitizenNotice" in capsys.readouterr().err
    assert receive_all(stack, "OutboundQueue") == []
    assert len(receive_all(stack, "OutboundDeadLetterQueue")) == 1
