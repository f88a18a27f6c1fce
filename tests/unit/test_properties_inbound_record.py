"""Properties of InboundRecord, the contract between message-ingest and ticket-write."""

from __future__ import annotations

import json
import os
import string
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from intake.inbound_queue import record_body
from intake.messages import parse_fields
from intake.records import InboundRecord

PROPERTY = settings(max_examples=200, deadline=None, derandomize=bool(os.environ.get("CI")))

open_ids = st.text(string.ascii_letters + string.digits + "_-", min_size=1, max_size=128)
msg_ids = st.integers(min_value=0, max_value=2**64 - 1).map(str)
create_times = st.integers(min_value=0, max_value=2**32)
content = st.text(max_size=300)
# Text as it can arrive from XML: no lone surrogates (the JSON body must stay encodable).
safe_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300)


@st.composite
def push_fields(draw: st.DrawFn) -> dict[str, Any]:
    """Fields of a text, image, location or event push as the XML parser returns them (strings)."""
    common = {
        "ToUserName": "gh_97417a04a28d",
        "FromUserName": draw(open_ids),
        "CreateTime": str(draw(create_times)),
    }
    kind = draw(st.sampled_from(["text", "image", "location", "subscribe", "click", "unknown"]))
    if kind == "text":
        return {**common, "MsgType": "text", "Content": draw(safe_text), "MsgId": draw(msg_ids)}
    if kind == "image":
        media_id = draw(st.text(string.ascii_letters + string.digits + "_-", min_size=1, max_size=64))
        return {**common, "MsgType": "image", "PicUrl": "", "MediaId": media_id, "MsgId": draw(msg_ids)}
    if kind == "location":
        return {
            **common,
            "MsgType": "location",
            "Location_X": str(draw(st.floats(min_value=-90, max_value=90, allow_nan=False))),
            "Location_Y": str(draw(st.floats(min_value=-180, max_value=180, allow_nan=False))),
            "Scale": str(draw(st.integers(0, 20))),
            "Label": draw(safe_text),
            "MsgId": draw(msg_ids),
        }
    if kind == "unknown":
        return {**common, "MsgType": draw(st.text(string.ascii_lowercase, min_size=1, max_size=16)) + "_x"}
    return {**common, "MsgType": "event", "Event": kind, "EventKey": draw(safe_text) or None}


@PROPERTY
@given(fields=push_fields(), received_at=st.floats(min_value=0, max_value=2**33, allow_nan=False))
def test_inbound_record_queue_round_trip(fields: dict[str, Any], received_at: float) -> None:
    # GIVEN a record built from any valid push
    message = parse_fields(fields)
    record = InboundRecord.from_message(message, received_at=received_at)

    # WHEN it travels as the queue's body and is read back
    body = record_body(record)
    read = InboundRecord.model_validate_json(body)

    # THEN the body is ASCII, the record is unchanged and so are its message and dedup id
    assert body.isascii()
    assert read == record
    assert read.message() == message
    assert read.dedup_id == message.dedup_id()
    assert read.open_id == fields["FromUserName"]


@PROPERTY
@given(document=st.dictionaries(st.text(max_size=16), st.none() | st.integers() | st.text(max_size=32)))
def test_inbound_record_arbitrary_json_only_validation_error(document: dict[str, Any]) -> None:
    # GIVEN any JSON object as a queue body
    body = json.dumps(document)

    # WHEN ticket-write validates it
    try:
        InboundRecord.model_validate_json(body)
        error = None
    except Exception as err:
        error = err

    # THEN it is valid or a pydantic ValidationError, nothing else
    assert error is None or isinstance(error, ValidationError)


@PROPERTY
@given(body=st.binary(max_size=256) | st.text(max_size=256))
def test_inbound_record_arbitrary_body_only_validation_error(body: bytes | str) -> None:
    # GIVEN any body, JSON or not, valid UTF-8 or not

    # WHEN it is validated
    try:
        InboundRecord.model_validate_json(body)
        error = None
    except Exception as err:
        error = err

    # THEN the only failure is a ValidationError
    assert isinstance(error, ValidationError)


@PROPERTY
@given(
    fields=push_fields(),
    extra=st.text(string.ascii_lowercase, min_size=1, max_size=12).filter(
        lambda name: name not in InboundRecord.model_fields
    ),
    version=st.integers().filter(lambda value: value != 1),
)
def test_inbound_record_unknown_key_or_version_refused(
    fields: dict[str, Any], extra: str, version: int
) -> None:
    # GIVEN a valid record's JSON with an unknown key, and another with a schema_version other than 1
    record = InboundRecord.from_message(parse_fields(fields), received_at=1.0)
    document = json.loads(record_body(record))
    with_extra = json.dumps({**document, extra: "x"})
    other_version = json.dumps({**document, "schema_version": version})

    # WHEN each is validated
    # THEN both are refused
    with pytest.raises(ValidationError):
        InboundRecord.model_validate_json(with_extra)
    with pytest.raises(ValidationError):
        InboundRecord.model_validate_json(other_version)
