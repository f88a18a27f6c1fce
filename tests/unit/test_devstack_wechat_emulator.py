"""The WeChat API emulator over real HTTP: tokens, the customer-service rules, media, template sends, faults."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from devstack.wechat_emulator import WeChatEmulator, start_emulator

APP_ID = "wx134c8103faa5a59e"
APP_SECRET = "local-app-secret"
OPENID = "oCITIZEN000000000000000001"


@pytest.fixture
def emulator() -> Iterator[WeChatEmulator]:
    with start_emulator(port=0, app_id=APP_ID, app_secret=APP_SECRET) as running:
        yield running


def _stable_token(emulator: WeChatEmulator, force: bool = False, secret: str = APP_SECRET) -> dict[str, Any]:
    body = {"grant_type": "client_credential", "appid": APP_ID, "secret": secret, "force_refresh": force}
    return requests.post(f"{emulator.url}/cgi-bin/stable_token", json=body, timeout=5).json()


def _token(emulator: WeChatEmulator) -> str:
    return str(_stable_token(emulator)["access_token"])


def _control(emulator: WeChatEmulator, name: str, document: dict[str, Any]) -> None:
    response = requests.post(f"{emulator.url}/_emulator/{name}", json=document, timeout=5)
    response.raise_for_status()


def _custom_text(
    emulator: WeChatEmulator, token: str, content: str = "您好", touser: str = OPENID
) -> dict[str, Any]:
    payload = {"touser": touser, "msgtype": "text", "text": {"content": content}}
    response = requests.post(
        f"{emulator.url}/cgi-bin/message/custom/send", params={"access_token": token}, json=payload, timeout=5
    )
    assert response.status_code == 200
    return response.json()


def _template(emulator: WeChatEmulator, token: str, client_msg_id: str | None = None) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "touser": OPENID,
        "template_id": "TPL1",
        "data": {"thing1": {"value": "已受理"}},
    }
    if client_msg_id:
        payload["client_msg_id"] = client_msg_id
    response = requests.post(
        f"{emulator.url}/cgi-bin/message/template/send",
        params={"access_token": token},
        json=payload,
        timeout=5,
    )
    return response.json()


def _advance(emulator: WeChatEmulator, seconds: float) -> None:
    _control(emulator, "clock", {"advance_seconds": seconds})


# -- access tokens ----------------------------------------------------------------------------------------


def test_stable_token_normal_mode_returns_same_token(emulator: WeChatEmulator) -> None:
    # GIVEN a token already issued
    first = _stable_token(emulator)

    # WHEN stable_token is asked again in normal mode
    second = _stable_token(emulator)

    # THEN the same token comes back with its remaining lifetime
    assert second["access_token"] == first["access_token"]
    assert 0 < second["expires_in"] <= 7200
    assert emulator.state.token_calls["stable_token"] == 2


def test_stable_token_rotates_in_last_five_minutes(emulator: WeChatEmulator) -> None:
    first = _token(emulator)
    _advance(emulator, 7200 - 200)

    second = _token(emulator)

    assert second != first
    assert _menu_get_errcode(emulator, first) == 46003


def _menu_get_errcode(emulator: WeChatEmulator, token: str) -> int:
    response = requests.get(f"{emulator.url}/cgi-bin/menu/get", params={"access_token": token}, timeout=5)
    return int(response.json().get("errcode", 0))


def test_stable_token_rejects_wrong_appid_and_secret(emulator: WeChatEmulator) -> None:
    wrong_app = requests.post(
        f"{emulator.url}/cgi-bin/stable_token",
        json={"grant_type": "client_credential", "appid": "wx000", "secret": APP_SECRET},
        timeout=5,
    )

    wrong_secret = _stable_token(emulator, secret="nope")

    assert wrong_app.status_code == 200
    assert wrong_app.json()["errcode"] == 40013
    assert wrong_secret["errcode"] == 40125


def test_token_endpoint_old_token_overlaps(emulator: WeChatEmulator) -> None:
    # GIVEN a token from stable_token
    old = _token(emulator)

    # WHEN cgi-bin/token issues a new one
    query = {"grant_type": "client_credential", "appid": APP_ID, "secret": APP_SECRET}
    new = requests.get(f"{emulator.url}/cgi-bin/token", params=query, timeout=5).json()["access_token"]

    # THEN both work for 5 minutes, then only the new one
    assert new != old
    assert _menu_get_errcode(emulator, old) == 46003
    _advance(emulator, 301)
    assert _menu_get_errcode(emulator, old) == 42001
    assert _menu_get_errcode(emulator, new) == 46003


def test_force_refresh_replaces_token(emulator: WeChatEmulator) -> None:
    old = _token(emulator)

    new = _stable_token(emulator, force=True)["access_token"]

    assert new != old
    assert _token(emulator) == new


def test_token_expires_after_two_hours(emulator: WeChatEmulator) -> None:
    token = _token(emulator)

    _advance(emulator, 7201)

    assert _menu_get_errcode(emulator, token) == 42001


def test_missing_and_invalid_access_token(emulator: WeChatEmulator) -> None:
    missing = requests.get(f"{emulator.url}/cgi-bin/menu/get", timeout=5).json()

    invalid = _menu_get_errcode(emulator, "not-a-token")

    assert missing["errcode"] == 41001
    assert invalid == 40001


def test_tokens_invalidate_makes_current_token_invalid(emulator: WeChatEmulator) -> None:
    token = _token(emulator)

    _control(emulator, "tokens/invalidate", {})

    assert _menu_get_errcode(emulator, token) == 40001


# -- customer-service messages ----------------------------------------------------------------------------


def test_custom_send_within_window_is_delivered(emulator: WeChatEmulator) -> None:
    # GIVEN a citizen who just sent a message
    _control(emulator, "interactions", {"openid": OPENID})

    # WHEN a customer-service message is sent
    answer = _custom_text(emulator, _token(emulator), "您的工单已受理")

    # THEN it is delivered and listed as sent
    assert answer == {"errcode": 0, "errmsg": "ok"}
    assert emulator.sent[-1]["touser"] == OPENID
    assert emulator.sent[-1]["payload"]["text"]["content"] == "您的工单已受理"


def test_custom_send_sixth_message_hits_quota(emulator: WeChatEmulator) -> None:
    _control(emulator, "interactions", {"openid": OPENID})
    token = _token(emulator)
    answers = [_custom_text(emulator, token)["errcode"] for _ in range(5)]

    sixth = _custom_text(emulator, token)

    assert answers == [0, 0, 0, 0, 0]
    assert sixth["errcode"] == 45047
    assert len(emulator.sent) == 5


def test_custom_send_new_interaction_resets_quota(emulator: WeChatEmulator) -> None:
    _control(emulator, "interactions", {"openid": OPENID})
    token = _token(emulator)
    for _ in range(5):
        _custom_text(emulator, token)

    _control(emulator, "interactions", {"openid": OPENID})

    assert _custom_text(emulator, token)["errcode"] == 0


def test_custom_send_outside_48_hours_is_rejected(emulator: WeChatEmulator) -> None:
    _control(emulator, "interactions", {"openid": OPENID})
    token = _token(emulator)
    _advance(emulator, 48 * 3600 + 1)
    token = _token(emulator)

    answer = _custom_text(emulator, token)

    assert answer["errcode"] == 45015
    assert emulator.sent == []


def test_custom_send_unknown_openid_is_rejected(emulator: WeChatEmulator) -> None:
    answer = _custom_text(emulator, _token(emulator), touser="oUNKNOWN")

    assert answer["errcode"] == 40003


def test_custom_send_to_unfollowed_citizen_is_rejected(emulator: WeChatEmulator) -> None:
    _control(emulator, "interactions", {"openid": OPENID})
    _control(emulator, "users", {"openid": OPENID, "subscribed": False})

    answer = _custom_text(emulator, _token(emulator))

    assert answer["errcode"] == 43004


def test_custom_send_text_over_2048_bytes_is_rejected(emulator: WeChatEmulator) -> None:
    _control(emulator, "interactions", {"openid": OPENID})

    answer = _custom_text(emulator, _token(emulator), "字" * 683)  # 2049 bytes in UTF-8

    assert answer["errcode"] == 45002


def test_error_answer_is_json_with_http_200(emulator: WeChatEmulator) -> None:
    response = requests.post(
        f"{emulator.url}/cgi-bin/message/custom/send",
        params={"access_token": "bad"},
        json={"touser": OPENID, "msgtype": "text", "text": {"content": "x"}},
        timeout=5,
    )

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json() == {
        "errcode": 40001,
        "errmsg": "invalid credential, access_token is invalid or not latest",
    }


# -- template messages --------------------------------------------------------------------------------


def test_template_send_dedups_client_msg_id(emulator: WeChatEmulator) -> None:
    _control(emulator, "users", {"openid": OPENID, "subscribed": True})
    token = _token(emulator)

    first = _template(emulator, token, client_msg_id="notice-1")
    second = _template(emulator, token, client_msg_id="notice-1")

    assert first["errcode"] == 0
    assert second["msgid"] == first["msgid"]
    assert len(emulator.sent) == 1


def test_template_send_dedup_expires(emulator: WeChatEmulator) -> None:
    _control(emulator, "users", {"openid": OPENID, "subscribed": True})
    first = _template(emulator, _token(emulator), client_msg_id="notice-1")
    _advance(emulator, 601)

    second = _template(emulator, _token(emulator), client_msg_id="notice-1")

    assert second["msgid"] != first["msgid"]
    assert len(emulator.sent) == 2


def test_template_send_requires_subscription(emulator: WeChatEmulator) -> None:
    _control(emulator, "users", {"openid": OPENID, "subscribed": False})

    answer = _template(emulator, _token(emulator))

    assert answer["errcode"] == 43004


# -- media ----------------------------------------------------------------------------------------------


def test_media_get_serves_jpeg_with_wechat_headers(emulator: WeChatEmulator) -> None:
    _control(emulator, "media", {"media_id": "IMG1", "kind": "image"})

    response = requests.get(
        f"{emulator.url}/cgi-bin/media/get",
        params={"access_token": _token(emulator), "media_id": "IMG1"},
        timeout=5,
    )

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/jpeg"
    assert response.headers["Content-disposition"] == 'attachment; filename="IMG1.jpg"'
    assert response.content.startswith(b"\xff\xd8")
    assert int(response.headers["Content-Length"]) == len(response.content)


def test_media_get_serves_amr_voice(emulator: WeChatEmulator) -> None:
    _control(emulator, "media", {"media_id": "VOICE1", "kind": "voice"})

    response = requests.get(
        f"{emulator.url}/cgi-bin/media/get",
        params={"access_token": _token(emulator), "media_id": "VOICE1"},
        timeout=5,
    )

    assert response.headers["Content-Type"] == "audio/amr"
    assert response.content.startswith(b"#!AMR\n")


def test_media_get_video_returns_video_url(emulator: WeChatEmulator) -> None:
    _control(emulator, "media", {"media_id": "VID1", "kind": "video"})

    answer = requests.get(
        f"{emulator.url}/cgi-bin/media/get",
        params={"access_token": _token(emulator), "media_id": "VID1"},
        timeout=5,
    ).json()
    video = requests.get(answer["video_url"], timeout=5)

    assert answer["video_url"].startswith(emulator.url)
    assert video.headers["Content-Type"] == "video/mp4"
    assert video.content[4:8] == b"ftyp"


def test_media_get_unknown_media_is_40007(emulator: WeChatEmulator) -> None:
    response = requests.get(
        f"{emulator.url}/cgi-bin/media/get",
        params={"access_token": _token(emulator), "media_id": "NOPE"},
        timeout=5,
    )

    assert response.status_code == 200
    assert response.json()["errcode"] == 40007


def test_media_get_after_three_days_is_40007(emulator: WeChatEmulator) -> None:
    _control(emulator, "media", {"media_id": "IMG1", "kind": "image"})
    _advance(emulator, 3 * 86400 + 1)

    response = requests.get(
        f"{emulator.url}/cgi-bin/media/get",
        params={"access_token": _token(emulator), "media_id": "IMG1"},
        timeout=5,
    )

    assert response.json()["errcode"] == 40007


# -- menu, faults, call log -------------------------------------------------------------------------------


def test_menu_create_then_get(emulator: WeChatEmulator) -> None:
    token = _token(emulator)
    menu = {"button": [{"type": "click", "name": "我的工单", "key": "MY_TICKETS"}]}

    created = requests.post(
        f"{emulator.url}/cgi-bin/menu/create", params={"access_token": token}, json=menu, timeout=5
    ).json()
    stored = requests.get(
        f"{emulator.url}/cgi-bin/menu/get", params={"access_token": token}, timeout=5
    ).json()

    assert created["errcode"] == 0
    assert stored == {"menu": menu}


def test_menu_create_rejects_click_without_key(emulator: WeChatEmulator) -> None:
    menu = {"button": [{"type": "click", "name": "我的工单"}]}

    answer = requests.post(
        f"{emulator.url}/cgi-bin/menu/create", params={"access_token": _token(emulator)}, json=menu, timeout=5
    ).json()

    assert answer["errcode"] == 40019


def test_fault_errcode_applies_given_times(emulator: WeChatEmulator) -> None:
    _control(emulator, "interactions", {"openid": OPENID})
    token = _token(emulator)
    _control(emulator, "faults", {"api": "message/custom/send", "errcode": -1, "times": 1})

    first = _custom_text(emulator, token)
    second = _custom_text(emulator, token)

    assert first["errcode"] == -1
    assert second["errcode"] == 0


def test_fault_http_status(emulator: WeChatEmulator) -> None:
    _control(emulator, "faults", {"api": "*", "http_status": 503})

    response = requests.post(
        f"{emulator.url}/cgi-bin/stable_token",
        json={"grant_type": "client_credential", "appid": APP_ID, "secret": APP_SECRET},
        timeout=5,
    )

    assert response.status_code == 503


def test_calls_log_records_api_touser_and_errcode(emulator: WeChatEmulator) -> None:
    _control(emulator, "interactions", {"openid": OPENID})
    _custom_text(emulator, _token(emulator))

    calls = requests.get(f"{emulator.url}/_emulator/calls", timeout=5).json()

    assert [call["api"] for call in calls] == ["stable_token", "message/custom/send"]
    assert calls[1]["touser"] == OPENID
    assert calls[1]["errcode"] == 0
    assert "secret" not in calls[0]["payload"]


def test_reset_clears_state(emulator: WeChatEmulator) -> None:
    _control(emulator, "interactions", {"openid": OPENID})
    _token(emulator)

    _control(emulator, "reset", {})

    assert emulator.calls == []
    assert emulator.state.users == {}


def test_control_request_without_required_field_is_400(
    emulator: WeChatEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING", logger="devstack.wechat_emulator"):
        response = requests.post(f"{emulator.url}/_emulator/media", json={"kind": "image"}, timeout=5)

    assert response.status_code == 400
    assert "invalid control request POST /_emulator/media" in caplog.text
    assert "media_id" in response.json()["error"]
    assert emulator.state.media == {}


def test_control_request_with_unknown_media_kind_is_400(emulator: WeChatEmulator) -> None:
    response = requests.post(
        f"{emulator.url}/_emulator/media", json={"media_id": "M1", "kind": "gif"}, timeout=5
    )

    assert response.status_code == 400
    assert "unknown media kind" in response.json()["error"]
    assert emulator.state.media == {}


def test_invalid_json_body_is_47001(emulator: WeChatEmulator) -> None:
    response = requests.post(
        f"{emulator.url}/cgi-bin/message/custom/send",
        params={"access_token": _token(emulator)},
        data=b"{not json",
        timeout=5,
    )

    assert response.status_code == 200
    assert response.json()["errcode"] == 47001
