"""The emulator's cgi-bin/media/upload over real HTTP: WeChat's type and size rules, read-back and media sends."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from devstack.wechat_emulator import SAMPLE_MEDIA, WeChatEmulator, start_emulator

OPENID = "oCITIZEN000000000000000002"
JPEG = (SAMPLE_MEDIA / "sample.jpg").read_bytes()
AMR = (SAMPLE_MEDIA / "sample.amr").read_bytes()


@pytest.fixture
def emulator() -> Iterator[WeChatEmulator]:
    with start_emulator(port=0) as running:
        yield running


@pytest.fixture
def token(emulator: WeChatEmulator) -> str:
    body = {
        "grant_type": "client_credential",
        "appid": emulator.state.app_id,
        "secret": emulator.state.app_secret,
    }
    return str(
        requests.post(f"{emulator.url}/cgi-bin/stable_token", json=body, timeout=5).json()["access_token"]
    )


def _upload(
    emulator: WeChatEmulator,
    token: str,
    media_type: str | None,
    data: bytes | None,
    filename: str = "file.bin",
    field: str = "media",
) -> dict[str, Any]:
    params = {"access_token": token}
    if media_type is not None:
        params["type"] = media_type
    files = {field: (filename, data, "application/octet-stream")} if data is not None else None
    response = requests.post(
        f"{emulator.url}/cgi-bin/media/upload",
        params=params,
        files=files,
        data=None if files else {"note": "no file"},
        timeout=5,
    )
    assert response.status_code == 200
    return response.json()


def _custom_media(emulator: WeChatEmulator, token: str, msgtype: str, media_id: str) -> dict[str, Any]:
    emulator.state.set_user(OPENID, subscribed=True)
    emulator.state.record_interaction(OPENID)
    payload = {"touser": OPENID, "msgtype": msgtype, msgtype: {"media_id": media_id}}
    response = requests.post(
        f"{emulator.url}/cgi-bin/message/custom/send", params={"access_token": token}, json=payload, timeout=5
    )
    return response.json()


def _uploads(emulator: WeChatEmulator) -> list[dict[str, Any]]:
    return [call for call in emulator.calls if call["api"] == "media/upload"]


def test_media_upload_image_is_stored_and_read_back(emulator: WeChatEmulator, token: str) -> None:
    answer = _upload(emulator, token, "image", JPEG, filename="answer.jpg")

    response = requests.get(
        f"{emulator.url}/cgi-bin/media/get",
        params={"access_token": token, "media_id": answer["media_id"]},
        timeout=5,
    )

    assert answer["type"] == "image"
    assert isinstance(answer["created_at"], int)
    assert response.content == JPEG
    assert response.headers["Content-Type"] == "image/jpeg"


def test_media_upload_call_log_has_digest_not_bytes(emulator: WeChatEmulator, token: str) -> None:
    _upload(emulator, token, "voice", AMR, filename="answer.amr")

    calls = _uploads(emulator)

    assert [call["errcode"] for call in calls] == [0]
    assert calls[0]["payload"]["sha256"] == hashlib.sha256(AMR).hexdigest()
    assert calls[0]["payload"]["size"] == len(AMR)
    assert "access_token" not in calls[0]["payload"]
    assert AMR.hex()[:64] not in str(calls[0])


def test_media_upload_mp3_voice_is_accepted(emulator: WeChatEmulator, token: str) -> None:
    mp3 = b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x00" * 100

    answer = _upload(emulator, token, "voice", mp3, filename="answer.mp3")

    assert answer["type"] == "voice"
    assert answer["media_id"] in emulator.state.media


def test_media_upload_then_custom_image_and_voice_are_sent(emulator: WeChatEmulator, token: str) -> None:
    image_id = _upload(emulator, token, "image", JPEG)["media_id"]
    voice_id = _upload(emulator, token, "voice", AMR)["media_id"]

    answers = [
        _custom_media(emulator, token, "image", image_id),
        _custom_media(emulator, token, "voice", voice_id),
    ]

    assert [answer["errcode"] for answer in answers] == [0, 0]
    assert [entry["payload"]["msgtype"] for entry in emulator.sent] == ["image", "voice"]


def test_custom_image_with_unknown_media_id_is_40007(emulator: WeChatEmulator, token: str) -> None:
    answer = _custom_media(emulator, token, "image", "NEVER_UPLOADED")

    assert answer["errcode"] == 40007
    assert emulator.sent == []
    assert emulator.state.users[OPENID].quota_used == 0


@pytest.mark.parametrize(
    ("media_type", "data", "errcode"),
    [
        (None, JPEG, 40004),
        ("document", JPEG, 40004),
        ("image", AMR, 40005),
        ("voice", JPEG, 40005),
        ("thumb", b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, 40005),
        ("video", JPEG, 40005),
        ("image", b"not an image at all", 40005),
        ("thumb", JPEG + b"\x00" * (64 * 1024), 40006),
        ("voice", AMR + b"\x00" * (2 * 1024 * 1024), 40006),
    ],
    ids=[
        "no-type",
        "unknown-type",
        "amr-as-image",
        "jpeg-as-voice",
        "png-as-thumb",
        "jpeg-as-video",
        "text-as-image",
        "thumb-over-64k",
        "voice-over-2m",
    ],
)
def test_media_upload_rejects_wrong_type_or_size(
    emulator: WeChatEmulator, token: str, media_type: str | None, data: bytes, errcode: int
) -> None:
    answer = _upload(emulator, token, media_type, data)

    assert answer["errcode"] == errcode
    assert answer["errmsg"]
    assert emulator.state.media == {}
    assert [call["errcode"] for call in _uploads(emulator)] == [errcode]


def test_media_upload_without_media_field_is_41005(emulator: WeChatEmulator, token: str) -> None:
    without_file = _upload(emulator, token, "image", None)
    other_field = _upload(emulator, token, "image", JPEG, field="file")

    assert without_file["errcode"] == 41005
    assert other_field["errcode"] == 41005
    assert emulator.state.media == {}


def test_media_upload_without_token_is_41001(emulator: WeChatEmulator) -> None:
    answer = _upload(emulator, "", "image", JPEG)

    assert answer["errcode"] == 41001
    assert emulator.state.media == {}


def test_media_upload_fault_injection_returns_errcode(emulator: WeChatEmulator, token: str) -> None:
    requests.post(
        f"{emulator.url}/_emulator/faults", json={"api": "media/upload", "errcode": 45009}, timeout=5
    ).raise_for_status()

    first = _upload(emulator, token, "image", JPEG)
    second = _upload(emulator, token, "image", JPEG)

    assert first["errcode"] == 45009
    assert second["type"] == "image"
    assert len(emulator.state.media) == 1
