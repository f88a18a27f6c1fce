"""The webhook on the local stack over HTTP, in every message mode: URL check and one push end to end."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from devstack.runner import LocalStack
from devstack.simulator import Credentials, Simulator, new_msg_id

pytestmark = pytest.mark.integration

OPENID = "oINTEGRATION000000000000001"


# Module scope groups the tests by mode, so the functions cold-start once per mode.
@pytest.fixture(scope="module", params=["plain", "compatible", "safe"])
def simulator(request: pytest.FixtureRequest, local_stack: LocalStack) -> Iterator[Simulator]:
    for function in ("WebhookVerifyFunction", "MessageIngestFunction"):
        if not local_stack.pools[function].present:
            pytest.skip(f"{function} is not written yet")
    mode = request.param
    local_stack.update_parameters(MessageMode=mode)
    # A 15 s response limit instead of WeChat's 5 s keeps a busy test machine from causing retries.
    yield Simulator(local_stack.webhook_url, Credentials.from_environ({}), mode=mode, timeout=15)
    local_stack.update_parameters(MessageMode="safe")


def _inbound_record(local_stack: LocalStack, msg_id: str, timeout: float = 20) -> dict[str, Any]:
    """Return the InboundRecord with `msg_id`, as ticket-write received it or as it waits on the queue."""
    deadline = time.monotonic() + timeout
    sqs = local_stack.stack.client("sqs")
    while time.monotonic() < deadline:
        if local_stack.pools["TicketWriteFunction"].present:
            for invocation in local_stack.invocations("TicketWriteFunction"):
                for record in invocation.event["Records"]:
                    body = json.loads(record["body"])
                    if body.get("msg_id") == msg_id:
                        return body
        else:
            messages = sqs.receive_message(
                QueueUrl=local_stack.stack.ref("InboundQueue"), MaxNumberOfMessages=10, VisibilityTimeout=0
            ).get("Messages", [])
            for message in messages:
                body = json.loads(message["Body"])
                if body.get("msg_id") == msg_id:
                    return body
        time.sleep(0.2)
    raise AssertionError(f"no InboundRecord with msg_id {msg_id} within {timeout} s")


def test_url_check_echoes_echostr(simulator: Simulator) -> None:
    attempts = simulator.verify(echostr="1234567890")

    assert attempts[-1].accepted
    assert attempts[-1].body == "1234567890"
    assert len(attempts) == 1


def test_text_push_becomes_one_inbound_record(simulator: Simulator, local_stack: LocalStack) -> None:
    # GIVEN a text push from a citizen
    msg_id = new_msg_id()

    # WHEN the simulator sends it as WeChat would in this mode
    attempts = simulator.push("text", OPENID, Content="南城路灯不亮", MsgId=int(msg_id))

    # THEN the webhook acknowledges it at once and queues one InboundRecord for ticket-write
    assert attempts[-1].accepted
    assert len(attempts) == 1
    record = _inbound_record(local_stack, msg_id)
    assert record["msg_type"] == "text"
    assert record["open_id"] == OPENID
    assert record["fields"]["Content"] == "南城路灯不亮"


def test_push_with_bad_signature_is_rejected(simulator: Simulator, local_stack: LocalStack) -> None:
    forger = Simulator(
        simulator.url,
        Credentials("WRONGTOKEN", "wx134c8103faa5a59e", "A" * 43, "gh_97417a04a28d"),
        mode=simulator.mode,
        timeout=simulator.timeout,
        retries=0,
    )

    attempts = forger.push("text", OPENID, Content="伪造")

    assert not attempts[-1].accepted
    assert attempts[-1].status is not None
    assert attempts[-1].status >= 400
