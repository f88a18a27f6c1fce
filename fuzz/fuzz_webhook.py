"""Fuzz target for the webhook's push path: signature check, AES envelope, XML parsing, message model.

Run it with atheris (`make fuzz FUZZ_SECONDS=60`, which installs requirements-fuzz.txt); the seed
corpus in `fuzz/corpus/` is built from the official WeChat test vectors by `make fuzz-corpus`.
`tests/unit/test_fuzz_corpus.py` replays every seed through `check_one` without atheris.

Each input's first byte picks what the rest of the input is, so the fuzzer reaches every stage:

- 0 `plain_body`: the raw POST body of a plain-mode push, correctly signed;
- 1 `inner_xml`: the decrypted message of a safe-mode push. The target encrypts it with the stack's
  key and AppID and signs both signatures, so the mutations reach the message XML and the model;
- 2 `encrypt_value`: the `Encrypt` text of a safe-mode envelope, with both signatures valid for it,
  so the mutations reach base64, AES-CBC, the padding and the length field;
- 3 `safe_body`: the raw POST body of a safe-mode push with a valid `signature`; `msg_signature`
  is computed over the body's first `Encrypt` element when there is one;
- 4 `base64_body`: like 0, but the body arrives base64-encoded (`isBase64Encoded`), as API Gateway
  sends binary bodies.

The invariants that `check_one` asserts on every input:
- `accept_push` returns a `PushOutcome` or raises `Rejection`; any other exception is a finding;
- a refusal is 400, 401, 405 or 413, never 5xx;
- a queued record serializes to the ASCII JSON body of the queue and parses back to an equal record
  (the contract between message-ingest and ticket-write);
- a record's MessageGroupId (the OpenID) is 1..128 printable ASCII characters, as SQS requires.
"""

from __future__ import annotations

import base64
import re
import sys
from collections.abc import Callable
from typing import Any

from intake import clock
from intake.credentials import WeChatCredentials
from intake.crypto import MessageCrypto
from intake.inbound_queue import record_body
from intake.records import InboundRecord
from intake.settings import Settings
from intake.signature import message_signature, request_signature
from intake.webhook import HttpRequest, Rejection, accept_push

# The official test vector V3 credentials, as the default local stack uses them.
TOKEN = "AAAAA"  # noqa: S105 - a published test vector, not a secret
APP_ID = "wx134c8103faa5a59e"
ENCODING_AES_KEY = "A" * 43
ORIGINAL_ID = "gh_97417a04a28d"
TIMESTAMP = "1715943329"
NONCE = "1590219412"
MAX_BODY_BYTES = 65536

KIND_PLAIN_BODY = 0
KIND_INNER_XML = 1
KIND_ENCRYPT_VALUE = 2
KIND_SAFE_BODY = 3
KIND_BASE64_BODY = 4
KINDS = 5

REFUSAL_STATUSES = frozenset({400, 401, 405, 413})
_GROUP_ID = re.compile(r"[\x21-\x7e]{1,128}")
_ENCRYPT_ELEMENT = re.compile(r"<Encrypt>(?:<!\[CDATA\[)?(.*?)(?:\]\]>)?</Encrypt>", re.DOTALL)

CREDENTIALS = WeChatCredentials(
    token=TOKEN, app_id=APP_ID, encoding_aes_key=ENCODING_AES_KEY, original_id=ORIGINAL_ID
)
CRYPTO = MessageCrypto(ENCODING_AES_KEY, APP_ID)
# A fixed random prefix keeps every run reproducible from its input alone.
ENVELOPE_RANDOM = b"0123456789abcdef"


def settings(mode: str) -> Settings:
    return Settings(
        wechat_secret_id="",
        message_mode=mode,  # type: ignore[arg-type]
        wechat_api_base="http://127.0.0.1:9",
        replay_window_seconds=300,
        max_body_bytes=MAX_BODY_BYTES,
        inbound_queue_url="",
        media_queue_url="",
        outbound_queue_url="",
        table_name="",
        idempotency_table_name="",
        media_bucket="",
        media_kms_key_id="",
        event_bus_name="",
        ticket_prefix="DG",
        collecting_window_seconds=600,
        openid_hash_key_secret_id="",
        local_stack=False,
    )


SETTINGS = {mode: settings(mode) for mode in ("plain", "safe")}


def _signed_query(encrypt: str | None) -> dict[str, str]:
    query = {
        "signature": request_signature(TOKEN, TIMESTAMP, NONCE),
        "timestamp": TIMESTAMP,
        "nonce": NONCE,
        "openid": "oFUZZ000000000000000000000000",
    }
    if encrypt is not None:
        query["encrypt_type"] = "aes"
        query["msg_signature"] = message_signature(TOKEN, TIMESTAMP, NONCE, encrypt)
    return query


def _envelope(encrypt: str) -> str:
    return f"<xml><ToUserName><![CDATA[{ORIGINAL_ID}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"


def build_request(data: bytes) -> tuple[HttpRequest, str]:
    """Return the signed request and the message mode for one fuzz input."""
    kind, payload = (data[0] % KINDS, data[1:]) if data else (KIND_PLAIN_BODY, b"")
    # API Gateway hands the function text; bytes that are not UTF-8 arrive as their Latin-1 reading.
    text = payload.decode("utf-8") if _is_utf8(payload) else payload.decode("latin-1")
    if kind == KIND_INNER_XML:
        encrypt = CRYPTO.encrypt(text, random=ENVELOPE_RANDOM)
        return HttpRequest("POST", _signed_query(encrypt), body=_envelope(encrypt)), "safe"
    if kind == KIND_ENCRYPT_VALUE:
        return HttpRequest("POST", _signed_query(text), body=_envelope(text)), "safe"
    if kind == KIND_SAFE_BODY:
        found = _ENCRYPT_ELEMENT.search(text)
        encrypt = found.group(1).strip() if found else ""
        return HttpRequest("POST", _signed_query(encrypt), body=text), "safe"
    if kind == KIND_BASE64_BODY:
        body = base64.b64encode(payload).decode("ascii")
        return HttpRequest("POST", _signed_query(None), body=body, base64_body=True), "plain"
    return HttpRequest("POST", _signed_query(None), body=text), "plain"


def _is_utf8(payload: bytes) -> bool:
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def check_one(data: bytes) -> str:
    """Run one input through the webhook's push path and check the invariants; return the outcome's reason."""
    request, mode = build_request(data)
    try:
        outcome = accept_push(request, CREDENTIALS, SETTINGS[mode])
    except Rejection as rejection:
        if rejection.status not in REFUSAL_STATUSES:
            raise AssertionError(f"refusal {rejection.reason} has status {rejection.status}") from rejection
        return rejection.reason
    if outcome.record is not None:
        body = record_body(outcome.record)
        if not body.isascii():
            raise AssertionError("the queued body is not ASCII")
        if InboundRecord.model_validate_json(body) != outcome.record:
            raise AssertionError("the queued body does not parse back to the same record")
        if not _GROUP_ID.fullmatch(outcome.record.open_id):
            raise AssertionError("the record's OpenID is not a valid SQS MessageGroupId")
        outcome.record.message()
    return outcome.reason


def _pinned_clock() -> Callable[[], float]:
    return lambda: float(TIMESTAMP)


def main(argv: list[str] | None = None) -> None:
    import atheris

    pin_clock()  # the test vectors' timestamp is inside the replay window
    import xmltodict  # noqa: F401 - loaded now so that instrument_all covers it

    import intake.crypto
    import intake.messages
    import intake.push_xml  # noqa: F401

    atheris.instrument_all()

    def one_input(data: bytes) -> None:
        check_one(data)

    atheris.Setup(argv if argv is not None else sys.argv, one_input)
    atheris.Fuzz()


def pin_clock() -> Any:
    """Pin `intake.clock.now` to the seeds' timestamp; return the original function to restore it."""
    original = clock.now
    clock.now = _pinned_clock()
    return original


if __name__ == "__main__":
    main()
