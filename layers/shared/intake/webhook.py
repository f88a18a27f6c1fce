"""The request logic of WeChat's callback URL, shared by webhook-verify (GET) and message-ingest (POST).

The handlers stay thin: they turn the API Gateway event into an `HttpRequest`, call `verify_url` or
`accept_push`, log the outcome and answer. Nothing here logs or touches AWS.

A push goes through, in this order (each step answers before the next one reads more input):
method -> body size cap -> query parameters -> `signature` -> replay window -> body decoding ->
envelope XML -> message mode -> `msg_signature` -> decryption -> message XML -> ToUserName ->
message model -> `InboundRecord`.

Statuses (bodies of refusals are always empty, so they tell a prober nothing):
- 405 wrong method; 413 body over `MAX_BODY_BYTES`;
- 400 a parameter missing, repeated or malformed, a body that is not what WeChat sends in the
  configured mode (not base64, not UTF-8, not a safe `<xml>` document, plaintext in safe mode,
  encrypted in plain mode), an envelope that does not decrypt for our key and AppID, or a push
  addressed to another account;
- 401 `signature` or `msg_signature` wrong, or `timestamp` outside the replay window;
- 200 `success` for a push that passed every check above: it is queued, or, when its fields do
  not validate (say a non-numeric MsgId), acknowledged without being queued. WeChat would resend
  such a push three more times and fail the same way each time, then show the citizen its
  "service unavailable" notice, so the push is acknowledged, logged as an error and counted instead.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from intake import clock
from intake.signature import check_msg_signature, check_signature

if TYPE_CHECKING:
    from intake.credentials import WeChatCredentials
    from intake.crypto import MessageCrypto
    from intake.messages import Message
    from intake.records import InboundRecord
    from intake.settings import Settings

SUCCESS = "success"
TEXT_PLAIN = "text/plain"

_SIGNATURE = re.compile(r"[0-9a-f]{40}")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_NONCE = re.compile(r"[\x21-\x7e]{1,128}")
_ECHOSTR = re.compile(r"[\x21-\x7e]{1,512}")
_OPENID = re.compile(r"[\x21-\x7e]{1,128}")
# SQS accepts a MessageGroupId of 1..128 printable ASCII characters without space; OpenIDs are
# 28 characters of [A-Za-z0-9_-].
_GROUP_ID = re.compile(r"[\x21-\x7e]{1,128}")
_TYPE_NAME = re.compile(r"[A-Za-z0-9_]{1,64}")
# WeChat sends encrypt_type=aes with encrypted pushes; plaintext pushes carry none (some clients say raw).
_ENCRYPT_TYPE = re.compile(r"aes|raw")
# Parameters that WeChat signs or whose meaning changes how the body is read: each must appear once.
_SINGLE_VALUED = ("signature", "timestamp", "nonce", "echostr", "msg_signature", "encrypt_type", "openid")


class Rejection(Exception):  # a refusal, not an error of this service
    """A request the webhook refuses. `reason` and `context` go to the log, never into the answer."""

    def __init__(self, status: int, reason: str, **context: str | int | bool) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.context = context


@dataclass(frozen=True)
class HttpRequest:
    """The parts of an API Gateway REST proxy event (payload version 1.0) that the webhook reads."""

    method: str
    query: Mapping[str, str]
    repeated: frozenset[str] = frozenset()
    body: str | None = None
    base64_body: bool = False

    @classmethod
    def from_api_gateway(cls, event: Mapping[str, Any]) -> HttpRequest:
        if not isinstance(event, Mapping):
            return cls(method="", query={})
        raw_query = event.get("queryStringParameters") or {}
        query = (
            {k: v for k, v in raw_query.items() if isinstance(k, str) and isinstance(v, str)}
            if isinstance(raw_query, Mapping)
            else {}
        )
        multi = event.get("multiValueQueryStringParameters") or {}
        repeated = (
            frozenset(k for k, v in multi.items() if isinstance(v, list) and len(v) > 1)
            if isinstance(multi, Mapping)
            else frozenset()
        )
        body = event.get("body")
        method = event.get("httpMethod")
        return cls(
            method=method.upper() if isinstance(method, str) else "",
            query=query,
            repeated=repeated,
            body=body if isinstance(body, str) else None,
            base64_body=event.get("isBase64Encoded") is True,
        )


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: str = ""

    def to_api_gateway(self) -> dict[str, Any]:
        return {
            "statusCode": self.status,
            "headers": {"Content-Type": TEXT_PLAIN},
            "body": self.body,
            "isBase64Encoded": False,
        }


@dataclass(frozen=True)
class PushOutcome:
    """An authentic push: `record` is what to queue, None when it is acknowledged without queueing."""

    record: InboundRecord | None
    reason: str
    context: dict[str, str | int | bool] = field(default_factory=dict)


# -- query parameters ----------------------------------------------------------------------------------


def _optional(request: HttpRequest, name: str, pattern: re.Pattern[str]) -> str | None:
    """Return a parameter's value, None when absent or empty; refuse a malformed one."""
    value = request.query.get(name)
    if not value:
        return None
    if not pattern.fullmatch(value):
        raise Rejection(400, "malformed_parameter", parameter=name)
    return value


def _required(request: HttpRequest, name: str, pattern: re.Pattern[str]) -> str:
    value = _optional(request, name, pattern)
    if value is None:
        raise Rejection(400, "missing_parameter", parameter=name)
    return value


def _check_repeated(request: HttpRequest) -> None:
    for name in _SINGLE_VALUED:
        if name in request.repeated:
            raise Rejection(400, "repeated_parameter", parameter=name)


def check_replay_window(timestamp: str, window_seconds: int, now: float) -> None:
    """Refuse a timestamp older or newer than `window_seconds` from `now`; 0 disables the check."""
    if window_seconds <= 0:
        return
    skew = now - int(timestamp)
    if skew > window_seconds:
        raise Rejection(401, "stale_timestamp", skew_seconds=int(skew))
    if skew < -window_seconds:
        raise Rejection(401, "future_timestamp", skew_seconds=int(skew))


def _signed_query(
    request: HttpRequest, credentials: WeChatCredentials, settings: Settings
) -> tuple[str, str]:
    """Validate signature, timestamp and nonce; return (timestamp, nonce)."""
    _check_repeated(request)
    signature = _required(request, "signature", _SIGNATURE)
    timestamp = _required(request, "timestamp", _TIMESTAMP)
    nonce = _required(request, "nonce", _NONCE)
    if not check_signature(credentials.token, timestamp, nonce, signature):
        raise Rejection(401, "bad_signature")
    check_replay_window(timestamp, settings.replay_window_seconds, clock.now())
    return timestamp, nonce


# -- GET: the URL check --------------------------------------------------------------------------------


def verify_url(request: HttpRequest, credentials: WeChatCredentials, settings: Settings) -> HttpResponse:
    """Respond to WeChat's server URL check with `echostr`, byte for byte, when the signature is valid.

    The echostr is never encrypted for an Official Account, in any message mode.
    """
    if request.method != "GET":
        raise Rejection(405, "method_not_allowed")
    _signed_query(request, credentials, settings)
    echostr = _required(request, "echostr", _ECHOSTR)
    return HttpResponse(200, echostr)


# -- POST: a push --------------------------------------------------------------------------------------


def _raw_body_size_check(request: HttpRequest, max_bytes: int) -> None:
    """Refuse an oversized body before anything else reads it.

    A character is at least one UTF-8 byte, and base64 carries 3 bytes in 4 characters, so a body
    longer than this is over the cap whatever it holds.
    """
    body = request.body or ""
    limit = (max_bytes + 2) // 3 * 4 if request.base64_body else max_bytes
    if len(body) > limit:
        raise Rejection(413, "body_too_large")


def _body_bytes(request: HttpRequest, max_bytes: int) -> bytes:
    body = request.body or ""
    if request.base64_body:
        try:
            data = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as err:
            raise Rejection(400, "body_not_base64") from err
    else:
        try:
            data = body.encode("utf-8")
        except UnicodeEncodeError as err:
            raise Rejection(400, "body_not_utf8") from err
    if len(data) > max_bytes:
        raise Rejection(413, "body_too_large")
    if not data.strip():
        raise Rejection(400, "empty_body")
    return data


@lru_cache(maxsize=4)
def _crypto(encoding_aes_key: str, app_id: str, previous_encoding_aes_key: str | None) -> MessageCrypto:
    from intake.crypto import MessageCrypto

    return MessageCrypto(encoding_aes_key, app_id, previous_encoding_aes_key)


def message_crypto(credentials: WeChatCredentials) -> MessageCrypto:
    """Return the (cached) envelope crypto for these credentials; raises InvalidKeyError when misconfigured."""
    return _crypto(credentials.encoding_aes_key, credentials.app_id, credentials.previous_encoding_aes_key)


def _parse(xml: bytes | str, max_bytes: int, stage: str) -> dict[str, Any]:
    from intake.push_xml import PushXmlError, parse_push_xml

    try:
        return parse_push_xml(xml, max_bytes)
    except PushXmlError as err:
        raise Rejection(400, err.reason, stage=stage) from err


def _decrypted_fields(
    request: HttpRequest,
    envelope: dict[str, Any],
    credentials: WeChatCredentials,
    settings: Settings,
    timestamp: str,
    nonce: str,
    context: dict[str, str | int | bool],
) -> dict[str, Any]:
    """Check the envelope against the configured mode; return the fields to trust."""
    mode = settings.message_mode
    encrypt_type = _optional(request, "encrypt_type", _ENCRYPT_TYPE) or "raw"
    encrypted = encrypt_type == "aes" or "Encrypt" in envelope
    if mode == "plain":
        if encrypted:
            raise Rejection(400, "encrypted_push_in_plain_mode")
        return envelope
    if "Encrypt" not in envelope:
        raise Rejection(400, f"plaintext_push_in_{mode}_mode")
    if encrypt_type != "aes":
        raise Rejection(400, "encrypt_type_not_aes")
    if mode == "safe" and "MsgType" in envelope:
        # Safe mode sends only ToUserName and Encrypt; plaintext fields mean the account is in
        # compatible mode, which this deployment is not configured for.
        raise Rejection(400, "plaintext_fields_in_safe_mode")
    encrypt = envelope["Encrypt"]
    if not isinstance(encrypt, str) or not encrypt:
        raise Rejection(400, "encrypt_empty")
    msg_signature = _required(request, "msg_signature", _SIGNATURE)
    if not check_msg_signature(credentials.token, timestamp, nonce, encrypt, msg_signature):
        raise Rejection(401, "bad_msg_signature")

    from intake.crypto import AppIdMismatchError, DecryptError

    crypto = message_crypto(credentials)
    try:
        plaintext, previous_key = crypto.decrypt_detailed(encrypt)
    except AppIdMismatchError as err:
        raise Rejection(400, "app_id_mismatch") from err
    except DecryptError as err:
        raise Rejection(400, "decrypt_failed", detail=str(err)) from err
    if previous_key:
        context["previous_key"] = True
    # In compatible mode only the decrypted copy is trusted; the plaintext fields are ignored.
    return _parse(plaintext, settings.max_body_bytes, "message")


def accept_push(request: HttpRequest, credentials: WeChatCredentials, settings: Settings) -> PushOutcome:
    """Verify, decrypt and parse one push; raise `Rejection` for anything WeChat would not have sent."""
    if request.method != "POST":
        raise Rejection(405, "method_not_allowed")
    _raw_body_size_check(request, settings.max_body_bytes)
    _check_repeated(request)
    _optional(request, "openid", _OPENID)
    timestamp, nonce = _signed_query(request, credentials, settings)
    data = _body_bytes(request, settings.max_body_bytes)
    # The XML is parsed only now, after the signature check.
    envelope = _parse(data, settings.max_body_bytes, "envelope")
    context: dict[str, str | int | bool] = {"mode": settings.message_mode}
    fields = _decrypted_fields(request, envelope, credentials, settings, timestamp, nonce, context)

    if credentials.original_id and fields.get("ToUserName") != credentials.original_id:
        raise Rejection(400, "wrong_recipient")
    return _outcome(fields, context)


def _outcome(fields: dict[str, Any], context: dict[str, str | int | bool]) -> PushOutcome:
    from pydantic import ValidationError

    from intake.messages import UnknownMessage, hashed_dedup_id, parse_fields
    from intake.records import InboundRecord

    # Type names go to the log only when they look like WeChat's names, never free text.
    msg_type = fields.get("MsgType")
    if isinstance(msg_type, str) and _TYPE_NAME.fullmatch(msg_type):
        context["msg_type"] = msg_type
    event = fields.get("Event")
    if isinstance(event, str) and _TYPE_NAME.fullmatch(event):
        context["event"] = event
    try:
        message: Message = parse_fields(fields)
        if not _GROUP_ID.fullmatch(message.open_id):
            return PushOutcome(None, "unparseable", {**context, "invalid_fields": "FromUserName"})
        record = InboundRecord.from_message(message, received_at=clock.now())
    except ValidationError as err:
        # Name the fields, never their values (which may hold an OpenID or the citizen's text).
        locations = sorted({".".join(str(part) for part in error["loc"]) for error in err.errors()})
        return PushOutcome(None, "unparseable", {**context, "invalid_fields": ",".join(locations)[:256]})
    context["dedup_hash"] = hashed_dedup_id(record.dedup_id)
    if isinstance(message, UnknownMessage):
        return PushOutcome(record, "unknown_type", context)
    return PushOutcome(record, "accepted", context)
