"""Announcements through the staff API: mass send to every follower on the WeChat emulator, monthly quota."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
import requests

from devstack.wechat_emulator import Fault, WeChatEmulator, start_emulator
from intake import clock
from tests.unit.staff_api_events import CALLER_ARN, rest_event

SCHEDULED_EVENT = {
    "version": "0",
    "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "account": "123456789012",
    "time": "2026-12-04T12:00:00Z",
    "region": "us-east-1",
    "resources": ["arn:aws:events:us-east-1:123456789012:rule/EveryFiveMinutes"],
    "detail": {},
}
NEW_ANNOUNCEMENT = {
    "title": "春节期间办事安排",
    "text": "春节假期（2月15日至2月23日）市民服务中心暂停现场办理，网上办事照常受理。",
    "link": "https://www.dg.gov.cn/",
    "actor": "editor-chen",
}


@pytest.fixture
def emulator() -> Iterator[WeChatEmulator]:
    with start_emulator() as running:
        yield running


@pytest.fixture
def staff_api(load_function: Any, emulator: WeChatEmulator, lambda_context: Any) -> ModuleType:
    """The staff API with the shared access token that token-refresh stored, as in a deployment."""
    token_refresh = load_function("TokenRefreshFunction", extra_env={"WECHAT_API_BASE": emulator.url})
    token_refresh.lambda_handler(SCHEDULED_EVENT, lambda_context)
    return load_function("StaffApiFunction", extra_env={"WECHAT_API_BASE": emulator.url})


@pytest.fixture
def table(stack: Any) -> Any:
    return stack.session.resource("dynamodb").Table(stack.ref("TicketsTable"))


def call(staff_api: ModuleType, context: Any, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    parts = path.strip("/").split("/")
    resource, parameters = "/" + parts[0], None
    if len(parts) >= 2:
        resource += "/{announcement_id}" + ("/" + "/".join(parts[2:]) if len(parts) > 2 else "")
        parameters = {"announcement_id": parts[1]}
    event = rest_event(method, path, resource, path_parameters=parameters, body=body)
    response = staff_api.lambda_handler(event, context)
    return response["statusCode"], json.loads(response["body"])


def create(staff_api: ModuleType, context: Any, **changes: Any) -> dict[str, Any]:
    status, body = call(staff_api, context, "POST", "/announcements", {**NEW_ANNOUNCEMENT, **changes})
    assert status == 200
    return body


def publish(staff_api: ModuleType, context: Any, announcement_id: str) -> tuple[int, Any]:
    path = f"/announcements/{announcement_id}/publish"
    return call(staff_api, context, "POST", path, {"actor": "editor-chen"})


def mass_send_calls(emulator: WeChatEmulator) -> list[dict[str, Any]]:
    return [entry for entry in emulator.calls if entry["api"] == "message/mass/sendall"]


def quota_used(table: Any) -> int:
    items = table.scan()["Items"]
    return sum(int(item["used"]) for item in items if item.get("item_type") == "mass_send_quota")


def test_announcement_publish_reaches_every_follower(
    staff_api: ModuleType, emulator: WeChatEmulator, lambda_context: Any
) -> None:
    # GIVEN a draft announcement
    draft = create(staff_api, lambda_context)

    # WHEN staff publish it
    status, published = publish(staff_api, lambda_context, draft["announcement_id"])

    # THEN WeChat got one text mass send to all followers with title, text and link
    assert status == 200
    assert len(emulator.state.mass_sends) == 1
    payload = emulator.state.mass_sends[0]["payload"]
    assert payload["filter"] == {"is_to_all": True}
    assert payload["msgtype"] == "text"
    assert payload["text"]["content"].startswith("【春节期间办事安排】\n春节假期")
    assert payload["text"]["content"].endswith("https://www.dg.gov.cn/")
    # AND the announcement is published with WeChat's msg_id and the send record names who sent it
    assert published["status"] == "published"
    assert published["msg_id"] == str(emulator.state.mass_sends[0]["msg_id"])
    assert [(send["errcode"], send["actor"], send["caller"]) for send in published["sends"]] == [
        (0, "editor-chen", CALLER_ARN)
    ]


def test_announcement_fifth_monthly_publish_is_409(
    staff_api: ModuleType,
    emulator: WeChatEmulator,
    table: Any,
    lambda_context: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # GIVEN four announcements published this month
    for index in range(4):
        draft = create(staff_api, lambda_context, title=f"通知{index}")
        assert publish(staff_api, lambda_context, draft["announcement_id"])[0] == 200
    fifth = create(staff_api, lambda_context, title="第五条")

    # WHEN staff publish a fifth
    status, body = publish(staff_api, lambda_context, fifth["announcement_id"])

    # THEN the answer is 409 in Chinese, WeChat was not called again and the draft stays a draft
    assert status == 409
    assert body["code"] == "conflict"
    assert "本月群发次数已用完" in body["message"]
    assert len(mass_send_calls(emulator)) == 4
    assert quota_used(table) == 4
    _, stored = call(staff_api, lambda_context, "GET", f"/announcements/{fifth['announcement_id']}")
    assert stored["status"] == "draft"
    assert "publish rejected: monthly mass-send quota used" in caplog.text


def test_announcement_published_twice_is_409(
    staff_api: ModuleType, emulator: WeChatEmulator, lambda_context: Any
) -> None:
    # GIVEN a published announcement
    draft = create(staff_api, lambda_context)
    publish(staff_api, lambda_context, draft["announcement_id"])

    # WHEN staff publish it again
    status, body = publish(staff_api, lambda_context, draft["announcement_id"])

    # THEN it is refused and followers got it once
    assert status == 409
    assert "已发布" in body["message"]
    assert len(emulator.state.mass_sends) == 1


def test_announcement_refused_by_wechat_gives_slot_back(
    staff_api: ModuleType, emulator: WeChatEmulator, table: Any, lambda_context: Any
) -> None:
    # GIVEN WeChat is busy for the next mass send
    emulator.state.add_fault(Fault(api="message/mass/sendall", errcode=-1))
    draft = create(staff_api, lambda_context)

    # WHEN staff publish, then publish again
    first_status, failed = publish(staff_api, lambda_context, draft["announcement_id"])
    used_after_refusal = quota_used(table)
    second_status, published = publish(staff_api, lambda_context, draft["announcement_id"])

    # THEN the refusal is recorded, the month's slot was given back, and the retry went out once
    assert first_status == 200
    assert failed["status"] == "failed"
    assert [send["errcode"] for send in failed["sends"]] == [-1]
    assert used_after_refusal == 0
    assert second_status == 200
    assert published["status"] == "published"
    assert [send["errcode"] for send in published["sends"]] == [-1, 0]
    assert len(emulator.state.mass_sends) == 1


def test_announcement_no_answer_keeps_slot_and_retry_is_not_sent_twice(
    staff_api: ModuleType, emulator: WeChatEmulator, table: Any, lambda_context: Any
) -> None:
    # GIVEN WeChat sends the announcement but its answer is lost (HTTP 503 after the send)
    draft = create(staff_api, lambda_context)
    emulator.state.add_fault(Fault(api="message/mass/sendall", http_status=503))
    emulator.state.mass_sends.append(
        {"msg_id": 42, "clientmsgid": draft["announcement_id"], "month": "000000", "payload": {}, "at": 0}
    )

    # WHEN staff publish, then publish again
    _, uncertain = publish(staff_api, lambda_context, draft["announcement_id"])
    used_after_no_answer = quota_used(table)
    _, published = publish(staff_api, lambda_context, draft["announcement_id"])

    # THEN the slot stays taken and is recorded on the announcement
    assert uncertain["status"] == "failed"
    assert [send["errcode"] for send in uncertain["sends"]] == [None]
    assert used_after_no_answer == 1
    assert uncertain["held_slot_month"] == clock.china_datetime(time.time()).strftime("%Y%m")
    # AND WeChat recognised the retry by its clientmsgid (45065), naming the earlier send's msg_id
    assert published["status"] == "published"
    assert published["sends"][-1]["errcode"] == 45065
    assert published["msg_id"] == "42"
    assert published["held_slot_month"] is None
    assert len(emulator.state.mass_sends) == 1
    # AND the retry reused the held slot: one send, one slot
    assert quota_used(table) == 1


def test_announcement_refused_retry_keeps_held_slot(
    staff_api: ModuleType, emulator: WeChatEmulator, table: Any, lambda_context: Any
) -> None:
    # GIVEN a publish without an answer, and WeChat busy for the retry
    draft = create(staff_api, lambda_context)
    emulator.state.add_fault(Fault(api="message/mass/sendall", http_status=503))
    emulator.state.add_fault(Fault(api="message/mass/sendall", errcode=-1))

    # WHEN staff publish three times
    publish(staff_api, lambda_context, draft["announcement_id"])
    _, refused = publish(staff_api, lambda_context, draft["announcement_id"])
    used_after_refusal = quota_used(table)
    _, published = publish(staff_api, lambda_context, draft["announcement_id"])

    # THEN the refusal keeps the held slot (the first attempt may have gone out) and no attempt takes another
    assert [send["errcode"] for send in refused["sends"]] == [None, -1]
    assert refused["held_slot_month"] is not None
    assert used_after_refusal == 1
    assert published["status"] == "published"
    assert quota_used(table) == 1
    assert len(emulator.state.mass_sends) == 1


def _leave_in_sending(table: Any, announcement_id: str, seconds_ago: float) -> None:
    """Leave the announcement as a publish that died after its claim does: `sending`, one slot taken."""
    claimed_at = time.time() - seconds_ago
    table.update_item(
        Key={"PK": "ANNOUNCEMENT", "SK": f"ANN#{announcement_id}"},
        UpdateExpression="SET #status = :sending, updated_at = :at",
        ExpressionAttributeNames={"#status": "status"},
        ExpressionAttributeValues={":sending": "sending", ":at": clock.iso_utc(claimed_at)},
    )
    month = clock.china_datetime(claimed_at).strftime("%Y%m")
    table.put_item(
        Item={"PK": f"MASS_SEND_QUOTA#{month}", "SK": "COUNTER", "item_type": "mass_send_quota", "used": 1}
    )


def test_announcement_stale_sending_is_taken_over_without_a_second_slot(
    staff_api: ModuleType, emulator: WeChatEmulator, table: Any, lambda_context: Any
) -> None:
    # GIVEN a publish that claimed the announcement ten minutes ago and died before WeChat answered
    draft = create(staff_api, lambda_context)
    _leave_in_sending(table, draft["announcement_id"], seconds_ago=600)

    # WHEN staff publish again
    status, published = publish(staff_api, lambda_context, draft["announcement_id"])

    # THEN it is sent once, with the slot the dead publish took and no second one
    assert status == 200
    assert published["status"] == "published"
    assert len(emulator.state.mass_sends) == 1
    assert quota_used(table) == 1


def test_announcement_fresh_sending_is_409(
    staff_api: ModuleType, emulator: WeChatEmulator, table: Any, lambda_context: Any
) -> None:
    # GIVEN a publish that claimed the announcement ten seconds ago and may still be running
    draft = create(staff_api, lambda_context)
    _leave_in_sending(table, draft["announcement_id"], seconds_ago=10)

    # WHEN staff publish again
    status, body = publish(staff_api, lambda_context, draft["announcement_id"])

    # THEN it is refused and WeChat is not called
    assert status == 409
    assert body["code"] == "conflict"
    assert mass_send_calls(emulator) == []


def test_announcement_invalid_body_is_400_and_stores_nothing(
    staff_api: ModuleType, table: Any, lambda_context: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN an announcement without text and with a link that is no URL
    body = {**NEW_ANNOUNCEMENT, "text": "", "link": "javascript:alert(1)"}

    # WHEN staff create it
    status, answer = call(staff_api, lambda_context, "POST", "/announcements", body)

    # THEN it is rejected naming both fields, logged, and nothing is stored
    assert status == 400
    assert "text" in answer["message"]
    assert "link" in answer["message"]
    assert "request rejected as invalid" in caplog.text
    assert [item for item in table.scan()["Items"] if item.get("item_type") == "announcement"] == []


@pytest.mark.parametrize(
    "link",
    [
        "https://www.dg.gov.cn/ https://evil.example/",
        "https://www.dg.gov.cn/\n点击领取补贴",
        "https://www.dg.gov.cn/\x07",
        "https://www.dg.gov.cn/\u0085",
        "https://",
    ],
)
def test_announcement_link_not_one_clean_url_is_400(
    staff_api: ModuleType, table: Any, lambda_context: Any, link: str
) -> None:
    # GIVEN an announcement whose link has whitespace, control characters or no host
    body = {**NEW_ANNOUNCEMENT, "link": link}

    # WHEN staff create it
    status, answer = call(staff_api, lambda_context, "POST", "/announcements", body)

    # THEN it is rejected naming the link in the usual Chinese message, and nothing is stored
    assert status == 400
    assert answer["message"].startswith("请求参数有误"), answer
    assert "link" in answer["message"]
    assert [item for item in table.scan()["Items"] if item.get("item_type") == "announcement"] == []


def test_announcement_too_long_for_one_send_is_400(
    staff_api: ModuleType, table: Any, lambda_context: Any
) -> None:
    # GIVEN a text of 650 characters with a long title (more than 2048 bytes in UTF-8)
    body = {**NEW_ANNOUNCEMENT, "text": "通" * 650, "title": "标" * 64}

    # WHEN staff create it
    status, answer = call(staff_api, lambda_context, "POST", "/announcements", body)

    # THEN it is rejected with the size, and nothing is stored
    assert status == 400
    assert "超过群发上限" in answer["message"]
    assert [item for item in table.scan()["Items"] if item.get("item_type") == "announcement"] == []


def test_announcement_unknown_id_is_404(staff_api: ModuleType, lambda_context: Any) -> None:
    # GIVEN no announcement with this id

    # WHEN staff read and publish it
    read_status, read_body = call(staff_api, lambda_context, "GET", "/announcements/A20261204100000-abcdef")
    publish_status, _ = publish(staff_api, lambda_context, "A20261204100000-abcdef")

    # THEN both respond 404
    assert read_status == 404
    assert "公告 A20261204100000-abcdef" in read_body["message"]
    assert publish_status == 404


def test_announcement_list_newest_first(staff_api: ModuleType, lambda_context: Any) -> None:
    # GIVEN two announcements created one after the other
    first = create(staff_api, lambda_context, title="第一条")
    second = create(staff_api, lambda_context, title="第二条")

    # WHEN staff list them
    status, body = call(staff_api, lambda_context, "GET", "/announcements")

    # THEN both are listed, the newer first when their ids differ in time
    assert status == 200
    ids = [item["announcement_id"] for item in body["items"]]
    assert sorted(ids) == sorted([first["announcement_id"], second["announcement_id"]])
    assert ids == sorted(ids, reverse=True)


def test_announcement_malformed_id_is_400(
    staff_api: ModuleType, lambda_context: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN an id that no announcement can have

    # WHEN staff read it
    status, body = call(staff_api, lambda_context, "GET", "/announcements/..%2Fadmin")

    # THEN it is rejected as invalid and logged
    assert status == 400
    assert "announcement_id" in body["message"]
    assert "request rejected as invalid" in caplog.text


@pytest.mark.parametrize(
    ("payload", "errcode"),
    [
        (
            {"filter": {"is_to_all": False, "tag_id": 2}, "msgtype": "text", "text": {"content": "通知"}},
            47001,
        ),
        ({"filter": {"is_to_all": True}, "msgtype": "text", "text": {"content": ""}}, 47001),
        ({"filter": {"is_to_all": True}, "msgtype": "music", "music": {}}, 40008),
        ({"filter": {"is_to_all": True}, "msgtype": "text", "text": {"content": "通" * 700}}, 45002),
    ],
    ids=["not-to-all", "empty-text", "unknown-type", "text-too-long"],
)
def test_emulator_mass_send_rejects_invalid_payload(
    emulator: WeChatEmulator, payload: dict[str, Any], errcode: int
) -> None:
    # GIVEN a valid access token
    token = emulator.state.issue_token(
        "token", emulator.state.app_id, emulator.state.app_secret, "client_credential"
    )

    # WHEN a malformed mass send is posted
    answer = requests.post(
        f"{emulator.url}/cgi-bin/message/mass/sendall",
        params={"access_token": token["access_token"]},
        json=payload,
        timeout=5,
    ).json()

    # THEN WeChat's errcode comes back and nothing is sent
    assert answer["errcode"] == errcode
    assert emulator.state.mass_sends == []


def test_emulator_mass_send_monthly_limit(emulator: WeChatEmulator) -> None:
    # GIVEN four mass sends this month
    token = emulator.state.issue_token(
        "token", emulator.state.app_id, emulator.state.app_secret, "client_credential"
    )
    url = f"{emulator.url}/cgi-bin/message/mass/sendall"

    def send(content: str) -> dict[str, Any]:
        payload = {"filter": {"is_to_all": True}, "msgtype": "text", "text": {"content": content}}
        return requests.post(
            url, params={"access_token": token["access_token"]}, json=payload, timeout=5
        ).json()

    earlier = [send(f"通知{index}")["errcode"] for index in range(4)]

    # WHEN a fifth is posted
    fifth = send("第五条通知")

    # THEN the fifth is refused with 45028 and only four were sent
    assert earlier == [0, 0, 0, 0]
    assert fifth["errcode"] == 45028
    assert len(emulator.state.mass_sends) == 4
