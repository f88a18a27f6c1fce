"""message-ingest through its real handler on the emulated stack: official vectors, the three modes,
key rotation, deduplication of WeChat's retries and SQS failures."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType
from typing import Any

import pytest
from moto.sqs.models import Queue

from devstack.resources import Stack
from devstack.wechat_push import PushRequest, api_gateway_event, build_push, message_xml
from intake.messages import TextMessage, UnknownMessage, hashed_dedup_id
from intake.records import InboundRecord
from intake.signature import request_signature
from tests.conftest import DEFAULT_CREDENTIALS
from tests.unit.webhook_support import VECTORS, WEBHOOK_PATH, invoke, log_lines, pin_clock, queued_messages

V3, V4, V5 = VECTORS["V3"], VECTORS["V4"], VECTORS["V5"]
OPEN_ID = "oINGESTcitizen00000000000001"
STAMP = 1733300000
NEW_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


@pytest.fixture
def wechat_credentials(request: pytest.FixtureRequest) -> dict[str, str]:
    return dict(getattr(request, "param", DEFAULT_CREDENTIALS))


@pytest.fixture
def stack_parameters(request: pytest.FixtureRequest) -> dict[str, str]:
    return {"MessageMode": getattr(request, "param", "safe")}


@pytest.fixture
def ingest(load_function: Callable[..., ModuleType], monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    pin_clock(monkeypatch, STAMP + 5)
    return load_function("MessageIngestFunction")


def credentials_of(vector: dict[str, str], original_id: str) -> dict[str, str]:
    return {
        "token": vector["token"],
        "app_id": vector["appid"],
        "encoding_aes_key": vector["key"],
        "original_id": original_id,
    }


def post(request: PushRequest, base64_body: bool = False, **extra_query: str) -> dict[str, Any]:
    return api_gateway_event(
        "POST", WEBHOOK_PATH, {**request.query, **extra_query}, request.body, base64_body=base64_body
    )


def text_push(mode: str, msg_id: int = 24877465520000001, **overrides: Any) -> PushRequest:
    xml = message_xml(
        "text",
        OPEN_ID,
        DEFAULT_CREDENTIALS["original_id"],
        STAMP,
        Content="垃圾桶满了 <请清理> & 谢谢",
        MsgId=msg_id,
    )
    arguments: dict[str, Any] = {
        "token": DEFAULT_CREDENTIALS["token"],
        "encoding_aes_key": DEFAULT_CREDENTIALS["encoding_aes_key"],
        "app_id": DEFAULT_CREDENTIALS["app_id"],
        "timestamp": STAMP,
        "nonce": "99",
    }
    arguments.update(overrides)
    return build_push(xml, mode=mode, **arguments)


def assert_success(response: dict[str, Any]) -> None:
    assert response == {
        "statusCode": 200,
        "headers": {"Content-Type": "text/plain"},
        "body": "success",
        "isBase64Encoded": False,
    }


def only_record(stack: Stack) -> tuple[InboundRecord, dict[str, str]]:
    messages = queued_messages(stack)
    assert len(messages) == 1
    record = InboundRecord.model_validate_json(messages[0]["Body"])
    assert messages[0]["Body"].isascii()
    return record, messages[0]["Attributes"]


def assert_no_open_id_logged(module: ModuleType, caplog: pytest.LogCaptureFixture, *open_ids: str) -> None:
    for line in log_lines(module, caplog):
        for open_id in open_ids:
            assert open_id not in line.text


# -- official vectors ---------------------------------------------------------------------------------


def test_v3_safe_push_is_acknowledged_and_queued_as_unknown_event(
    load_function: Callable[..., ModuleType],
    stack: Stack,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """V3 is a `debug_demo` event: unknown here, so it is acknowledged and queued as UnknownMessage
    (see functions/message_ingest/app.py for why unknown types are queued, not dropped)."""
    open_id = "o9AgO5Kd5ggOC-bXrbNODIiE3bGY"
    pin_clock(monkeypatch, int(V3["timestamp"]))
    ingest = load_function("MessageIngestFunction")
    query = {
        "signature": V3["signature"],
        "timestamp": V3["timestamp"],
        "nonce": V3["nonce"],
        "openid": open_id,
        "encrypt_type": "aes",
        "msg_signature": V3["msg_signature"],
    }
    body = (
        "<xml>\n    <ToUserName><![CDATA[gh_97417a04a28d]]></ToUserName>\n"
        f"    <Encrypt><![CDATA[{V3['encrypt']}]]></Encrypt>\n</xml>"
    )

    assert_success(invoke(ingest, api_gateway_event("POST", WEBHOOK_PATH, query, body)))

    record, attributes = only_record(stack)
    dedup_id = f"{open_id}:1715943329:event:debug_demo"
    assert attributes["MessageGroupId"] == open_id
    assert attributes["MessageDeduplicationId"] == hashed_dedup_id(dedup_id)
    assert record.dedup_id == dedup_id
    assert (record.open_id, record.msg_type, record.event, record.msg_id) == (
        open_id,
        "event",
        "debug_demo",
        None,
    )
    assert record.create_time == 1715943329
    assert record.received_at == int(V3["timestamp"])
    assert record.fields == {
        "ToUserName": "gh_97417a04a28d",
        "FromUserName": open_id,
        "CreateTime": 1715943329,
        "MsgType": "event",
        "Event": "debug_demo",
    }
    assert isinstance(record.message(), UnknownMessage)
    lines = log_lines(ingest, caplog)
    assert [line.reason for line in lines] == ["unknown_type"]
    assert lines[0].record.event == "debug_demo"
    assert_no_open_id_logged(ingest, caplog, open_id)


@pytest.mark.parametrize(
    ("wechat_credentials", "stack_parameters", "vector"),
    [
        pytest.param(credentials_of(V4, "gh_10f6c3c3ac5a"), "compatible", V4, id="V4-compatible"),
        pytest.param(credentials_of(V5, "gh_10f6c3c3ac5a"), "safe", V5, id="V5-safe"),
    ],
    indirect=["wechat_credentials", "stack_parameters"],
)
def test_official_text_vectors(
    load_function: Callable[..., ModuleType],
    stack: Stack,
    monkeypatch: pytest.MonkeyPatch,
    vector: dict[str, str],
    stack_parameters: dict[str, str],
) -> None:
    pin_clock(monkeypatch, int(vector["timestamp"]))
    ingest = load_function("MessageIngestFunction")
    query = {
        # The vectors carry msg_signature only; `signature` is computed as WeChat would.
        "signature": request_signature(vector["token"], vector["timestamp"], vector["nonce"]),
        "timestamp": vector["timestamp"],
        "nonce": vector["nonce"],
        "openid": "oyORnuP8q7ou2gfYjqLzSIWZf0rs",
        "encrypt_type": "aes",
        "msg_signature": vector["msg_signature"],
    }
    encrypt = f"<Encrypt><![CDATA[{vector['encrypt']}]]></Encrypt>"
    if stack_parameters["MessageMode"] == "compatible":
        # Compatible mode: plaintext fields AND Encrypt. Forge the plaintext copy: only the
        # decrypted copy may be trusted.
        forged = vector["plaintext"].replace("abcdteT", "FORGED").replace("gh_10f6c3c3ac5a", "gh_forged")
        body = forged.replace("</xml>", encrypt + "\n</xml>")
    else:
        body = f"<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>{encrypt}</xml>"

    assert_success(invoke(ingest, api_gateway_event("POST", WEBHOOK_PATH, query, body)))

    record, attributes = only_record(stack)
    msg_id = vector["plaintext"].split("<MsgId>")[1].split("</MsgId>")[0]
    assert record.fields["Content"] == "abcdteT"
    assert record.msg_id == msg_id
    assert record.dedup_id == f"oyORnuP8q7ou2gfYjqLzSIWZf0rs:{msg_id}"
    assert attributes["MessageDeduplicationId"] == hashed_dedup_id(record.dedup_id)
    assert attributes["MessageGroupId"] == "oyORnuP8q7ou2gfYjqLzSIWZf0rs"


# -- the three modes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stack_parameters", "base64_body"),
    [("plain", False), ("compatible", False), ("safe", False), ("safe", True)],
    indirect=["stack_parameters"],
)
def test_each_mode_queues_one_record(
    ingest: ModuleType,
    stack: Stack,
    stack_parameters: dict[str, str],
    base64_body: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    request = text_push(stack_parameters["MessageMode"])
    # Parameters WeChat does not sign (and any others) must not enter the signature.
    event = post(request, base64_body=base64_body, utm_source="menu", foo="bar")

    assert_success(invoke(ingest, event))

    record, attributes = only_record(stack)
    message = record.message()
    assert isinstance(message, TextMessage)
    assert message.content == "垃圾桶满了 <请清理> & 谢谢"
    assert (record.open_id, record.msg_id, record.create_time) == (OPEN_ID, "24877465520000001", STAMP)
    assert attributes["MessageGroupId"] == OPEN_ID
    assert attributes["MessageDeduplicationId"] == hashed_dedup_id(f"{OPEN_ID}:24877465520000001")
    assert [line.reason for line in log_lines(ingest, caplog)] == ["accepted"]
    assert_no_open_id_logged(ingest, caplog, OPEN_ID)


@pytest.mark.parametrize("stack_parameters", ["plain"], indirect=True)
def test_unknown_message_type_is_acknowledged_and_queued(ingest: ModuleType, stack: Stack) -> None:
    xml = message_xml(
        "miniprogrampage", OPEN_ID, DEFAULT_CREDENTIALS["original_id"], STAMP, MsgId=77, Title="x"
    )
    request = build_push(
        xml, mode="plain", token="AAAAA", encoding_aes_key="A" * 43, app_id="x", timestamp=STAMP
    )
    assert_success(invoke(ingest, post(request)))
    record, _ = only_record(stack)
    assert (record.msg_type, record.dedup_id) == ("miniprogrampage", f"{OPEN_ID}:77")
    assert isinstance(record.message(), UnknownMessage)


# -- key rotation -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "wechat_credentials",
    [{**DEFAULT_CREDENTIALS, "encoding_aes_key": NEW_KEY, "previous_encoding_aes_key": "A" * 43}],
    indirect=True,
)
def test_key_rotation_decrypts_with_the_previous_key(
    ingest: ModuleType, stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    old = text_push("safe", msg_id=1, encoding_aes_key="A" * 43)
    new = text_push("safe", msg_id=2, encoding_aes_key=NEW_KEY)
    assert_success(invoke(ingest, post(old)))
    assert_success(invoke(ingest, post(new)))
    records = sorted(
        (InboundRecord.model_validate_json(m["Body"]) for m in queued_messages(stack)),
        key=lambda r: r.msg_id or "",
    )
    assert [record.msg_id for record in records] == ["1", "2"]
    lines = log_lines(ingest, caplog)
    assert [getattr(line.record, "previous_key", False) for line in lines] == [True, False]
    # A key that is neither the current nor the previous one is refused.
    stranger = text_push("safe", msg_id=3, encoding_aes_key="C" * 43)
    assert invoke(ingest, post(stranger))["statusCode"] == 400


# -- WeChat's retries ---------------------------------------------------------------------------------


def capture_sends(module: ModuleType) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        sent.append(dict(params))

    module.sqs.meta.events.register("provide-client-params.sqs.SendMessage", record)
    return sent


@pytest.mark.parametrize(
    ("xml", "dedup_id"),
    [
        pytest.param(
            message_xml("text", OPEN_ID, "gh_97417a04a28d", STAMP, Content="重复", MsgId=24877465520000009),
            f"{OPEN_ID}:24877465520000009",
            id="message",
        ),
        pytest.param(
            message_xml("event", OPEN_ID, "gh_97417a04a28d", STAMP, Event="subscribe", EventKey="qrscene_7"),
            f"{OPEN_ID}:{STAMP}:subscribe:qrscene_7",
            id="event",
        ),
    ],
)
def test_four_deliveries_queue_one_record(ingest: ModuleType, stack: Stack, xml: str, dedup_id: str) -> None:
    sent = capture_sends(ingest)
    # WeChat's retries reuse the push but sign each delivery afresh.
    for nonce in ("1", "2", "3", "4"):
        request = build_push(
            xml, mode="safe", token="AAAAA", encoding_aes_key="A" * 43, app_id="wx134c8103faa5a59e",
            timestamp=STAMP, nonce=nonce,
        )  # fmt: skip
        assert_success(invoke(ingest, post(request)))

    expected = hashed_dedup_id(dedup_id)
    assert [(s["MessageDeduplicationId"], s["MessageGroupId"]) for s in sent] == [(expected, OPEN_ID)] * 4
    _, attributes = only_record(stack)
    assert (attributes["MessageDeduplicationId"], attributes["MessageGroupId"]) == (expected, OPEN_ID)


def test_four_concurrent_deliveries_queue_one_record(
    ingest: ModuleType, stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SQS checks and records a deduplication id atomically; moto checks, then appends, without a
    # lock. Make moto atomic like the real service, so the test exercises the handler, not moto.
    lock = threading.Lock()
    add_message = Queue.add_message

    def atomic_add_message(self: Queue, message: Any) -> None:
        with lock:
            add_message(self, message)

    monkeypatch.setattr(Queue, "add_message", atomic_add_message)
    sent = capture_sends(ingest)
    requests = [text_push("safe", msg_id=24877465520000010, nonce=str(n)) for n in range(4)]
    barrier = threading.Barrier(4)

    def deliver(request: PushRequest) -> dict[str, Any]:
        barrier.wait(timeout=10)
        return invoke(ingest, post(request))

    with ThreadPoolExecutor(max_workers=4) as pool:
        responses = list(pool.map(deliver, requests))

    for response in responses:
        assert_success(response)
    expected = hashed_dedup_id(f"{OPEN_ID}:24877465520000010")
    assert len(sent) == 4
    assert {(s["MessageDeduplicationId"], s["MessageGroupId"]) for s in sent} == {(expected, OPEN_ID)}
    record, attributes = only_record(stack)
    assert record.msg_id == "24877465520000010"
    assert (attributes["MessageDeduplicationId"], attributes["MessageGroupId"]) == (expected, OPEN_ID)


# -- failures on our side -----------------------------------------------------------------------------


def test_queue_failure_answers_500_so_wechat_retries(
    load_function: Callable[..., ModuleType],
    stack: Stack,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    pin_clock(monkeypatch, STAMP + 5)
    missing = stack.ref("InboundQueue").replace("InboundQueue", "NoSuchQueue")
    ingest = load_function("MessageIngestFunction", extra_env={"INBOUND_QUEUE_URL": missing})
    response = invoke(ingest, post(text_push("safe")))
    assert (response["statusCode"], response["body"]) == (500, "")
    assert queued_messages(stack) == []
    assert [line.reason for line in log_lines(ingest, caplog)] == ["queue_send_failed"]
    assert_no_open_id_logged(ingest, caplog, OPEN_ID)

    # WeChat's retry, once the queue is reachable again, delivers the push.
    ingest = load_function("MessageIngestFunction")
    assert_success(invoke(ingest, post(text_push("safe", nonce="retry"))))
    assert only_record(stack)[0].msg_id == "24877465520000001"


def test_unreadable_credentials_answer_500(
    load_function: Callable[..., ModuleType], stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    pin_clock(monkeypatch, STAMP + 5)
    ingest = load_function("MessageIngestFunction", extra_env={"WECHAT_SECRET_ID": "no-such-secret"})
    response = invoke(ingest, post(text_push("safe")))
    assert (response["statusCode"], response["body"]) == (500, "")
    assert queued_messages(stack) == []


def test_record_body_is_the_inbound_record_contract(ingest: ModuleType, stack: Stack) -> None:
    assert_success(invoke(ingest, post(text_push("safe"))))
    body = json.loads(queued_messages(stack)[0]["Body"])
    assert set(body) == set(InboundRecord.model_fields)
    assert body["schema_version"] == 1
