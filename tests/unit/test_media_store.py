"""media-store against the WeChat emulator on 127.0.0.1 and the template's resources in moto."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from io import BytesIO
from types import ModuleType
from typing import Any

import boto3
import pytest
from boto3.dynamodb.conditions import Key
from PIL import Image

from devstack.resources import Stack
from devstack.wechat_emulator import SAMPLE_MEDIA, WeChatEmulator, start_emulator
from intake import clock
from intake.keys import TICKET_SK, ticket_pk

TICKET_ID = "DG20261204-0001"
MSG_ID = "24567890123456789"
MESSAGE_SK = "MSG#1765000000#abcdef0123456789"


@pytest.fixture
def emulator() -> Iterator[WeChatEmulator]:
    with start_emulator() as running:
        yield running


@pytest.fixture
def media_store(load_function: Callable[..., ModuleType], emulator: WeChatEmulator) -> ModuleType:
    return load_function("MediaStoreFunction", extra_env={"WECHAT_API_BASE": emulator.url})


@pytest.fixture
def table(stack: Stack) -> Any:
    table = boto3.resource("dynamodb", region_name="us-east-1").Table(stack.ref("TicketsTable"))
    # ticket-write stores a new ticket's location as NULL until the citizen sends one.
    table.put_item(
        Item={"PK": ticket_pk(TICKET_ID), "SK": TICKET_SK, "status": "collecting", "location": None}
    )
    table.put_item(
        Item={
            "PK": ticket_pk(TICKET_ID),
            "SK": MESSAGE_SK,
            "item_type": "message",
            "msg_id": MSG_ID,
            "media": {"status": "pending"},
        }
    )
    return table


def _job(msg_type: str, media_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "ticket_id": TICKET_ID,
        "message_sk": MESSAGE_SK,
        "msg_id": MSG_ID,
        "msg_type": msg_type,
        "media_id": media_id,
        "create_time": int(clock.now()),
        **extra,
    }


def _sqs_event(stack: Stack, body: str) -> dict[str, Any]:
    """Queue `body` on the media queue, receive it, and shape it as Lambda's SQS event."""
    sqs = boto3.client("sqs", region_name="us-east-1")
    queue_url = stack.ref("MediaQueue")
    sqs.send_message(QueueUrl=queue_url, MessageBody=body)
    message = sqs.receive_message(QueueUrl=queue_url, AttributeNames=["All"], MaxNumberOfMessages=1)[
        "Messages"
    ][0]
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": message["Attributes"],
                "messageAttributes": {},
                "md5OfBody": message["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": stack.attribute("MediaQueue", "Arn"),
                "awsRegion": "us-east-1",
            }
        ]
    }


def _register(emulator: WeChatEmulator, media_id: str, kind: str) -> None:
    emulator.state.register_media(media_id, kind)


def _message(table: Any) -> dict[str, Any]:
    return table.get_item(Key={"PK": ticket_pk(TICKET_ID), "SK": MESSAGE_SK}, ConsistentRead=True)["Item"]


def _history(table: Any) -> list[dict[str, Any]]:
    query = Key("PK").eq(ticket_pk(TICKET_ID)) & Key("SK").begins_with("HIST#")
    return table.query(KeyConditionExpression=query)["Items"]


def _objects(stack: Stack) -> list[str]:
    listing = boto3.client("s3", region_name="us-east-1").list_object_versions(
        Bucket=stack.ref("MediaBucket")
    )
    return sorted(version["Key"] for version in listing.get("Versions", []))


def _object(stack: Stack, key: str) -> dict[str, Any]:
    return boto3.client("s3", region_name="us-east-1").get_object(Bucket=stack.ref("MediaBucket"), Key=key)


def _sha256(name: str) -> str:
    return hashlib.sha256((SAMPLE_MEDIA / name).read_bytes()).hexdigest()


def _media_get_ids(emulator: WeChatEmulator) -> list[str]:
    return [call["payload"].get("media_id") for call in emulator.calls if call["api"] == "media/get"]


def test_image_stored_with_clean_copy_and_location(
    stack: Stack, table: Any, emulator: WeChatEmulator, media_store: ModuleType, lambda_context: Any
) -> None:
    _register(emulator, "IMG1", "image")

    result = media_store.lambda_handler(_sqs_event(stack, json.dumps(_job("image", "IMG1"))), lambda_context)

    media = _message(table)["media"]
    original = _object(stack, media["s3_key"])
    clean = _object(stack, media["staff_s3_key"])
    ticket = table.get_item(Key={"PK": ticket_pk(TICKET_ID), "SK": TICKET_SK})["Item"]
    assert result == {"batchItemFailures": []}
    assert media["status"] == "stored"
    assert media["s3_key"].startswith(
        f"media/{clock.china_datetime(clock.now()):%Y/%m/%d}/{TICKET_ID}/{MSG_ID}."
    )
    assert media["s3_key"].endswith(".jpg")
    assert media["sha256"] == _sha256("sample.jpg")
    assert hashlib.sha256(original["Body"].read()).hexdigest() == _sha256("sample.jpg")
    assert original["ServerSideEncryption"] == "aws:kms"
    assert original["SSEKMSKeyId"] == stack.attribute("DataKey", "Arn")
    assert original["ContentType"] == "image/jpeg"
    assert media["staff_s3_key"].endswith(f"{MSG_ID}.clean.jpg")
    assert len(Image.open(BytesIO(clean["Body"].read())).getexif()) == 0
    assert ticket["location"]["source"] == "photo_exif"
    assert float(ticket["location"]["latitude"]) == pytest.approx(23.02, abs=0.01)
    assert [entry["entry_type"] for entry in _history(table)] == ["media_stored"]


def test_image_keeps_existing_ticket_location(
    stack: Stack, table: Any, emulator: WeChatEmulator, media_store: ModuleType, lambda_context: Any
) -> None:
    table.update_item(
        Key={"PK": ticket_pk(TICKET_ID), "SK": TICKET_SK},
        UpdateExpression="SET #location = :location",
        ExpressionAttributeNames={"#location": "location"},
        ExpressionAttributeValues={":location": {"source": "message", "label": "东城"}},
    )
    _register(emulator, "IMG1", "image")

    media_store.lambda_handler(_sqs_event(stack, json.dumps(_job("image", "IMG1"))), lambda_context)

    ticket = table.get_item(Key={"PK": ticket_pk(TICKET_ID), "SK": TICKET_SK})["Item"]
    assert ticket["location"] == {"source": "message", "label": "东城"}
    assert _message(table)["media"]["status"] == "stored"


def test_voice_prefers_16k_and_adds_mp3(
    stack: Stack, table: Any, emulator: WeChatEmulator, media_store: ModuleType, lambda_context: Any
) -> None:
    _register(emulator, "VOICE8K", "voice")
    _register(emulator, "VOICE16K", "voice16k")
    job = _job("voice", "VOICE8K", media_id_16k="VOICE16K", voice_format="amr", recognition="路灯坏了")

    result = media_store.lambda_handler(_sqs_event(stack, json.dumps(job)), lambda_context)

    media = _message(table)["media"]
    mp3 = _object(stack, media["variants"]["mp3"]["s3_key"])
    mp3_bytes = mp3["Body"].read()
    assert result == {"batchItemFailures": []}
    assert _media_get_ids(emulator) == ["VOICE16K"]
    assert media["source_media"] == "MediaId16K"
    assert media["s3_key"].endswith(f"{MSG_ID}.amr")
    assert media["sha256"] == _sha256("sample.amr")
    assert media["recognition"] == "路灯坏了"
    assert media["staff_s3_key"] == media["variants"]["mp3"]["s3_key"]
    assert media["variants"]["mp3"]["s3_key"].endswith(f"{MSG_ID}.mp3")
    assert mp3["ContentType"] == "audio/mpeg"
    assert mp3_bytes[:3] == b"ID3" or mp3_bytes[0] == 0xFF
    assert mp3["ServerSideEncryption"] == "aws:kms"


def test_voice_transcode_failure_keeps_original(
    stack: Stack,
    table: Any,
    emulator: WeChatEmulator,
    media_store: ModuleType,
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("intake.voice_transcode.ffmpeg_executable", lambda: "/nonexistent/ffmpeg")
    _register(emulator, "VOICE8K", "voice")

    result = media_store.lambda_handler(
        _sqs_event(stack, json.dumps(_job("voice", "VOICE8K"))), lambda_context
    )

    media = _message(table)["media"]
    assert result == {"batchItemFailures": []}
    assert media["status"] == "stored"
    assert "ffmpeg could not be started" in media["transcode_error"]
    assert media["staff_s3_key"] == media["s3_key"]
    assert _objects(stack) == [media["s3_key"]]


@pytest.mark.parametrize("msg_type", ["video", "shortvideo"])
def test_video_with_thumbnail_stored(
    stack: Stack,
    table: Any,
    emulator: WeChatEmulator,
    media_store: ModuleType,
    lambda_context: Any,
    msg_type: str,
) -> None:
    _register(emulator, "VID1", msg_type)
    _register(emulator, "THUMB1", "thumb")

    result = media_store.lambda_handler(
        _sqs_event(stack, json.dumps(_job(msg_type, "VID1", thumb_media_id="THUMB1"))), lambda_context
    )

    media = _message(table)["media"]
    video = _object(stack, media["s3_key"])
    thumb = _object(stack, media["variants"]["thumb"]["s3_key"])
    assert result == {"batchItemFailures": []}
    assert media["s3_key"].endswith(f"{MSG_ID}.mp4")
    assert media["sha256"] == _sha256("sample.mp4")
    assert hashlib.sha256(video["Body"].read()).hexdigest() == _sha256("sample.mp4")
    assert video["ContentType"] == "video/mp4"
    assert video["ServerSideEncryption"] == "aws:kms"
    assert media["variants"]["thumb"]["s3_key"].endswith(f"{MSG_ID}.thumb.jpg")
    assert hashlib.sha256(thumb["Body"].read()).hexdigest() == _sha256("thumb.jpg")


@pytest.mark.parametrize("content_type", ["application/json", "text/plain"])
def test_invalid_media_id_recorded_lost_not_stored(
    stack: Stack,
    table: Any,
    emulator: WeChatEmulator,
    media_store: ModuleType,
    lambda_context: Any,
    content_type: str,
) -> None:
    emulator.state.media_error_content_type = content_type

    result = media_store.lambda_handler(_sqs_event(stack, json.dumps(_job("image", "GONE"))), lambda_context)

    media = _message(table)["media"]
    assert result == {"batchItemFailures": []}
    assert media["status"] == "lost"
    assert media["reason"] == "invalid_media_id"
    assert media["errcode"] == 40007
    assert _objects(stack) == []
    assert [entry["entry_type"] for entry in _history(table)] == ["media_lost"]


def test_job_older_than_three_days_lost_without_download(
    stack: Stack, table: Any, emulator: WeChatEmulator, media_store: ModuleType, lambda_context: Any
) -> None:
    _register(emulator, "IMG1", "image")
    job = _job("image", "IMG1", create_time=int(clock.now()) - 3 * 86400 - 60)

    result = media_store.lambda_handler(_sqs_event(stack, json.dumps(job)), lambda_context)

    assert result == {"batchItemFailures": []}
    assert _message(table)["media"]["reason"] == "expired"
    assert _media_get_ids(emulator) == []
    assert _objects(stack) == []
    assert [entry["entry_type"] for entry in _history(table)] == ["media_lost"]


def test_redelivered_job_stores_nothing_twice(
    stack: Stack, table: Any, emulator: WeChatEmulator, media_store: ModuleType, lambda_context: Any
) -> None:
    _register(emulator, "IMG1", "image")
    body = json.dumps(_job("image", "IMG1"))
    media_store.lambda_handler(_sqs_event(stack, body), lambda_context)
    objects_after_first = _objects(stack)

    result = media_store.lambda_handler(_sqs_event(stack, body), lambda_context)

    assert result == {"batchItemFailures": []}
    assert _objects(stack) == objects_after_first
    assert len(_media_get_ids(emulator)) == 1
    assert len(_history(table)) == 1


def test_wrong_magic_bytes_recorded_rejected(
    stack: Stack, table: Any, emulator: WeChatEmulator, media_store: ModuleType, lambda_context: Any
) -> None:
    _register(emulator, "NOT_AN_IMAGE", "voice")  # AMR bytes for an image message

    result = media_store.lambda_handler(
        _sqs_event(stack, json.dumps(_job("image", "NOT_AN_IMAGE"))), lambda_context
    )

    media = _message(table)["media"]
    assert result == {"batchItemFailures": []}
    assert media["status"] == "rejected"
    assert media["reason"] == "unexpected_type"
    assert _objects(stack) == []


@pytest.mark.parametrize("fault", [{"errcode": -1}, {"http_status": 503}])
def test_transient_failure_retried(
    stack: Stack,
    table: Any,
    emulator: WeChatEmulator,
    media_store: ModuleType,
    lambda_context: Any,
    fault: dict[str, int],
) -> None:
    from devstack.wechat_emulator import Fault

    _register(emulator, "IMG1", "image")
    emulator.state.add_fault(Fault(api="media/get", **fault))
    event = _sqs_event(stack, json.dumps(_job("image", "IMG1")))

    result = media_store.lambda_handler(event, lambda_context)

    assert result == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}
    assert _message(table)["media"]["status"] == "pending"
    assert _objects(stack) == []


def test_malformed_job_fails_with_log(
    stack: Stack,
    table: Any,
    emulator: WeChatEmulator,
    media_store: ModuleType,
    lambda_context: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    event = _sqs_event(stack, json.dumps({"ticket_id": TICKET_ID, "msg_type": "sticker"}))

    result = media_store.lambda_handler(event, lambda_context)

    assert result == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}
    assert "malformed media job" in caplog.messages
    assert _message(table)["media"] == {"status": "pending"}
    assert _objects(stack) == []
    assert emulator.calls == []
