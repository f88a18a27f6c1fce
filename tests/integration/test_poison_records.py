"""Poison records: a record that fails every time ends in the dead-letter queue, raises the alarm,
and after the fix is redriven without loss or duplication.

A dedicated local stack keeps the retries short: a 2-second visibility timeout on the inbound queue
and a 1-second notice back-off on the outbound queue. The timeout is set before any message is sent,
because moto keeps the timeout that a FIFO message was received with. Both faults can be switched off: DynamoDB denies
ticket-write's TransactWriteItems (`devstack.fault_proxy`, kind `access_denied`), and the WeChat
emulator rejects every customer-service send with errcode -1.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from devstack.alarms import AlarmEvaluator
from devstack.fault_proxy import FaultPlan
from devstack.ops.redrive import Redrive
from devstack.reliability.checks import take_snapshot
from devstack.runner import LocalStack, LocalStackConfig
from devstack.wechat_emulator import Fault
from devstack.wechat_push import build_push, message_xml

pytestmark = pytest.mark.integration

DENY_TICKET_WRITES = FaultPlan(
    rates={"dynamodb": 1.0},
    kinds=("access_denied",),
    max_burst=1,
    operations=frozenset({"TransactWriteItems"}),
)


@pytest.fixture(scope="module")
def poison_stack() -> Iterator[LocalStack]:
    config = LocalStackConfig(
        port=0,
        emulator_port=0,
        message_mode="safe",
        schedules=False,
        run_schedules_at_start=False,
        queue_visibility_timeouts={"InboundQueue": 2},
        function_environment={"NOTICE_RETRY_BASE_SECONDS": "1"},
        aws_fault_plan=DENY_TICKET_WRITES,
    )
    with LocalStack(config) as stack:
        assert stack.fault_proxy is not None
        stack.fault_proxy.ledger.enabled = False
        yield stack


@pytest.fixture(scope="module")
def alarms(poison_stack: LocalStack) -> AlarmEvaluator:
    assert poison_stack.stack is not None
    return AlarmEvaluator(poison_stack.stack).create()


@pytest.fixture(scope="module")
def alarm_inbox(poison_stack: LocalStack, alarms: AlarmEvaluator) -> str:
    """An SQS queue subscribed to the alarm topic, standing in for the operators' e-mail."""
    assert poison_stack.stack is not None
    sqs = poison_stack.stack.client("sqs")
    url = sqs.create_queue(QueueName="alarm-inbox")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    topic = alarms.topic_arn(poison_stack.stack.ref("AlarmTopic"))
    poison_stack.stack.client("sns").subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    return str(url)


def _post(stack: LocalStack, xml: str) -> None:
    config = stack.config
    request = build_push(
        xml,
        mode="safe",
        token=config.wechat_token,
        encoding_aes_key=config.encoding_aes_key,
        app_id=config.app_id,
    )
    response = requests.post(stack.webhook_url, params=request.query, data=request.body.encode(), timeout=15)
    assert response.status_code == 200


def _wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(0.5)


def _visible(stack: LocalStack, logical_id: str) -> int:
    assert stack.stack is not None
    attributes = stack.stack.client("sqs").get_queue_attributes(
        QueueUrl=stack.stack.ref(logical_id), AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


def _redrive(stack: LocalStack, dead_letter: str, source: str) -> int:
    assert stack.stack is not None
    sqs = stack.stack.client("sqs")
    return Redrive(sqs, stack.stack.ref(dead_letter), stack.stack.ref(source), wait_seconds=1).run().moved


def _inbox(stack: LocalStack, url: str) -> list[str]:
    assert stack.stack is not None
    messages = stack.stack.client("sqs").receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1
    )
    return [message["Body"] for message in messages.get("Messages", [])]


def _function_log(caplog: pytest.LogCaptureFixture, function: str) -> str:
    return "\n".join(
        record.getMessage() for record in caplog.records if record.name == f"devstack.function.{function}"
    )


def _stored_messages(stack: LocalStack, msg_id: int) -> list[dict[str, Any]]:
    return [item for item in take_snapshot(stack).messages() if str(item.get("msg_id")) == str(msg_id)]


def test_poison_inbound_record_redriven_once(
    poison_stack: LocalStack, alarms: AlarmEvaluator, alarm_inbox: str, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN DynamoDB denies ticket-write's transactions, as after a broken policy or key change
    caplog.set_level(logging.INFO, logger="devstack.function")
    assert poison_stack.fault_proxy is not None
    poison_stack.fault_proxy.ledger.enabled = True
    open_id = "oPOISON-inbound-000000000001"
    msg_id = 7_100_000_000_000_001
    xml = message_xml("text", open_id, poison_stack.config.original_id, int(time.time()),
                      Content="东城区路口红绿灯不亮", MsgId=msg_id)  # fmt: skip

    # WHEN the citizen's message arrives
    _post(poison_stack, xml)
    _wait_until(lambda: _visible(poison_stack, "InboundDeadLetterQueue") == 1, 90, "dead-lettering")
    transitions = alarms.evaluate()

    # THEN the record is in the dead-letter queue after maxReceiveCount failures, with the reason logged
    assert "AccessDeniedException" in _function_log(caplog, "TicketWriteFunction")
    assert _stored_messages(poison_stack, msg_id) == []

    # AND the inbound dead-letter alarm fired and notified the alarm topic
    alarm_name = poison_stack.stack.ref("InboundDeadLetterQueueAlarm") if poison_stack.stack else ""
    assert [(t.alarm, t.state) for t in transitions] == [(alarm_name, "ALARM")]
    assert alarms.state(alarm_name) == "ALARM"
    assert any(alarm_name in body for body in _inbox(poison_stack, alarm_inbox))

    # WHEN the fault is fixed and the dead-letter queue is redriven
    poison_stack.fault_proxy.ledger.enabled = False
    moved = _redrive(poison_stack, "InboundDeadLetterQueue", "InboundQueue")
    poison_stack.wait_idle(timeout=60)

    # THEN the message is in exactly one ticket, the queue is empty and the alarm is OK again
    assert moved == 1
    assert len(_stored_messages(poison_stack, msg_id)) == 1
    assert _visible(poison_stack, "InboundDeadLetterQueue") == 0
    assert [(t.alarm, t.state) for t in alarms.evaluate()] == [(alarm_name, "OK")]


def test_poison_notice_sent_once_after_redrive(
    poison_stack: LocalStack, alarms: AlarmEvaluator, alarm_inbox: str, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN WeChat rejects every customer-service send with errcode -1 (system busy)
    caplog.set_level(logging.INFO, logger="devstack.function")
    assert poison_stack.emulator is not None
    assert poison_stack.stack is not None
    poison_stack.emulator.state.add_fault(Fault(api="message/custom/send", errcode=-1, times=1000))
    open_id = "oPOISON-outbound-00000000001"
    poison_stack.emulator.state.set_user(open_id, subscribed=True)
    poison_stack.emulator.state.record_interaction(open_id)
    xml = message_xml("event", open_id, poison_stack.config.original_id, int(time.time()), Event="subscribe")

    # WHEN the citizen follows the account, which makes ticket-write request a welcome notice
    _post(poison_stack, xml)
    _wait_until(lambda: _visible(poison_stack, "OutboundDeadLetterQueue") == 1, 120, "dead-lettering")
    transitions = alarms.evaluate()

    # THEN the notice is in the dead-letter queue after maxReceiveCount failures, with the reason logged
    assert "retrying later" in _function_log(caplog, "ReplyPushFunction")
    assert [entry for entry in poison_stack.emulator.sent if entry["touser"] == open_id] == []

    # AND the outbound dead-letter alarm fired and notified the alarm topic
    alarm_name = poison_stack.stack.ref("OutboundDeadLetterQueueAlarm")
    assert [(t.alarm, t.state) for t in transitions] == [(alarm_name, "ALARM")]
    assert any(alarm_name in body for body in _inbox(poison_stack, alarm_inbox))

    # WHEN WeChat recovers and the dead-letter queue is redriven
    with poison_stack.emulator.state.lock:
        poison_stack.emulator.state.faults.clear()
    moved = _redrive(poison_stack, "OutboundDeadLetterQueue", "OutboundQueue")
    poison_stack.wait_idle(timeout=60)

    # THEN the citizen got the welcome exactly once and the alarm is OK again
    assert moved == 1
    assert len([entry for entry in poison_stack.emulator.sent if entry["touser"] == open_id]) == 1
    assert _visible(poison_stack, "OutboundDeadLetterQueue") == 0
    assert [(t.alarm, t.state) for t in alarms.evaluate()] == [(alarm_name, "OK")]
