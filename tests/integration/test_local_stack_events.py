"""EventBridge on moto's server: the citizen-notice rule of template.yaml delivers to the outbound queue."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from devstack.runner import LocalStack

pytestmark = pytest.mark.integration


def test_notice_event_reaches_outbound_queue(local_stack: LocalStack) -> None:
    # GIVEN a CitizenNoticeRequested event on the ticket bus
    notice_id = f"integration-{uuid.uuid4()}"
    detail = {"notice_id": notice_id, "kind": "status", "open_id": "oNOBODY", "text": "测试", "created_at": 1}
    events = local_stack.stack.client("events")

    # WHEN it is published
    answer = events.put_events(
        Entries=[
            {
                "EventBusName": local_stack.stack.ref("TicketEventBus"),
                "Source": "intake.tickets",
                "DetailType": "CitizenNoticeRequested",
                "Detail": json.dumps(detail),
            }
        ]
    )

    # THEN the rule delivers the EventBridge envelope to the outbound queue (or straight to reply-push)
    assert answer["FailedEntryCount"] == 0
    envelope = _outbound_envelope(local_stack, notice_id)
    assert envelope["detail-type"] == "CitizenNoticeRequested"
    assert envelope["detail"]["notice_id"] == notice_id


def _outbound_envelope(local_stack: LocalStack, notice_id: str, timeout: float = 15) -> dict:
    deadline = time.monotonic() + timeout
    sqs = local_stack.stack.client("sqs")
    while time.monotonic() < deadline:
        if local_stack.pools["ReplyPushFunction"].present:
            for invocation in local_stack.invocations("ReplyPushFunction"):
                for record in invocation.event["Records"]:
                    envelope = json.loads(record["body"])
                    if envelope.get("detail", {}).get("notice_id") == notice_id:
                        return envelope
        else:
            messages = sqs.receive_message(
                QueueUrl=local_stack.stack.ref("OutboundQueue"), MaxNumberOfMessages=10, VisibilityTimeout=0
            ).get("Messages", [])
            for message in messages:
                envelope = json.loads(message["Body"])
                if envelope.get("detail", {}).get("notice_id") == notice_id:
                    return envelope
        time.sleep(0.2)
    raise AssertionError(f"notice {notice_id} did not reach the outbound queue within {timeout} s")
