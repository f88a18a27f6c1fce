"""The malformed-input corpus (tests/fixtures/malformed/*.json) through the real handlers, as Lambda calls them.

Every entry runs against the template's resources in moto, around a seeded ticket with a message,
stored media (an S3 object), a citizen profile and a history entry. For each entry the test asserts:
- the expected response: HTTP status (and error code for the staff API), or for an SQS consumer
  whether the record is reported in batchItemFailures or acknowledged as skipped;
- the handler returns (no unhandled exception) and the webhook and the staff API answer below 500;
- exactly one log line with the expected message and reason, and no log line holds an OpenID;
- no DynamoDB item, S3 object or queued message changed, appeared or disappeared.

The corpus files are written by `python -m tests.fixtures.malformed.build_corpus`, which also
documents their format.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pytest

from devstack.resources import Stack
from devstack.wechat_emulator import WeChatEmulator, start_emulator
from intake.history import history_item
from intake.keys import CITIZEN_SK, citizen_pk, ticket_pk
from tests.conftest import FIXTURES, FakeLambdaContext
from tests.unit.staff_api_events import ticket_item
from tests.unit.webhook_support import log_lines, pin_clock, shared_stacks

CORPUS = FIXTURES / "malformed"
TARGETS = ("webhook", "ticket_write", "media_store", "reply_push", "staff_api")
FILES = {target: json.loads((CORPUS / f"{target}.json").read_text(encoding="utf-8")) for target in TARGETS}
NOW = FILES["webhook"]["now"]
OPEN_IDS = sorted({open_id for document in FILES.values() for open_id in document["open_ids"]})

SEEDED_OPEN_ID = "oSEEDEDcitizen00000000000001"
SEEDED_TICKET = "DG20241204-0001"
SEEDED_MESSAGE_SK = "MSG#1733300000#0123456789abcdef"
SEEDED_MEDIA_SK = "MSG#1733300010#fedcba9876543210"
SEEDED_S3_KEY = f"media/2024/12/04/{SEEDED_TICKET}/24877465529999002.jpg"
COMPANION_OPEN_ID = "oCOMPANIONcitizen00000000001"


@dataclass(frozen=True)
class Entry:
    target: str
    name: str
    document: dict[str, Any]

    @property
    def expect(self) -> dict[str, Any]:
        expected: dict[str, Any] = self.document["expect"]
        return expected

    @property
    def function(self) -> str:
        return str(self.document.get("function") or FILES[self.target]["function"])

    def __str__(self) -> str:
        return f"{self.target}/{self.name}"


# Grouped by function and mode, so that consecutive entries share one warm handler.
ENTRIES = sorted(
    (Entry(target, item["name"], item) for target in TARGETS for item in FILES[target]["entries"]),
    key=lambda entry: (TARGETS.index(entry.target), entry.function, entry.document.get("mode", "safe")),
)


def test_corpus_size_and_spread() -> None:
    # GIVEN the corpus files
    counts = {target: len(FILES[target]["entries"]) for target in TARGETS}

    # WHEN they are counted
    total = sum(counts.values())

    # THEN there are at least 100 distinct entries, spread over every target
    assert total >= 100
    assert len({str(entry) for entry in ENTRIES}) == total
    assert counts["ticket_write"] >= 15
    assert counts["media_store"] >= 15
    assert counts["reply_push"] >= 15
    assert counts["staff_api"] >= 20


# -- the stack, seeded ----------------------------------------------------------------------------------


def seed(stack: Stack) -> None:
    """Store a ticket with a pending-media message, a stored-media message, a profile, history and a file."""
    table = stack.session.resource("dynamodb").Table(stack.ref("TicketsTable"))
    message = {"PK": ticket_pk(SEEDED_TICKET), "item_type": "message", "msg_type": "image"}
    items = [
        ticket_item(SEEDED_TICKET, "submitted", open_id=SEEDED_OPEN_ID, created_at=float(NOW - 60)),
        {**message, "SK": SEEDED_MESSAGE_SK, "msg_id": "24877465529999001", "media": {"status": "pending"}},
        {
            **message,
            "SK": SEEDED_MEDIA_SK,
            "msg_id": "24877465529999002",
            "media": {"status": "stored", "s3_key": SEEDED_S3_KEY, "content_type": "image/jpeg"},
        },
        {"PK": citizen_pk(SEEDED_OPEN_ID), "SK": CITIZEN_SK, "subscribed": True, "cs_quota_used": 0},
        history_item(SEEDED_TICKET, "created", "citizen", at=float(NOW - 60), after_status="submitted"),
    ]
    for item in items:
        table.put_item(Item=item)
    stack.client("s3").put_object(
        Bucket=stack.ref("MediaBucket"),
        Key=SEEDED_S3_KEY,
        Body=b"\xff\xd8\xff\xe0seeded photo",
        ServerSideEncryption="aws:kms",
        SSEKMSKeyId=stack.ref("DataKey"),
    )


def snapshot(stack: Stack) -> dict[str, Any]:
    """Return every DynamoDB item, S3 object (with a hash of its bytes) and queue depth of the stack."""
    dynamodb = stack.client("dynamodb")
    s3 = stack.client("s3")
    sqs = stack.client("sqs")
    state: dict[str, Any] = {}
    for logical_id, resource in stack.template["Resources"].items():
        if logical_id not in stack.resources:
            continue
        if resource["Type"] == "AWS::DynamoDB::Table":
            pages = dynamodb.get_paginator("scan").paginate(
                TableName=stack.ref(logical_id), ConsistentRead=True
            )
            items = [item for page in pages for item in page["Items"]]
            state[logical_id] = sorted(json.dumps(item, sort_keys=True, default=repr) for item in items)
        elif resource["Type"] == "AWS::S3::Bucket":
            bucket = stack.ref(logical_id)
            listing = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
            state[logical_id] = {
                obj["Key"]: hashlib.sha256(
                    s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
                ).hexdigest()
                for obj in listing
            }
        elif resource["Type"] == "AWS::SQS::Queue":
            attributes = sqs.get_queue_attributes(
                QueueUrl=stack.ref(logical_id),
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
            )["Attributes"]
            state[logical_id] = attributes
    return state


@pytest.fixture(scope="module")
def stacks() -> Iterator[dict[str, Stack]]:
    with shared_stacks(("plain", "compatible", "safe")) as created:
        seed(created["safe"])
        yield created


@pytest.fixture(scope="module")
def emulator() -> Iterator[WeChatEmulator]:
    with start_emulator() as running:
        yield running


@pytest.fixture
def stack(stacks: dict[str, Stack], entry: Entry) -> Stack:
    return stacks[entry.document.get("mode", "safe")]


@pytest.fixture(scope="module")
def warm_handler() -> dict[str, Any]:
    """The last handler loaded and its (function, mode); Settings and caches are per process."""
    return {}


@pytest.fixture
def handler(
    entry: Entry,
    emulator: WeChatEmulator,
    warm_handler: dict[str, Any],
    load_function: Callable[..., ModuleType],
) -> ModuleType:
    """Return the entry's handler: a cold start when the function or mode changes, else the warm one."""
    key = (entry.function, entry.document.get("mode", "safe"))
    if warm_handler.get("key") != key:
        warm_handler["module"] = load_function(entry.function, extra_env={"WECHAT_API_BASE": emulator.url})
        warm_handler["key"] = key
    module: ModuleType = warm_handler["module"]
    return module


# -- invoking -------------------------------------------------------------------------------------------


def sqs_record(stack: Stack, entry_body: str, message_id: str, attributes: dict[str, str]) -> dict[str, Any]:
    """Shape one record as Lambda's SQS event source delivers it."""
    return {
        "messageId": message_id,
        "receiptHandle": f"receipt-{message_id}",
        "body": entry_body,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": str(NOW * 1000),
            "SenderId": "AIDAEXAMPLE",
            "ApproximateFirstReceiveTimestamp": str(NOW * 1000),
            **attributes,
        },
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(
            entry_body.encode("utf-8", "surrogatepass"), usedforsecurity=False
        ).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:corpus",
        "awsRegion": "us-east-1",
    }


def fifo_attributes(body: str, group_id: str) -> dict[str, str]:
    return {
        "SequenceNumber": "18800000000000000001",
        "MessageGroupId": group_id,
        "MessageDeduplicationId": hashlib.sha256(body.encode("utf-8", "surrogatepass")).hexdigest(),
    }


def companion_body() -> str:
    """A push of a type ticket-write skips, from another citizen, so that a batch never fails whole."""
    fields = {
        "ToUserName": "gh_97417a04a28d",
        "FromUserName": COMPANION_OPEN_ID,
        "CreateTime": NOW,
        "MsgType": "miniprogrampage",
        "MsgId": "1",
    }
    return json.dumps(
        {
            "schema_version": 1,
            "dedup_id": f"{COMPANION_OPEN_ID}:1",
            "open_id": COMPANION_OPEN_ID,
            "msg_type": "miniprogrampage",
            "create_time": NOW,
            "msg_id": "1",
            "received_at": float(NOW),
            "fields": fields,
        }
    )


def sqs_event(stack: Stack, entry: Entry) -> tuple[dict[str, Any], str]:
    body = entry.document["body"]
    attributes = dict(entry.document.get("attributes", {}))
    records = []
    if entry.target == "ticket_write":
        attributes = {**fifo_attributes(body, "oBADINPUTcitizen000000000001"), **attributes}
        if entry.expect["outcome"] == "failed":
            companion = companion_body()
            records.append(
                sqs_record(stack, companion, "companion-0000", fifo_attributes(companion, COMPANION_OPEN_ID))
            )
    records.insert(0, sqs_record(stack, body, "corpus-0000", attributes))
    return {"Records": records}, "corpus-0000"


# -- the test -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("entry", ENTRIES, ids=str)
def test_malformed_input(
    entry: Entry,
    stack: Stack,
    emulator: WeChatEmulator,
    handler: ModuleType,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # GIVEN the seeded stack, the handler (a cold start on its first entry) and the entry's input
    pin_clock(monkeypatch, NOW)
    module = handler
    before = snapshot(stack)
    calls_before = len(emulator.calls)
    caplog.clear()

    # WHEN the handler is invoked as Lambda invokes it
    if entry.target in ("webhook", "staff_api"):
        response = module.lambda_handler(entry.document["event"], FakeLambdaContext())
        failed_ids: list[str] = []
    else:
        event, message_id = sqs_event(stack, entry)
        response = module.lambda_handler(event, FakeLambdaContext())
        failed_ids = [failure["itemIdentifier"] for failure in response["batchItemFailures"]]

    # THEN the response is the expected one
    lines = log_lines(module, caplog)
    expect = entry.expect
    if entry.target == "webhook":
        assert response["statusCode"] == expect["status"], entry.document["why"]
        assert response["body"] == ("success" if expect["status"] == 200 else "")
        assert [line.reason for line in lines] == [expect["reason"]]
    elif entry.target == "staff_api":
        assert response["statusCode"] == expect["status"], entry.document["why"]
        assert json.loads(response["body"])["code"] == expect["code"]
        assert [line.record.getMessage() for line in lines if line.record.levelname != "DEBUG"] == [
            expect["message"]
        ]
    else:
        assert failed_ids == ([message_id] if expect["outcome"] == "failed" else []), entry.document["why"]
        matching = [line for line in lines if line.record.getMessage() == expect["message"]]
        assert len(matching) == 1
        if "reason" in expect:
            assert matching[0].reason == expect["reason"]
    # AND nothing failed unexpectedly
    assert response.get("statusCode", 200) < 500
    assert all(line.record.levelname != "CRITICAL" and not line.record.exc_info for line in lines)
    # AND no log line names a citizen
    for line in lines:
        for open_id in OPEN_IDS:
            assert open_id not in line.text
    # AND nothing stored changed, nothing was queued and WeChat was not called
    assert snapshot(stack) == before
    assert len(emulator.calls) == calls_before


# -- regressions the corpus found -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("message_sk", "TICKET"),
        ("message_sk", "HIST#2024-12-04T08:13:20.000Z#000001"),
        ("ticket_id", "../../etc"),
        ("msg_id", "../../../passwd"),
    ],
)
def test_media_job_rejects_keys_outside_a_message(field: str, value: str) -> None:
    # GIVEN a media job that names the ticket item, a history entry or an id unusable in an S3 key
    from pydantic import ValidationError

    from intake.records import MediaJob

    job = {
        "ticket_id": SEEDED_TICKET,
        "message_sk": SEEDED_MESSAGE_SK,
        "msg_id": "24877465529999001",
        "msg_type": "image",
        "media_id": "MEDIA",
        "create_time": NOW,
        field: value,
    }

    # WHEN it is validated
    # THEN it is rejected, so media-store never writes a media map outside a message item
    with pytest.raises(ValidationError):
        MediaJob.model_validate(job)
