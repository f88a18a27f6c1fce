"""Table-driven bad input for the webhook, through the real handlers on the emulated stack.

Every case asserts: the expected status (never 5xx), an empty body for refusals and `success` for
acknowledgements, no unhandled exception (the handlers would answer 500 and log "failed"), nothing
queued (read from moto), and exactly one log line with the expected reason that holds no OpenID.

Why each status (the full rules are in `intake.webhook`):
- 400: the request is not something WeChat sends: a parameter missing, repeated or malformed, a
  body that is not a safe `<xml>` document, in the wrong form for the configured mode, not
  decryptable for our key and AppID, or addressed to another account. Retrying cannot help.
- 401: a signature that does not verify, or a timestamp outside the replay window.
- 405 / 413: wrong method; a body over MAX_BODY_BYTES (checked before anything else reads it).
- 200 `success`, not queued: an authentic, well-formed push whose fields do not validate. WeChat
  would resend it three times, fail identically, and then show the citizen "该公众号暂时无法提供服务",
  so it is acknowledged and logged as an error instead.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from devstack.resources import Stack
from devstack.wechat_push import PushRequest, api_gateway_event, build_push, build_url_check, message_xml
from intake.crypto import pkcs7_pad
from tests.conftest import DEFAULT_CREDENTIALS
from tests.unit.test_push_xml import BILLION_LAUGHS, XXE
from tests.unit.webhook_support import (
    VECTORS,
    WEBHOOK_PATH,
    drain,
    invoke,
    log_lines,
    pin_clock,
    queued_messages,
    shared_stacks,
)

TOKEN = DEFAULT_CREDENTIALS["token"]
KEY = DEFAULT_CREDENTIALS["encoding_aes_key"]
APP_ID = DEFAULT_CREDENTIALS["app_id"]
ORIGINAL_ID = DEFAULT_CREDENTIALS["original_id"]
OPEN_ID = "oBADINPUTcitizen000000000001"
STAMP = 1733300000
NOW = STAMP + 60
NONCE = "1234567890"
MAX_BODY = 65536

Event = dict[str, Any]


def sha1(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()  # noqa: S324


def text_xml(open_id: str = OPEN_ID, to: str = ORIGINAL_ID, **fields: str | int | float) -> str:
    values: dict[str, str | int | float] = {"Content": "井盖丢了", "MsgId": 24877465529999001}
    values.update(fields)
    return message_xml("text", open_id, to, STAMP, **values)


def push(xml: str, mode: str, **overrides: Any) -> PushRequest:
    arguments: dict[str, Any] = {
        "token": TOKEN,
        "encoding_aes_key": KEY,
        "app_id": APP_ID,
        "timestamp": STAMP,
        "nonce": NONCE,
    }
    arguments.update(overrides)
    return build_push(xml, mode=mode, **arguments)


def post(request: PushRequest, **query_changes: str | None) -> Event:
    query = {**request.query, **query_changes}
    return api_gateway_event(
        "POST", WEBHOOK_PATH, {k: v for k, v in query.items() if v is not None}, request.body
    )


def safe_envelope(encrypt: str, to: str = ORIGINAL_ID) -> PushRequest:
    """A safe-mode push around any `Encrypt` value, with both signatures valid for it."""
    stamp = str(STAMP)
    query = {
        "signature": sha1(TOKEN, stamp, NONCE),
        "timestamp": stamp,
        "nonce": NONCE,
        "openid": OPEN_ID,
        "encrypt_type": "aes",
        "msg_signature": sha1(TOKEN, stamp, NONCE, encrypt),
    }
    body = f"<xml><ToUserName><![CDATA[{to}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
    return PushRequest(query=query, body=body)


def raw_encrypt(plain: bytes, encoding_aes_key: str = KEY) -> str:
    """Our own encryptor without any checks: encrypts `plain` (whole AES blocks) as given."""
    key = base64.b64decode(encoding_aes_key + "=")
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()


def envelope_plain(message: bytes, length: int | None = None, app_id: str = APP_ID) -> bytes:
    size = len(message) if length is None else length
    return b"R" * 16 + size.to_bytes(4, "big") + message + app_id.encode()


# -- case builders ------------------------------------------------------------------------------------


def with_repeated(event: Event, name: str, values: list[str]) -> Event:
    event["multiValueQueryStringParameters"][name] = values
    event["queryStringParameters"][name] = values[-1]
    return event


def oversized_plain() -> Event:
    xml = text_xml(Content="x" * MAX_BODY)
    return post(push(xml, "plain"))


def oversized_base64() -> Event:
    request = push(text_xml(Content="x" * MAX_BODY), "plain")
    return api_gateway_event("POST", WEBHOOK_PATH, request.query, request.body, base64_body=True)


def plain_body(body: str | None) -> Event:
    request = push(text_xml(), "plain")
    return api_gateway_event("POST", WEBHOOK_PATH, request.query, body)


def safe_inner(xml: str) -> Event:
    return post(push(xml, "safe"))


def base64_flag(body: str) -> Event:
    event = plain_body(None)
    event["body"] = body
    event["isBase64Encoded"] = True
    return event


def duplicate_encrypt() -> Event:
    request = push(text_xml(), "safe")
    body = request.body.replace("</xml>", "<Encrypt><![CDATA[AAAA]]></Encrypt></xml>")
    return post(PushRequest(request.query, body))


def tampered_encrypt() -> Event:
    request = push(text_xml(), "safe")
    start = request.body.index("<Encrypt><![CDATA[") + len("<Encrypt><![CDATA[")
    flipped = "B" if request.body[start] != "B" else "C"
    return post(PushRequest(request.query, request.body[:start] + flipped + request.body[start + 1 :]))


def empty_encrypt() -> Event:
    request = safe_envelope("")
    return post(PushRequest(request.query, request.body.replace("<![CDATA[]]>", "")))


def url_check(**changes: str | None) -> Event:
    query: dict[str, str | None] = {**build_url_check(TOKEN, "4375120948345356249", STAMP, NONCE), **changes}
    return api_gateway_event("GET", WEBHOOK_PATH, {k: v for k, v in query.items() if v is not None}, None)


@dataclass(frozen=True)
class Case:
    id: str
    build: Callable[[], Event]
    status: int
    reason: str
    why: str
    mode: str = "safe"
    function: str = "MessageIngestFunction"

    def __str__(self) -> str:
        return self.id


V = VECTORS
# fmt: off
CASES = [
    # -- query parameters and signatures --
    Case("missing-signature", lambda: post(push(text_xml(), "safe"), signature=None), 400,
         "missing_parameter", "WeChat always signs"),
    Case("malformed-signature", lambda: post(push(text_xml(), "safe"), signature="zz" * 20), 400,
         "malformed_parameter", "not 40 lower-case hex digits"),
    Case("wrong-signature", lambda: post(push(text_xml(), "safe"), signature="0" * 40), 401, "bad_signature",
         "forged"),
    Case("extra-parameter-inside-signature",
         lambda: post(push(text_xml(), "safe"), signature=sha1(TOKEN, str(STAMP), NONCE, OPEN_ID)), 401,
         "bad_signature", "only token, timestamp and nonce are signed; openid must not enter the hash"),
    Case("repeated-signature",
         lambda: with_repeated(post(push(text_xml(), "safe")), "signature", ["0" * 40, "1" * 40]), 400,
         "repeated_parameter", "which copy would be checked is ambiguous"),
    Case("repeated-openid",
         lambda: with_repeated(post(push(text_xml(), "safe")), "openid", [OPEN_ID, "oOTHER"]), 400,
         "repeated_parameter", "WeChat sends each parameter once"),
    Case("missing-timestamp", lambda: post(push(text_xml(), "safe"), timestamp=None), 400,
         "missing_parameter", "WeChat always sends it"),
    Case("non-numeric-timestamp", lambda: post(push(text_xml(), "safe"), timestamp="17333OOOOO"), 400,
         "malformed_parameter", "Unix seconds are digits"),
    Case("stale-timestamp", lambda: post(push(text_xml(), "safe", timestamp=NOW - 301)), 401,
         "stale_timestamp", "a replay older than REPLAY_WINDOW_SECONDS"),
    Case("future-timestamp", lambda: post(push(text_xml(), "safe", timestamp=NOW + 301)), 401,
         "future_timestamp", "beyond any clock skew"),
    Case("missing-nonce", lambda: post(push(text_xml(), "safe"), nonce=None), 400, "missing_parameter",
         "WeChat always sends it"),
    Case("missing-msg-signature", lambda: post(push(text_xml(), "safe"), msg_signature=None), 400,
         "missing_parameter", "safe mode requires msg_signature"),
    Case("wrong-msg-signature", lambda: post(push(text_xml(), "safe"), msg_signature="0" * 40), 401,
         "bad_msg_signature", "forged"),
    Case("tampered-encrypt", tampered_encrypt, 401, "bad_msg_signature",
         "msg_signature covers Encrypt, so a changed ciphertext is caught before decryption"),
    Case("encrypt-type-unknown", lambda: post(push(text_xml(), "safe"), encrypt_type="des"), 400,
         "malformed_parameter", "WeChat knows only aes"),
    Case("encrypt-type-missing-in-safe-mode", lambda: post(push(text_xml(), "safe"), encrypt_type=None), 400,
         "encrypt_type_not_aes", "safe mode always says encrypt_type=aes"),
    Case("no-query-at-all", lambda: api_gateway_event("POST", WEBHOOK_PATH, None, "<xml/>"), 400,
         "missing_parameter", "unsigned"),
    # -- body size and encoding --
    Case("body-over-size-cap", oversized_plain, 413, "body_too_large", "capped before anything else reads it",
         mode="plain"),
    Case("base64-body-over-size-cap", oversized_base64, 413, "body_too_large", "capped before decoding",
         mode="plain"),
    Case("empty-body", lambda: plain_body(""), 400, "empty_body", "a push has a body", mode="plain"),
    Case("no-body", lambda: plain_body(None), 400, "empty_body", "a push has a body", mode="plain"),
    Case("base64-flag-invalid-base64", lambda: base64_flag("<xml>not base64</xml>"), 400, "body_not_base64",
         "API Gateway's base64 is always valid", mode="plain"),
    Case("base64-body-not-utf8", lambda: base64_flag(base64.b64encode(b"<xml>\xff</xml>").decode()), 400,
         "xml_not_utf8", "WeChat sends UTF-8", mode="plain"),
    Case("lone-surrogate-body", lambda: plain_body("<xml>\udcff</xml>"), 400, "body_not_utf8",
         "not encodable text", mode="plain"),
    # -- XML --
    Case("non-xml", lambda: plain_body("hello"), 400, "xml_root_not_xml", "not XML", mode="plain"),
    Case("json-body", lambda: plain_body('{"MsgType": "text"}'), 400, "xml_root_not_xml", "not XML",
         mode="plain"),
    Case("malformed-xml", lambda: plain_body("<xml><MsgType>text</xml>"), 400, "xml_malformed",
         "not well-formed", mode="plain"),
    Case("xxe", lambda: plain_body(XXE), 400, "xml_declaration_refused", "DOCTYPE refused before parsing",
         mode="plain"),
    Case("billion-laughs", lambda: plain_body(BILLION_LAUGHS), 400, "xml_declaration_refused",
         "entity declarations refused before parsing", mode="plain"),
    Case("billion-laughs-as-safe-envelope",
         lambda: post(PushRequest(push(text_xml(), "safe").query, BILLION_LAUGHS)), 400,
         "xml_declaration_refused", "the envelope is parsed with the same rules"),
    Case("xxe-inside-encrypted-message", lambda: safe_inner(XXE), 400, "xml_declaration_refused",
         "the decrypted message is parsed with the same rules"),
    Case("root-not-xml", lambda: plain_body("<root><MsgType>text</MsgType></root>"), 400, "xml_root_not_xml",
         "WeChat's root is <xml>", mode="plain"),
    Case("duplicate-msgtype", lambda: plain_body(text_xml(MsgType="event")), 400, "xml_duplicate_element",
         "two MsgTypes make the type ambiguous", mode="plain"),
    Case("duplicate-encrypt", duplicate_encrypt, 400, "xml_duplicate_element",
         "two ciphertexts make the envelope ambiguous"),
    # -- authentic but invalid fields: acknowledged, not queued --
    Case("xml-without-msgtype",
         lambda: plain_body(re.sub("<MsgType>.*?</MsgType>", "", text_xml())),
         200, "unparseable", "signature valid; a retry would fail the same way", mode="plain"),
    Case("non-numeric-msgid", lambda: plain_body(text_xml(MsgId="12ab")), 200, "unparseable",
         "signature valid; a retry would fail the same way", mode="plain"),
    Case("non-numeric-msgid-encrypted", lambda: safe_inner(text_xml(MsgId="12ab")), 200, "unparseable",
         "authentic (msg_signature and AES) but invalid"),
    Case("missing-fromusername",
         lambda: safe_inner(message_xml("text", "", ORIGINAL_ID, STAMP, Content="x", MsgId=1)), 200,
         "unparseable", "authentic but invalid"),
    Case("fromusername-not-an-openid",
         lambda: post(push(text_xml(open_id="市民 张三"), "safe"), openid=None),
         200, "unparseable", "cannot be an SQS message group id; authentic but invalid"),
    Case("non-numeric-createtime",
         lambda: safe_inner(text_xml().replace(f"<CreateTime>{STAMP}", "<CreateTime>yesterday")),
         200, "unparseable", "authentic but invalid"),
    # -- encryption --
    Case("encrypted-for-another-appid", lambda: post(push(text_xml(), "safe", app_id="wx0000000000000000")),
         400, "app_id_mismatch", "not for this account"),
    Case("wrong-key", lambda: post(push(text_xml(), "safe", encoding_aes_key="B" * 43)), 400,
         "decrypt_failed", "not our key"),
    Case("truncated-ciphertext", lambda: post(safe_envelope(V["V3"]["encrypt"][:40])), 400, "decrypt_failed",
         "not whole AES blocks"),
    Case("non-block-sized-ciphertext", lambda: post(safe_envelope(base64.b64encode(b"\x01" * 17).decode())),
         400, "decrypt_failed", "17 bytes"),
    Case("non-base64-ciphertext", lambda: post(safe_envelope("!!not*base64!!")), 400, "decrypt_failed",
         "not base64"),
    Case("16-zero-bytes", lambda: post(safe_envelope(base64.b64encode(bytes(16)).decode())), 400,
         "decrypt_failed", "one block of zeros"),
    Case("absurd-length-field",
         lambda: post(safe_envelope(raw_encrypt(pkcs7_pad(envelope_plain(b"<xml/>", length=0xFFFFFFF0))))),
         400, "decrypt_failed", "length field beyond the plaintext"),
    Case("bad-padding",
         lambda: post(safe_envelope(raw_encrypt(envelope_plain(b"<x/>").ljust(60, b"x") + b"\x04\x05\x04\x04"))),
         400, "decrypt_failed", "pad bytes disagree"),
    Case("empty-encrypt", empty_encrypt, 400, "encrypt_empty", "nothing to decrypt"),
    # -- mode mismatches --
    Case("plaintext-body-in-safe-mode", lambda: post(push(text_xml(), "plain")), 400,
         "plaintext_push_in_safe_mode", "safe mode never sends plaintext"),
    Case("compatible-body-in-safe-mode", lambda: post(push(text_xml(), "compatible")), 400,
         "plaintext_fields_in_safe_mode", "the account is not in compatible mode"),
    Case("encrypted-body-in-plain-mode", lambda: post(push(text_xml(), "safe")), 400,
         "encrypted_push_in_plain_mode", "plain mode never encrypts", mode="plain"),
    Case("encrypt-type-aes-in-plain-mode", lambda: post(push(text_xml(), "plain"), encrypt_type="aes"), 400,
         "encrypted_push_in_plain_mode", "plain mode never encrypts", mode="plain"),
    Case("plaintext-body-in-compatible-mode", lambda: post(push(text_xml(), "plain")), 400,
         "plaintext_push_in_compatible_mode", "compatible mode always adds Encrypt", mode="compatible"),
    Case("wrong-recipient", lambda: safe_inner(text_xml(to="gh_000000000000")), 400, "wrong_recipient",
         "ToUserName is another account's original id"),
    # -- methods and event shape --
    Case("get-on-ingest",
         lambda: api_gateway_event("GET", WEBHOOK_PATH, push(text_xml(), "safe").query, None), 405,
         "method_not_allowed", "pushes are POSTs"),
    Case("put-on-ingest", lambda: {**post(push(text_xml(), "safe")), "httpMethod": "PUT"}, 405,
         "method_not_allowed", "pushes are POSTs"),
    Case("delete-on-ingest", lambda: {**post(push(text_xml(), "safe")), "httpMethod": "DELETE"}, 405,
         "method_not_allowed", "pushes are POSTs"),
    Case("not-a-proxy-event", lambda: {"Records": []}, 405, "method_not_allowed", "no HTTP method at all"),
    # -- the URL check --
    Case("url-check-wrong-signature", lambda: url_check(signature="0" * 40), 401, "bad_signature", "forged",
         function="WebhookVerifyFunction"),
    Case("url-check-missing-echostr", lambda: url_check(echostr=None), 400, "missing_parameter",
         "nothing to echo", function="WebhookVerifyFunction"),
    Case("url-check-echostr-with-markup", lambda: url_check(echostr="<script>alert(1)</script> x"), 400,
         "malformed_parameter", "echostr is printable ASCII without spaces",
         function="WebhookVerifyFunction"),
    Case("url-check-stale", lambda: url_check(**build_url_check(TOKEN, "1", NOW - 301, NONCE)), 401,
         "stale_timestamp", "a replayed URL check", function="WebhookVerifyFunction"),
    Case("url-check-post", lambda: {**url_check(), "httpMethod": "POST"}, 405, "method_not_allowed",
         "the URL check is a GET", function="WebhookVerifyFunction"),
    Case("url-check-head", lambda: {**url_check(), "httpMethod": "HEAD"}, 405, "method_not_allowed",
         "the URL check is a GET", function="WebhookVerifyFunction"),
    Case("url-check-upper-case-signature",
         lambda: url_check(signature=url_check()["queryStringParameters"]["signature"].upper()), 400,
         "malformed_parameter", "WeChat signs in lower-case hex", function="WebhookVerifyFunction"),
    Case("url-check-missing-timestamp", lambda: url_check(timestamp=None), 400, "missing_parameter",
         "unsigned", function="WebhookVerifyFunction"),
    Case("url-check-missing-nonce", lambda: url_check(nonce=None), 400, "missing_parameter", "unsigned",
         function="WebhookVerifyFunction"),
    Case("url-check-nonce-changed", lambda: url_check(nonce="1234567891"), 401, "bad_signature",
         "the signature covers the nonce", function="WebhookVerifyFunction"),
    Case("url-check-no-query", lambda: api_gateway_event("GET", WEBHOOK_PATH, None, None), 400,
         "missing_parameter", "unsigned", function="WebhookVerifyFunction"),
]
# fmt: on


def test_the_table_is_big_and_distinct() -> None:
    assert len(CASES) >= 30
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.fixture(scope="module")
def stacks() -> Iterator[dict[str, Stack]]:
    with shared_stacks(("plain", "compatible", "safe")) as created:
        yield created


@pytest.fixture
def stack(stacks: dict[str, Stack], case: Case) -> Stack:
    chosen = stacks[case.mode]
    drain(chosen)
    return chosen


@pytest.mark.parametrize("case", CASES, ids=str)
def test_bad_input(
    case: Case,
    stack: Stack,
    load_function: Callable[..., ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    pin_clock(monkeypatch, NOW)
    module = load_function(case.function)
    event = case.build()
    caplog.clear()

    response = invoke(module, event)

    assert response["statusCode"] == case.status, case.why
    assert response["statusCode"] < 500
    assert response["headers"] == {"Content-Type": "text/plain"}
    assert response["body"] == ("success" if case.status == 200 else "")
    assert queued_messages(stack) == []
    lines = log_lines(module, caplog)
    assert [line.reason for line in lines] == [case.reason]
    assert all("failed" not in line.record.getMessage() for line in lines)
    for line in lines:
        assert OPEN_ID not in line.text
        assert "市民" not in line.text
        assert "o9AgO5Kd5ggOC" not in line.text
