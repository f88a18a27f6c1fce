"""Security checks of the webhook at the handler: constant-time signature checks, replay window, body cap.

Each check drives the real message-ingest or webhook-verify handler with API Gateway REST proxy
events on the template's resources in moto (one shared stack), except the source scan, which
backs the behavioural constant-time test.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from devstack.resources import Stack
from devstack.wechat_push import api_gateway_event, build_push, build_url_check, message_xml
from intake import signature
from tests.conftest import DEFAULT_CREDENTIALS, ROOT
from tests.unit.webhook_support import drain, invoke, log_lines, pin_clock, queued_messages, shared_stacks

TOKEN = DEFAULT_CREDENTIALS["token"]
KEY = DEFAULT_CREDENTIALS["encoding_aes_key"]
APP_ID = DEFAULT_CREDENTIALS["app_id"]
ORIGINAL_ID = DEFAULT_CREDENTIALS["original_id"]
OPEN_ID = "oSECURITYcitizen000000000001"
STAMP = 1733300000
NONCE = "1234567890"
# template.yaml's defaults for REPLAY_WINDOW_SECONDS and MAX_BODY_BYTES.
REPLAY_WINDOW = 300
MAX_BODY = 65536


@pytest.fixture(scope="module")
def stacks() -> Iterator[dict[str, Stack]]:
    with shared_stacks(("plain", "safe")) as created:
        yield created


@pytest.fixture
def stack(stacks: dict[str, Stack], request: pytest.FixtureRequest) -> Stack:
    mode = getattr(request, "param", "safe")
    drain(stacks[mode])
    return stacks[mode]


def text_push(
    mode: str, content: str = "井盖丢了", msg_id: int = 24877465529999001, timestamp: int = STAMP
) -> Any:
    xml = message_xml("text", OPEN_ID, ORIGINAL_ID, STAMP, Content=content, MsgId=msg_id)
    return build_push(
        xml, mode=mode, token=TOKEN, encoding_aes_key=KEY, app_id=APP_ID, timestamp=timestamp, nonce=NONCE
    )


def post(request: Any) -> dict[str, Any]:
    return api_gateway_event("POST", "/wechat", request.query, request.body)


# -- constant-time comparison ---------------------------------------------------------------------------


def test_signature_module_compares_with_compare_digest() -> None:
    # GIVEN the source of the signature module and of every module that handles requests
    source = Path(signature.__file__).read_text(encoding="utf-8")
    handlers = [
        *ROOT.joinpath("layers/shared/intake").glob("*.py"),
        *ROOT.joinpath("functions").glob("*/*.py"),
    ]
    plain_comparison = re.compile(r"signature\w*\s*[!=]=|[!=]=\s*\w*signature")

    # WHEN they are searched for comparisons
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in handlers
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if plain_comparison.search(line.split("#", 1)[0])
    ]

    # THEN signatures are compared only through hmac.compare_digest, never with == or !=
    assert "hmac.compare_digest(" in source
    assert offenders == []


@pytest.fixture
def compare_digest_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bytes, bytes]]:
    """Record every hmac.compare_digest call the signature module makes, still comparing for real."""
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def recording(left: bytes, right: bytes) -> bool:
        calls.append((left, right))
        return real(left, right)

    monkeypatch.setattr(signature.hmac, "compare_digest", recording)
    return calls


def test_push_signatures_checked_with_compare_digest(
    stack: Stack,
    load_function: Callable[..., ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    compare_digest_calls: list[tuple[bytes, bytes]],
) -> None:
    # GIVEN a signed safe-mode push
    pin_clock(monkeypatch, STAMP)
    module = load_function("MessageIngestFunction")
    request = text_push("safe")

    # WHEN message-ingest handles it
    response = invoke(module, post(request))

    # THEN both signature and msg_signature went through hmac.compare_digest
    received = [pair[1] for pair in compare_digest_calls]
    assert response["statusCode"] == 200
    assert request.query["signature"].encode() in received
    assert request.query["msg_signature"].encode() in received


def test_url_check_signature_checked_with_compare_digest(
    stack: Stack,
    load_function: Callable[..., ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    compare_digest_calls: list[tuple[bytes, bytes]],
) -> None:
    # GIVEN WeChat's URL check with a wrong signature
    pin_clock(monkeypatch, STAMP)
    module = load_function("WebhookVerifyFunction")
    query = {**build_url_check(TOKEN, "4375120948345356249", STAMP, NONCE), "signature": "0" * 40}

    # WHEN webhook-verify handles it
    response = invoke(module, api_gateway_event("GET", "/wechat", query, None))

    # THEN it is refused after a compare_digest comparison
    assert response["statusCode"] == 401
    assert [pair[1] for pair in compare_digest_calls] == [b"0" * 40]


# -- replay window ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("skew", "status", "reason"),
    [
        (REPLAY_WINDOW, 200, "accepted"),
        (-REPLAY_WINDOW, 200, "accepted"),
        (REPLAY_WINDOW + 1, 401, "stale_timestamp"),
        (-REPLAY_WINDOW - 1, 401, "future_timestamp"),
        (86400 * 365, 401, "stale_timestamp"),
    ],
    ids=["oldest-accepted", "newest-accepted", "one-second-too-old", "one-second-too-new", "a-year-old"],
)
def test_replay_window_at_handler(
    skew: int,
    status: int,
    reason: str,
    stack: Stack,
    load_function: Callable[..., ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # GIVEN a correctly signed push whose timestamp is `skew` seconds before the handler's clock
    pin_clock(monkeypatch, STAMP + skew)
    module = load_function("MessageIngestFunction")
    caplog.clear()

    # WHEN message-ingest handles it
    response = invoke(module, post(text_push("safe")))

    # THEN it is queued inside the window and refused with 401 outside it
    assert response["statusCode"] == status
    assert [line.reason for line in log_lines(module, caplog)] == [reason]
    assert len(queued_messages(stack)) == (1 if status == 200 else 0)


def test_replayed_push_inside_window_queued_once(
    stack: Stack, load_function: Callable[..., ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN one signed push, replayed byte for byte inside the replay window (same nonce, same MsgId)
    pin_clock(monkeypatch, STAMP + 10)
    module = load_function("MessageIngestFunction")
    event = post(text_push("safe"))

    # WHEN message-ingest receives it three times
    statuses = [invoke(module, event)["statusCode"] for _ in range(3)]

    # THEN every copy is acknowledged (WeChat must stop retrying) but the queue contains it once
    assert statuses == [200, 200, 200]
    assert len(queued_messages(stack)) == 1


# -- body size cap ---------------------------------------------------------------------------------------


def padded_plain_push(size: int, filler: str = "x") -> Any:
    """A signed plain-mode push of exactly `size` UTF-8 bytes, padded in an element the model ignores.

    With filler 井 (3 bytes) the body has far fewer characters than bytes, so a cap that counted
    characters would let it through.
    """
    base = text_push("plain")
    padding = "<Padding><![CDATA[]]></Padding>"
    missing = size - len(base.body.encode()) - len(padding)
    wide = missing // len(filler.encode())
    text = filler * wide + "x" * (missing - wide * len(filler.encode()))
    body = base.body.replace("</xml>", padding.replace("[]", f"[{text}]") + "</xml>")
    assert len(body.encode()) == size
    return type(base)(base.query, body)


@pytest.mark.parametrize("stack", ["plain"], indirect=True)
@pytest.mark.parametrize(
    ("size", "filler", "base64_body", "status"),
    [
        (MAX_BODY, "x", False, 200),
        (MAX_BODY + 1, "x", False, 413),
        (MAX_BODY + 1, "井", False, 413),
        (MAX_BODY, "x", True, 200),
        (MAX_BODY + 1, "x", True, 413),
    ],
    ids=[
        "at-cap",
        "one-byte-over",
        "over-in-bytes-not-characters",
        "base64-at-cap",
        "base64-over-after-decoding",
    ],
)
def test_body_cap_at_handler(
    size: int,
    filler: str,
    base64_body: bool,
    status: int,
    stack: Stack,
    load_function: Callable[..., ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # GIVEN a signed plain-mode push of `size` bytes, sent as text or base64 as API Gateway would
    pin_clock(monkeypatch, STAMP)
    module = load_function("MessageIngestFunction")
    request = padded_plain_push(size, filler)
    event = api_gateway_event("POST", "/wechat", request.query, request.body, base64_body=base64_body)
    caplog.clear()

    # WHEN message-ingest handles it
    response = invoke(module, event)

    # THEN a body over MAX_BODY_BYTES is refused with 413 and logged, and nothing is queued
    queued = queued_messages(stack)
    assert response["statusCode"] == status
    if status == 413:
        assert [line.reason for line in log_lines(module, caplog)] == ["body_too_large"]
        assert queued == []
    else:
        assert len(queued) == 1
