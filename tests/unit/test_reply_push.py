"""reply-push against the WeChat emulator (a real HTTP server on 127.0.0.1) and moto."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from types import ModuleType
from typing import Any

import boto3
import pytest
import requests
from boto3.dynamodb.conditions import Key

from devstack.resources import Stack
from devstack.wechat_emulator import SAMPLE_MEDIA, WeChatEmulator, start_emulator
from intake import clock
from intake.keys import notice_pk, ticket_pk
from intake.text_split import MAX_TEXT_BYTES

HOUR = 3600


@pytest.fixture
def emulator() -> Iterator[WeChatEmulator]:
    with start_emulator() as running:
        yield running


@pytest.fixture
def reply_push(load_function: Callable[..., ModuleType], emulator: WeChatEmulator) -> ModuleType:
    return load_function(
        "ReplyPushFunction",
        extra_env={
            "WECHAT_API_BASE": emulator.url,
            "NOTICE_RETRY_BASE_SECONDS": "0",
            "WECHAT_MINUTE_QUOTA_PAUSE_SECONDS": "0",
            "WECHAT_SEND_RATE_PER_SECOND": "1000",
        },
    )


@pytest.fixture
def table(stack: Stack) -> Any:
    return boto3.resource("dynamodb").Table(stack.ref("TicketsTable"))


def control(emulator: WeChatEmulator, name: str, document: dict[str, Any]) -> None:
    response = requests.post(f"{emulator.url}/_emulator/{name}", json=document, timeout=5)
    response.raise_for_status()


def add_citizen(
    emulator: WeChatEmulator,
    table: Any,
    open_id: str,
    last_message_ago: float | None = 60,
    subscribed: bool = True,
) -> None:
    """Register the citizen with WeChat and write the profile that ticket-write would write."""
    control(emulator, "users", {"openid": open_id, "subscribed": subscribed})
    item: dict[str, Any] = {
        "PK": f"CITIZEN#{open_id}",
        "SK": "PROFILE",
        "open_id": open_id,
        "subscribed": True,
        "cs_quota_used": 0,
    }
    if last_message_ago is not None:
        at = clock.now() - last_message_ago
        control(emulator, "interactions", {"openid": open_id, "at": at})
        item["last_interaction_at"] = int(at)
    table.put_item(Item=item)


def notice(open_id: str, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "notice_id": f"notice-{uuid.uuid4().hex}",
        "kind": "status",
        "open_id": open_id,
        "ticket_id": "DG20261204-0001",
        "status": "accepted",
        "text": "您的工单 DG20261204-0001 已受理。",
        "created_at": clock.now(),
    }
    values.update(overrides)
    return values


def envelope(detail: dict[str, Any]) -> str:
    return json.dumps(
        {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "CitizenNoticeRequested",
            "source": "intake.tickets",
            "account": "123456789012",
            "time": "2026-12-04T02:30:00Z",
            "region": "us-east-1",
            "resources": [],
            "detail": detail,
        },
        ensure_ascii=False,
    )


def sqs_event(stack: Stack, messages: list[dict[str, Any]]) -> dict[str, Any]:
    """Build the event Lambda's SQS poller passes for messages received from the outbound queue."""
    arn = stack.attribute("OutboundQueue", "Arn")
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": {
                    "ApproximateReceiveCount": message["Attributes"]["ApproximateReceiveCount"],
                    "SentTimestamp": message["Attributes"]["SentTimestamp"],
                    "SenderId": "123456789012",
                    "ApproximateFirstReceiveTimestamp": message["Attributes"][
                        "ApproximateFirstReceiveTimestamp"
                    ],
                },
                "messageAttributes": {},
                "md5OfBody": message["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": arn,
                "awsRegion": "us-east-1",
            }
            for message in messages
        ]
    }


def enqueue(stack: Stack, bodies: list[str]) -> None:
    sqs = boto3.client("sqs")
    for body in bodies:
        sqs.send_message(QueueUrl=stack.ref("OutboundQueue"), MessageBody=body)


def drain(stack: Stack, reply_push: ModuleType, lambda_context: Any, max_rounds: int = 100) -> list[str]:
    """Run the function over the queue as the event source mapping does, until the queue is empty.

    Returns the message ids reported as batch item failures, in order.
    """
    sqs = boto3.client("sqs")
    queue_url = stack.ref("OutboundQueue")
    failures: list[str] = []
    for _ in range(max_rounds):
        messages = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, AttributeNames=["All"], VisibilityTimeout=30
        ).get("Messages", [])
        if not messages:
            return failures
        response = reply_push.lambda_handler(sqs_event(stack, messages), lambda_context)
        failed = {item["itemIdentifier"] for item in response["batchItemFailures"]}
        failures += [message["MessageId"] for message in messages if message["MessageId"] in failed]
        for message in messages:
            if message["MessageId"] not in failed:
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    raise AssertionError(f"the outbound queue was not empty after {max_rounds} rounds")


def sends(emulator: WeChatEmulator, api: str) -> list[dict[str, Any]]:
    return [call for call in emulator.calls if call["api"] == api]


def history(table: Any, ticket_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = table.query(
        KeyConditionExpression=Key("PK").eq(ticket_pk(ticket_id)) & Key("SK").begins_with("HIST#")
    )["Items"]
    return items


def profile(table: Any, open_id: str) -> dict[str, Any]:
    item: dict[str, Any] = table.get_item(Key={"PK": f"CITIZEN#{open_id}", "SK": "PROFILE"})["Item"]
    return item


# -- channel choice --------------------------------------------------------------------------------------


def test_reply_push_inside_window_sends_customer_service(
    stack: Stack, reply_push: ModuleType, emulator: WeChatEmulator, table: Any, lambda_context: Any
) -> None:
    add_citizen(emulator, table, "oWindow")
    detail = notice("oWindow")
    enqueue(stack, [envelope(detail)])

    failures = drain(stack, reply_push, lambda_context)

    custom = sends(emulator, "message/custom/send")
    assert failures == []
    assert [call["errcode"] for call in custom] == [0]
    assert custom[0]["payload"]["text"]["content"] == detail["text"]
    assert sends(emulator, "message/template/send") == []
    assert profile(table, "oWindow")["cs_quota_used"] == 1
    entries = history(table, "DG20261204-0001")
    assert [entry["entry_type"] for entry in entries] == ["notice_sent"]
    assert entries[0]["detail"]["channel"] == "customer_service"
    assert entries[0]["detail"]["notice_id"] == detail["notice_id"]


def test_reply_push_sixth_notice_goes_by_template(
    stack: Stack, reply_push: ModuleType, emulator: WeChatEmulator, table: Any, lambda_context: Any
) -> None:
    add_citizen(emulator, table, "oQuota")
    enqueue(stack, [envelope(notice("oQuota", notice_id=f"quota-{index}")) for index in range(6)])

    failures = drain(stack, reply_push, lambda_context)

    custom = sends(emulator, "message/custom/send")
    template = sends(emulator, "message/template/send")
    assert failures == []
    assert [call["errcode"] for call in custom] == [0] * 5
    assert [call["errcode"] for call in template] == [0]
    assert profile(table, "oQuota")["cs_quota_used"] == 5


def test_reply_push_closed_window_goes_by_template(
    stack: Stack, reply_push: ModuleType, emulator: WeChatEmulator, table: Any, lambda_context: Any
) -> None:
    add_citizen(emulator, table, "oClosed", last_message_ago=49 * HOUR)
    detail = notice("oClosed", status="dispatched")
    enqueue(stack, [envelope(detail)])

    failures = drain(stack, reply_push, lambda_context)

    template = sends(emulator, "message/template/send")
    assert failures == []
    assert sends(emulator, "message/custom/send") == []
    assert [call["errcode"] for call in template] == [0]
    assert template[0]["payload"]["client_msg_id"] == detail["notice_id"]
    assert template[0]["payload"]["data"]["phrase3"] == {"value": "已派单"}
    entries = history(table, "DG20261204-0001")
    assert [entry["detail"]["channel"] for entry in entries] == ["template"]


def test_reply_push_stale_window_falls_back_once(
    stack: Stack, reply_push: ModuleType, emulator: WeChatEmulator, table: Any, lambda_context: Any
) -> None:
    # GIVEN a profile that still shows an open window while WeChat has closed it
    add_citizen(emulator, table, "oStale", last_message_ago=60)
    control(emulator, "interactions", {"openid": "oStale", "at": clock.now() - 50 * HOUR})
    enqueue(stack, [envelope(notice("oStale"))])

    failures = drain(stack, reply_push, lambda_context)

    assert failures == []
    assert [call["errcode"] for call in sends(emulator, "message/custom/send")] == [45015]
    assert [call["errcode"] for call in sends(emulator, "message/template/send")] == [0]
    assert profile(table, "oStale")["cs_quota_used"] == 5
    entries = sorted(history(table, "DG20261204-0001"), key=lambda entry: entry["SK"])
    assert [(entry["entry_type"], entry["detail"]["errcode"]) for entry in entries] == [
        ("notice_failed", 45015),
        ("notice_sent", 0),
    ]


def test_reply_push_wechat_quota_falls_back_once(
    stack: Stack, reply_push: ModuleType, emulator: WeChatEmulator, table: Any, lambda_context: Any
) -> None:
    add_citizen(emulator, table, "oUsed")
    control(emulator, "faults", {"api": "message/custom/send", "errcode": 45047, "times": 1})
    enqueue(stack, [envelope(notice("oUsed"))])

    failures = drain(stack, reply_push, lambda_context)

    assert failures == []
    assert [call["errcode"] for call in sends(emulator, "message/custom/send")] == [45047]
    assert [call["errcode"] for call in sends(emulator, "message/template/send")] == [0]


# -- errors ----------------------------------------------------------------------------------------------


def test_reply_push_invalidated_token_refreshes_once(
    stack: Stack, reply_push: ModuleType, emulator: WeChatEmulator, table: Any, lambda_context: Any
) -> None:
    add_citizen(emulator, table, "oToken")
    enqueue(stack, [envelope(notice("oToken", notice_id="token-1"))])
    drain(stack, reply_push, lambda_context)
    control(emulator, "tokens/invalidate", {})
    enqueue(stack, [envelope(notice("oToken", notice_id="token-2"))])

    failures = drain(stack, reply_push, lambda_context)

    custom = sends(emulator, "message/custom/send")
    assert failures == []
    assert [call["errcode"] for call in custom] == [0, 40001, 0]
    assert len([call for call in emulator.calls if call["api"] == "stable_token"]) == 2


def test_reply_push_busy_is_retried_then_sent(
    stack: Stack, reply_push: ModuleType, emulator: WeChatEmulator, table: Any, lambda_context: Any
) -> None:
    add_citizen(emulator, table, "oBusy")
    control(emulator, "faults", {"api": "message/custom/send", "errcode": -1, "times": 1})
    detail = notice("oBusy")
    enqueue(stack, [envelope(detail)])

    failures = drain(stack, reply_push, lambda_context)

    assert len(failures) == 1
    assert [call["errcode"] for call in sends(emulator, "message/custom/send")] == [-1, 0]
    assert len(emulator.sent) == 1
    assert profile(table, "oBusy")["cs_quota_used"] == 1
    entries = sorted(history(table, "DG20261204-0001"), key=lambda entry: entry["SK"])
    assert [(entry["entry_type"], entry["detail"]["errcode"]) for entry in entries] == [
        ("notice_failed", -1),
        ("notice_sent", 0),
    ]


def test_reply_push_server_error_is_retried_then_sent(
    stack: Stack, reply_push: ModuleType, emulator: WeChatEmulator, table: Any, lambda_context: Any
) -> None:
    add_citizen(emulator, table, "o5xx", last_message_ago=49 * HOUR)
    control(emulator, "faults", {"api": "message/template/send", "http_status": 503, "times": 1})
    enqueue(stack, [envelope(notice("o5xx"))])

    failures = drain(stack, reply_push, lambda_context)

    assert len(failures) == 1
    assert [
        call["http_status"] for call in sends(emulator, "message/template/send") if "http_status" in call
    ] == [503]
    assert len(emulator.sent) == 1
    entries = sorted(history(table, "DG20261204-0001"), key=lambda entry: entry["SK"])
    assert entries[-1]["entry_type"] == "notice_sent"
    assert entries[-1]["detail"]["resent_after_unknown_result"] is True


def test_reply_push_unfollowed_is_undeliverable(
    stack: Stack, reply_push: ModuleType, emulator: WeChatEmulator, table: Any, lambda_context: Any
) -> None:
    add_citizen(emulator, table, "oGone", subscribed=False)
    enqueue(stack, [envelope(notice("oGone"))])

    failures = drain(stack, reply_push, lambda_context)

    assert failures == []
    assert [call["errcode"] for call in sends(emulator, "message/custom/send")] == [43004]
    assert emulator.sent == []
    entries = history(table, "DG20261204-0001")
    assert [(entry["entry_type"], entry["detail"]["errcode"]) for entry in entries] == [
        ("notice_undeliverable", 43004)
    ]
    assert profile(table, "oGone")["cs_quota_used"] == 0


def test_reply_push_no_profile_is_undeliverable(
    stack: Stack, reply_push: ModuleType, emulator: WeChatEmulator, table: Any, lambda_context: Any
) -> None:
    enqueue(stack, [envelope(notice("oUnknown"))])

    failures = drain(stack, reply_push, lambda_context)

    assert failures == []
    assert emulator.calls == []
    entries = history(table, "DG20261204-0001")
    assert [(entry["entry_type"], entry["detail"]["reason"]) for entry in entries] == [
        ("notice_undeliverable", "no_profile")
    ]


def test_reply_push_unknown_errcode_fails_record(
    stack: Stack, reply_push: ModuleType, emulator: WeChatEmulator, table: Any, lambda_context: Any
) -> None:
    add_citizen(emulator, table, "oBadTemplate", last_message_ago=None)
    control(emulator, "faults", {"api": "message/template/send", "errcode": 40037, "times": 1})
    body = envelope(notice("oBadTemplate"))
    enqueue(stack, [body])
    sqs = boto3.client("sqs")
    message = sqs.receive_message(QueueUrl=stack.ref("OutboundQueue"), AttributeNames=["All"])["Messages"]

    response = reply_push.lambda_handler(sqs_event(stack, message), lambda_context)

    assert response["batchItemFailures"] == [{"itemIdentifier": message[0]["MessageId"]}]
    entries = history(table, "DG20261204-0001")
    assert [(entry["entry_type"], entry["detail"]["errcode"]) for entry in entries] == [
        ("notice_failed", 40037)
    ]


# -- texts and exactly once ------------------------------------------------------------------------------


def test_reply_push_long_text_is_split_in_order(
    stack: Stack, reply_push: ModuleType, emulator: WeChatEmulator, table: Any, lambda_context: Any
) -> None:
    add_citizen(emulator, table, "oLong")
    # 60 lines of about 80 bytes: about 4850 bytes, which needs three messages
    text = "".join(f"第{index}条办理意见：经现场核查，路灯线路老化，已安排更换。\n" for index in range(60))
    enqueue(stack, [envelope(notice("oLong", kind="staff_answer", text=text))])

    failures = drain(stack, reply_push, lambda_context)

    contents = [call["payload"]["text"]["content"] for call in sends(emulator, "message/custom/send")]
    assert failures == []
    assert len(contents) == 3
    assert all(len(content.encode("utf-8")) <= MAX_TEXT_BYTES for content in contents)
    assert "".join(contents) == text
    assert all(content.endswith("\n") for content in contents)
    assert profile(table, "oLong")["cs_quota_used"] == 3


def test_reply_push_redelivered_record_sends_once(
    stack: Stack, reply_push: ModuleType, emulator: WeChatEmulator, table: Any, lambda_context: Any
) -> None:
    add_citizen(emulator, table, "oTwice")
    body = envelope(notice("oTwice", notice_id="twice-1"))
    enqueue(stack, [body, body])

    failures = drain(stack, reply_push, lambda_context)
    reply_push.lambda_handler(
        sqs_event(
            stack,
            [
                {
                    "MessageId": "redelivered",
                    "ReceiptHandle": "stale",
                    "Body": body,
                    "MD5OfBody": "",
                    "Attributes": {
                        "ApproximateReceiveCount": "2",
                        "SentTimestamp": "0",
                        "ApproximateFirstReceiveTimestamp": "0",
                    },
                }
            ],
        ),
        lambda_context,
    )

    assert failures == []
    assert len(sends(emulator, "message/custom/send")) == 1
    assert table.get_item(Key={"PK": notice_pk("twice-1"), "SK": "STATE"})["Item"]["state"] == "sent"
    assert len(history(table, "DG20261204-0001")) == 1


def test_reply_push_notice_without_ticket_records_no_history(
    stack: Stack, reply_push: ModuleType, emulator: WeChatEmulator, table: Any, lambda_context: Any
) -> None:
    add_citizen(emulator, table, "oWelcome")
    enqueue(
        stack, [envelope(notice("oWelcome", kind="welcome", ticket_id=None, status=None, text="感谢关注！"))]
    )

    failures = drain(stack, reply_push, lambda_context)

    assert failures == []
    assert [call["errcode"] for call in sends(emulator, "message/custom/send")] == [0]
    assert table.scan(FilterExpression=Key("SK").begins_with("HIST#"))["Items"] == []


def test_reply_push_welcome_outside_window_is_undeliverable(
    stack: Stack, reply_push: ModuleType, emulator: WeChatEmulator, table: Any, lambda_context: Any
) -> None:
    add_citizen(emulator, table, "oLateWelcome", last_message_ago=49 * HOUR)
    detail = notice("oLateWelcome", kind="welcome", ticket_id=None, status=None, text="感谢关注！")
    enqueue(stack, [envelope(detail)])

    failures = drain(stack, reply_push, lambda_context)

    assert failures == []
    assert emulator.sent == []
    ledger = table.get_item(Key={"PK": notice_pk(detail["notice_id"]), "SK": "STATE"})["Item"]
    assert ledger["state"] == "undeliverable"


@pytest.mark.slow
def test_reply_push_burst_sends_each_once(
    stack: Stack, reply_push: ModuleType, emulator: WeChatEmulator, table: Any, lambda_context: Any
) -> None:
    # GIVEN 200 notices for 50 citizens inside their windows, and WeChat returning 45011 six times
    citizens = [f"oStorm{index:02d}" for index in range(50)]
    for open_id in citizens:
        add_citizen(emulator, table, open_id)
    details = [
        notice(citizens[index % 50], notice_id=f"storm-{index:03d}", text=f"台风过后通知 {index:03d}")
        for index in range(200)
    ]
    enqueue(stack, [envelope(detail) for detail in details])
    for _ in range(6):
        control(emulator, "faults", {"api": "message/custom/send", "errcode": 45011, "times": 1})

    failures = drain(stack, reply_push, lambda_context, max_rounds=200)

    texts_sent = sorted(entry["payload"]["text"]["content"] for entry in emulator.sent)
    assert failures == []
    assert len([call for call in sends(emulator, "message/custom/send") if call["errcode"] == 45011]) == 6
    assert texts_sent == sorted(detail["text"] for detail in details)
    assert all(profile(table, open_id)["cs_quota_used"] == 4 for open_id in citizens)


# -- media in staff answers ------------------------------------------------------------------------------

ANSWER_IMAGE_KEY = "media/2026/12/04/DG20261204-0001/answer-photo.jpg"
ANSWER_VOICE_KEY = "media/2026/12/04/DG20261204-0001/answer-voice.amr"


def put_answer_media(stack: Stack) -> dict[str, bytes]:
    """Put the sample photo and voice note in the media bucket as staff-answer media; return their bytes."""
    s3 = boto3.client("s3")
    files = {
        ANSWER_IMAGE_KEY: ((SAMPLE_MEDIA / "sample.jpg").read_bytes(), "image/jpeg"),
        ANSWER_VOICE_KEY: ((SAMPLE_MEDIA / "sample.amr").read_bytes(), "audio/amr"),
    }
    for key, (data, content_type) in files.items():
        s3.put_object(
            Bucket=stack.ref("MediaBucket"),
            Key=key,
            Body=data,
            ContentType=content_type,
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=stack.attribute("DataKey", "Arn"),
        )
    return {key: data for key, (data, _) in files.items()}


def answer_with_media(open_id: str) -> dict[str, Any]:
    return notice(
        open_id,
        kind="staff_answer",
        status="replied",
        text="您反映的路灯问题已修复，现场照片和语音说明如下。",
        media=[
            {"s3_key": ANSWER_IMAGE_KEY, "media_type": "image"},
            {"s3_key": ANSWER_VOICE_KEY, "media_type": "voice"},
        ],
    )


def test_reply_push_answer_media_inside_window_sends_text_image_voice(
    stack: Stack, reply_push: ModuleType, emulator: WeChatEmulator, table: Any, lambda_context: Any
) -> None:
    # GIVEN a citizen inside the window and a staff answer with a photo and a voice note in S3
    add_citizen(emulator, table, "oMedia")
    files = put_answer_media(stack)
    enqueue(stack, [envelope(answer_with_media("oMedia"))])

    # WHEN reply-push delivers it
    failures = drain(stack, reply_push, lambda_context)

    # THEN text, image and voice go out in order, each on its own quota, with the uploaded bytes
    sent = [entry["payload"] for entry in emulator.sent]
    uploads = sends(emulator, "media/upload")
    assert failures == []
    assert [payload["msgtype"] for payload in sent] == ["text", "image", "voice"]
    assert [call["payload"]["type"] for call in uploads] == ["image", "voice"]
    assert [call["payload"]["sha256"] for call in uploads] == [
        hashlib.sha256(files[ANSWER_IMAGE_KEY]).hexdigest(),
        hashlib.sha256(files[ANSWER_VOICE_KEY]).hexdigest(),
    ]
    assert emulator.state.media[sent[1]["image"]["media_id"]].data == files[ANSWER_IMAGE_KEY]
    assert emulator.state.media[sent[2]["voice"]["media_id"]].data == files[ANSWER_VOICE_KEY]
    assert profile(table, "oMedia")["cs_quota_used"] == 3
    entries = sorted(history(table, "DG20261204-0001"), key=lambda entry: entry["SK"])
    assert [(entry["entry_type"], entry["detail"]["part"]) for entry in entries] == [
        ("notice_sent", 1),
        ("notice_sent", 2),
        ("notice_sent", 3),
    ]


def test_reply_push_answer_media_outside_window_sends_template_only(
    stack: Stack, reply_push: ModuleType, emulator: WeChatEmulator, table: Any, lambda_context: Any
) -> None:
    add_citizen(emulator, table, "oMediaLate", last_message_ago=49 * HOUR)
    put_answer_media(stack)
    enqueue(stack, [envelope(answer_with_media("oMediaLate"))])

    failures = drain(stack, reply_push, lambda_context)

    assert failures == []
    assert [call["errcode"] for call in sends(emulator, "message/template/send")] == [0]
    assert sends(emulator, "media/upload") == []
    assert sends(emulator, "message/custom/send") == []
    assert emulator.state.media == {}


def test_reply_push_answer_media_wrong_file_type_fails_record(
    stack: Stack, reply_push: ModuleType, emulator: WeChatEmulator, table: Any, lambda_context: Any
) -> None:
    # GIVEN WeChat refusing the photo as an invalid file type (40005) on every attempt
    add_citizen(emulator, table, "oBadFile")
    put_answer_media(stack)
    control(emulator, "faults", {"api": "media/upload", "errcode": 40005, "times": 1})
    enqueue(stack, [envelope(answer_with_media("oBadFile"))])
    sqs = boto3.client("sqs")
    message = sqs.receive_message(QueueUrl=stack.ref("OutboundQueue"), AttributeNames=["All"])["Messages"]

    # WHEN reply-push handles the record once
    response = reply_push.lambda_handler(sqs_event(stack, message), lambda_context)

    # THEN the text went out, the record failed towards the dead-letter queue, and the photo's quota
    # was given back
    entries = sorted(history(table, "DG20261204-0001"), key=lambda entry: entry["SK"])
    assert response["batchItemFailures"] == [{"itemIdentifier": message[0]["MessageId"]}]
    assert [entry["payload"]["msgtype"] for entry in emulator.sent] == ["text"]
    assert [(entry["entry_type"], entry["detail"]["errcode"]) for entry in entries] == [
        ("notice_sent", 0),
        ("notice_failed", 40005),
    ]
    assert profile(table, "oBadFile")["cs_quota_used"] == 1


def test_reply_push_answer_media_daily_quota_puts_notice_back(
    stack: Stack, reply_push: ModuleType, emulator: WeChatEmulator, table: Any, lambda_context: Any
) -> None:
    # GIVEN WeChat answering the photo's upload with the daily quota error (45009)
    add_citizen(emulator, table, "oQuotaMedia")
    put_answer_media(stack)
    control(emulator, "faults", {"api": "media/upload", "errcode": 45009, "times": 1})
    body = envelope(answer_with_media("oQuotaMedia"))
    enqueue(stack, [body])
    sqs = boto3.client("sqs")
    queue_url = stack.ref("OutboundQueue")
    message = sqs.receive_message(QueueUrl=queue_url, AttributeNames=["All"])["Messages"]

    # WHEN reply-push handles the record
    response = reply_push.lambda_handler(sqs_event(stack, message), lambda_context)

    # THEN the text went out, the photo's quota was given back, and a delayed copy waits on the queue
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessagesDelayed"]
    )["Attributes"]
    entries = sorted(history(table, "DG20261204-0001"), key=lambda entry: entry["SK"])
    assert response["batchItemFailures"] == []
    assert [entry["payload"]["msgtype"] for entry in emulator.sent] == ["text"]
    assert [call["errcode"] for call in sends(emulator, "media/upload")] == [45009]
    assert [(entry["entry_type"], entry["detail"]["errcode"]) for entry in entries] == [
        ("notice_sent", 0),
        ("notice_failed", 45009),
    ]
    assert profile(table, "oQuotaMedia")["cs_quota_used"] == 1
    assert attributes["ApproximateNumberOfMessagesDelayed"] == "1"


# -- bad input -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        json.dumps({"detail-type": "CitizenNoticeRequested"}),
        json.loads(json.dumps(None)) or "null",
        envelope(notice("oBad")).replace("CitizenNoticeRequested", "TicketChanged"),
        envelope({**notice("oBad"), "open_id": ""}),
        envelope({**notice("oBad"), "kind": "advertisement"}),
        envelope({key: value for key, value in notice("oBad").items() if key != "notice_id"}),
    ],
    ids=[
        "not-json",
        "no-envelope",
        "null",
        "wrong-detail-type",
        "empty-openid",
        "unknown-kind",
        "no-notice-id",
    ],
)
def test_reply_push_rejects_malformed_record(
    body: str,
    caplog: pytest.LogCaptureFixture,
    stack: Stack,
    reply_push: ModuleType,
    emulator: WeChatEmulator,
    table: Any,
    lambda_context: Any,
) -> None:
    add_citizen(emulator, table, "oBad")
    items_before = table.scan()["Items"]
    enqueue(stack, [body])
    sqs = boto3.client("sqs")
    message = sqs.receive_message(QueueUrl=stack.ref("OutboundQueue"), AttributeNames=["All"])["Messages"]

    response = reply_push.lambda_handler(sqs_event(stack, message), lambda_context)

    assert response["batchItemFailures"] == [{"itemIdentifier": message[0]["MessageId"]}]
    assert "invalid notice record" in caplog.messages
    assert emulator.calls == []
    assert table.scan()["Items"] == items_before
    assert boto3.resource("dynamodb").Table(stack.ref("IdempotencyTable")).scan()["Items"] == []


def test_reply_push_logs_no_openid_or_text(
    caplog: pytest.LogCaptureFixture,
    stack: Stack,
    reply_push: ModuleType,
    emulator: WeChatEmulator,
    table: Any,
    lambda_context: Any,
) -> None:
    add_citizen(emulator, table, "oPrivate")
    enqueue(stack, [envelope(notice("oPrivate", text="私密内容"))])

    drain(stack, reply_push, lambda_context)

    # every attribute of every record, which includes the structured `extra` keys
    output = " ".join(str(vars(record)) for record in caplog.records)
    assert "notice sent" in caplog.messages
    assert "oPrivate" not in output
    assert "私密内容" not in output
    assert profile(table, "oPrivate")["cs_quota_used"] == Decimal(1)
