"""The `reply` action with media: S3 keys of the ticket's files go into the staff_answer notice."""

from __future__ import annotations

import json
from typing import Any

import pytest

from devstack.wechat_emulator import SAMPLE_MEDIA
from tests.conftest import drain_event_details
from tests.unit.staff_api_events import rest_event, ticket_item

TICKET_ID = "DG20260930-0007"
PHOTO_KEY = f"media/2026/09/30/{TICKET_ID}/24614523000000001.clean.jpg"
VOICE_KEY = f"media/2026/09/30/{TICKET_ID}/24614523000000002.amr"
OTHER_TICKET_KEY = "media/2026/09/30/DG20260930-0008/24614523000000003.jpg"
VIDEO_KEY = f"media/2026/09/30/{TICKET_ID}/24614523000000004.mp4"


@pytest.fixture
def staff_api(load_function: Any) -> Any:
    return load_function("StaffApiFunction")


@pytest.fixture
def table(stack: Any) -> Any:
    table = stack.session.resource("dynamodb").Table(stack.ref("TicketsTable"))
    table.put_item(Item=ticket_item(TICKET_ID, "dispatched", department="DG-CGJ"))
    return table


@pytest.fixture
def media_bucket(stack: Any) -> str:
    """The media bucket with the ticket's photo and voice note, and another ticket's photo and a video."""
    s3 = stack.client("s3")
    bucket = stack.ref("MediaBucket")
    files = {
        PHOTO_KEY: (SAMPLE_MEDIA / "sample.jpg").read_bytes(),
        VOICE_KEY: (SAMPLE_MEDIA / "sample.amr").read_bytes(),
        OTHER_TICKET_KEY: (SAMPLE_MEDIA / "sample.jpg").read_bytes(),
        VIDEO_KEY: (SAMPLE_MEDIA / "sample.mp4").read_bytes(),
    }
    for key, data in files.items():
        s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=data,
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=stack.attribute("DataKey", "Arn"),
        )
    return bucket


def reply(
    staff_api: Any, lambda_context: Any, media: list[str], ticket_id: str = TICKET_ID
) -> dict[str, Any]:
    body = {
        "action": "reply",
        "actor": "staff-01",
        "text": "路灯已修复，附现场照片和语音说明。",
        "media": media,
    }
    event = rest_event(
        "POST",
        f"/tickets/{ticket_id}/actions",
        "/tickets/{ticket_id}/actions",
        path_parameters={"ticket_id": ticket_id},
        body=body,
    )
    response: dict[str, Any] = staff_api.lambda_handler(event, lambda_context)
    return response


def drain_notices(stack: Any) -> list[dict[str, Any]]:
    return drain_event_details(stack.client("sqs"), stack.ref("OutboundQueue"))


def stored_status(table: Any) -> str:
    return str(table.get_item(Key={"PK": f"TICKET#{TICKET_ID}", "SK": "TICKET"})["Item"]["status"])


def test_reply_media_in_staff_answer_notice(
    staff_api: Any, stack: Any, table: Any, media_bucket: str, lambda_context: Any
) -> None:
    response = reply(staff_api, lambda_context, [PHOTO_KEY, VOICE_KEY])

    answers = [notice for notice in drain_notices(stack) if notice["kind"] == "staff_answer"]
    assert response["statusCode"] == 200
    assert len(answers) == 1
    assert answers[0]["media"] == [
        {"s3_key": PHOTO_KEY, "media_type": "image"},
        {"s3_key": VOICE_KEY, "media_type": "voice"},
    ]
    assert stored_status(table) == "replied"


def test_reply_without_media_text_only(staff_api: Any, stack: Any, table: Any, lambda_context: Any) -> None:
    response = reply(staff_api, lambda_context, [])

    answers = [notice for notice in drain_notices(stack) if notice["kind"] == "staff_answer"]
    assert response["statusCode"] == 200
    assert [answer["media"] for answer in answers] == [[]]


@pytest.mark.parametrize(
    "media",
    [
        [OTHER_TICKET_KEY],
        [f"media/2026/09/30/{TICKET_ID}/missing.jpg"],
        [VIDEO_KEY],
        [PHOTO_KEY, PHOTO_KEY],
        [f"media/2026/09/30/{TICKET_ID}/../DG20260930-0008/24614523000000003.jpg"],
    ],
    ids=["other-ticket", "missing-object", "video", "named-twice", "dot-dot"],
)
def test_reply_unusable_media_is_400(
    media: list[str],
    staff_api: Any,
    stack: Any,
    table: Any,
    media_bucket: str,
    lambda_context: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    before = table.scan()["Items"]

    response = reply(staff_api, lambda_context, media)

    body = json.loads(response["body"])
    assert response["statusCode"] == 400
    assert body["code"] == "bad_request"
    assert "media=" in body["message"]
    assert "reply media rejected" in caplog.text
    assert table.scan()["Items"] == before
    assert drain_notices(stack) == []


@pytest.mark.parametrize(
    "media",
    [["photos/2026/a.jpg"], [PHOTO_KEY, VOICE_KEY, PHOTO_KEY + "2", VOICE_KEY + "2"], [""]],
    ids=["outside-media-prefix", "more-than-three", "empty-key"],
)
def test_reply_malformed_media_is_400(
    media: list[str], staff_api: Any, stack: Any, table: Any, lambda_context: Any
) -> None:
    response = reply(staff_api, lambda_context, media)

    assert response["statusCode"] == 400
    assert stored_status(table) == "dispatched"
    assert drain_notices(stack) == []


def test_reply_media_unknown_ticket_is_404(
    staff_api: Any, stack: Any, media_bucket: str, lambda_context: Any
) -> None:
    response = reply(staff_api, lambda_context, [OTHER_TICKET_KEY], ticket_id="DG20260930-0008")

    assert response["statusCode"] == 404
