"""Draft rules and self-service in WeChat, driven through ticket-write on the emulated stack."""

# The driver fixtures are imported from test_ticket_write, so their names reappear as test arguments.
# ruff: noqa: F811

from __future__ import annotations

import hashlib
import hmac

import pytest

from intake.history import append_history
from intake.keys import CITIZEN_INDEX
from tests.unit.test_ticket_write import (  # noqa: F401 - fixtures
    BASE_TIME,
    RecordingEventsClient,
    TicketWriteDriver,
    driver,
    events,
    open_id_of,
    pinned_clock,
)

WINDOW = 600
FIRST = "DG20261204-0001"
SECOND = "DG20261204-0002"


def notice_ids(events: RecordingEventsClient) -> list[str]:
    return [notice["notice_id"] for notice in events.details("CitizenNoticeRequested")]


def notice_texts(events: RecordingEventsClient) -> list[str]:
    return [notice["text"] for notice in events.details("CitizenNoticeRequested")]


def changes(events: RecordingEventsClient) -> list[tuple[str, str, str]]:
    return [(e["ticket_id"], e["change"], e["status"]) for e in events.details("TicketChanged")]


def test_conversation_messages_within_window_join_draft(
    driver: TicketWriteDriver, events: RecordingEventsClient
) -> None:
    # GIVEN a text, a photo and a location within the collecting window
    open_id = open_id_of(1)
    records = [
        driver.text(open_id, "小区门口积水严重", BASE_TIME),
        driver.image(open_id, BASE_TIME + 300),
        driver.location(open_id, BASE_TIME + 899),
    ]

    # WHEN they are processed
    driver.send(*records)

    # THEN they share one draft, which is acknowledged once
    assert [ticket["ticket_id"] for ticket in driver.tickets()] == [FIRST]
    assert len(driver.messages(FIRST)) == 3
    assert notice_ids(events) == [f"{FIRST}:ack"]
    # AND the location message locates the ticket
    assert driver.ticket(FIRST)["location"]["source"] == "message"


def test_conversation_message_after_window_opens_new_draft(
    driver: TicketWriteDriver, events: RecordingEventsClient
) -> None:
    # GIVEN a draft whose last message is older than the window and that the sweep has not submitted
    open_id = open_id_of(2)
    driver.send(driver.text(open_id, "路灯不亮", BASE_TIME))

    # WHEN the citizen writes again after more than the window
    driver.send(driver.text(open_id, "另一件事：噪音扰民", BASE_TIME + WINDOW + 1))

    # THEN the old draft is submitted and the new message opens a second draft
    assert driver.ticket(FIRST)["status"] == "submitted"
    assert driver.ticket(SECOND)["status"] == "collecting"
    assert len(driver.messages(SECOND)) == 1
    assert notice_ids(events) == [f"{FIRST}:ack", f"{FIRST}:submitted", f"{SECOND}:ack"]
    assert driver.profile(open_id)["open_draft_ticket_id"] == SECOND


def test_conversation_message_at_window_edge_joins(
    driver: TicketWriteDriver, events: RecordingEventsClient
) -> None:
    # GIVEN a draft
    open_id = open_id_of(3)
    driver.send(driver.text(open_id, "第一条", BASE_TIME))

    # WHEN the next message comes exactly one window later
    driver.send(driver.text(open_id, "第二条", BASE_TIME + WINDOW))

    # THEN it still joins the draft
    assert [ticket["ticket_id"] for ticket in driver.tickets()] == [FIRST]
    assert driver.ticket(FIRST)["message_count"] == 2


def test_conversation_submit_command(driver: TicketWriteDriver, events: RecordingEventsClient) -> None:
    # GIVEN a draft
    open_id = open_id_of(4)
    driver.send(driver.text(open_id, "垃圾桶满了", BASE_TIME))

    # WHEN the citizen sends 提交
    driver.send(driver.text(open_id, " 提交 ", BASE_TIME + 10))

    # THEN the draft is submitted at once, the command is not stored as a message, and the citizen is told
    ticket = driver.ticket(FIRST)
    assert ticket["status"] == "submitted"
    assert ticket["GSI1PK"] == "STATUS#submitted"
    assert len(driver.messages(FIRST)) == 1
    assert notice_ids(events)[-1] == f"{FIRST}:submitted"
    assert (FIRST, "status_changed", "submitted") in changes(events)
    assert "open_draft_ticket_id" not in driver.profile(open_id)


def test_conversation_submit_without_draft(driver: TicketWriteDriver, events: RecordingEventsClient) -> None:
    # GIVEN a citizen without a draft
    # WHEN the citizen presses the 提交 menu button
    driver.send(driver.event(open_id_of(5), "CLICK", BASE_TIME, EventKey="MENU_SUBMIT"))

    # THEN no ticket exists and the citizen is told there is nothing to submit
    assert driver.tickets() == []
    assert notice_texts(events) == ["您当前没有正在填写的反映。直接发送文字、语音或照片即可开始。"]


def test_conversation_cancel_command(driver: TicketWriteDriver, events: RecordingEventsClient) -> None:
    # GIVEN a draft
    open_id = open_id_of(6)
    driver.send(driver.text(open_id, "想反映一个问题", BASE_TIME))

    # WHEN the citizen sends 取消
    driver.send(driver.text(open_id, "取消", BASE_TIME + 5))

    # THEN the draft is cancelled and the next message opens a new draft
    assert driver.ticket(FIRST)["status"] == "cancelled"
    assert notice_ids(events)[-1] == f"{FIRST}:cancelled"
    driver.send(driver.text(open_id, "重新反映", BASE_TIME + 10))
    assert driver.ticket(SECOND)["status"] == "collecting"


def test_conversation_awaiting_ticket_gets_supplement(
    driver: TicketWriteDriver, events: RecordingEventsClient
) -> None:
    # GIVEN a submitted ticket that staff put in 待补充
    open_id = open_id_of(7)
    driver.send(driver.text(open_id, "违章搭建", BASE_TIME), driver.text(open_id, "提交", BASE_TIME + 5))
    driver.put_ticket_status(FIRST, "awaiting_citizen")

    # WHEN the citizen sends a photo and a text
    driver.send(driver.image(open_id, BASE_TIME + 3600), driver.text(open_id, "在三楼", BASE_TIME + 3610))

    # THEN both attach to that ticket and no new draft opens
    assert [ticket["ticket_id"] for ticket in driver.tickets()] == [FIRST]
    assert len(driver.messages(FIRST)) == 3
    assert driver.ticket(FIRST)["status"] == "awaiting_citizen"
    # AND the workflow hears about each supplement, the citizen gets one notice per burst
    supplements = [change for change in changes(events) if change[1] == "supplement_received"]
    assert len(supplements) == 2
    assert notice_texts(events).count(f"已收到您为工单 {FIRST} 补充的材料。") == 1


def test_conversation_location_event_locates_draft_without_location(
    driver: TicketWriteDriver, events: RecordingEventsClient
) -> None:
    # GIVEN a draft without a location
    open_id = open_id_of(8)
    driver.send(driver.text(open_id, "路面塌陷", BASE_TIME))

    # WHEN WeChat reports the citizen's position
    driver.send(
        driver.event(open_id, "LOCATION", BASE_TIME + 5, Latitude=23.05, Longitude=113.74, Precision=30)
    )

    # THEN the profile and the draft take the position, marked as from the location event
    assert float(driver.profile(open_id)["last_location"]["latitude"]) == 23.05
    location = driver.ticket(FIRST)["location"]
    assert location["source"] == "location_event"
    assert float(location["latitude"]) == 23.05


def test_conversation_location_message_beats_location_event(
    driver: TicketWriteDriver, events: RecordingEventsClient
) -> None:
    # GIVEN a position reported by a LOCATION event before the citizen starts a report
    open_id = open_id_of(9)
    driver.send(driver.text(open_id, "你好", BASE_TIME - 100), driver.text(open_id, "取消", BASE_TIME - 90))
    driver.send(driver.event(open_id, "LOCATION", BASE_TIME - 60, Latitude=23.0, Longitude=113.7))

    # WHEN the citizen reports, then sends a location message, then WeChat reports a position again
    driver.send(driver.text(open_id, "下水道堵塞", BASE_TIME))
    located_by_event = driver.ticket(SECOND)["location"]["source"]
    driver.send(driver.location(open_id, BASE_TIME + 5, latitude=23.1, longitude=113.8))
    driver.send(driver.event(open_id, "LOCATION", BASE_TIME + 10, Latitude=23.2, Longitude=113.9))

    # THEN the new draft first took the recent event position, and the location message replaced it for good
    assert located_by_event == "location_event"
    location = driver.ticket(SECOND)["location"]
    assert location["source"] == "message"
    assert float(location["latitude"]) == 23.1


@pytest.mark.parametrize("content", ["", "   ", "\n\t "])
def test_conversation_empty_text_opens_nothing(
    driver: TicketWriteDriver, events: RecordingEventsClient, content: str
) -> None:
    # GIVEN a whitespace-only text
    open_id = open_id_of(10)

    # WHEN it is processed
    failures = driver.send(driver.text(open_id, content, BASE_TIME))

    # THEN no ticket opens and no notice goes out, but the 48-hour window moves
    assert failures == []
    assert driver.tickets() == []
    assert notice_ids(events) == []
    assert driver.profile(open_id)["last_interaction_at"] == BASE_TIME


def test_conversation_emergency_keyword(driver: TicketWriteDriver, events: RecordingEventsClient) -> None:
    # GIVEN a text that mentions a gas leak
    open_id = open_id_of(11)

    # WHEN it is processed
    driver.send(driver.text(open_id, "楼道里燃气泄漏了，味道很大", BASE_TIME))

    # THEN the citizen is told to call 110/119/120 at once, and the ticket is flagged urgent and emergency
    texts = notice_texts(events)
    assert any("119" in text and FIRST in text for text in texts)
    assert notice_ids(events)[0].endswith(":emergency")
    ticket = driver.ticket(FIRST)
    assert ticket["urgent"] is True
    assert ticket["emergency"] is True


def test_conversation_long_text_with_emoji_kept_whole(
    driver: TicketWriteDriver, events: RecordingEventsClient
) -> None:
    # GIVEN a long text with 4-byte UTF-8 characters (emoji and a rare CJK character)
    content = ("噪音扰民😡🏗️𠮷" * 1500)[:20000]

    # WHEN it is processed
    driver.send(driver.text(open_id_of(12), content, BASE_TIME))

    # THEN the stored message is exactly the text sent
    assert driver.messages(FIRST)[0]["content"] == content


@pytest.mark.parametrize("command", ["查询", "进度"])
def test_conversation_query_lists_tickets(
    driver: TicketWriteDriver, events: RecordingEventsClient, command: str
) -> None:
    # GIVEN a citizen with two tickets
    open_id = open_id_of(13)
    driver.send(driver.text(open_id, "第一件", BASE_TIME), driver.text(open_id, "提交", BASE_TIME + 1))
    driver.send(driver.text(open_id, "第二件", BASE_TIME + 2))

    # WHEN the citizen asks for progress
    driver.send(driver.text(open_id, command, BASE_TIME + 3))

    # THEN the reply lists both numbers with their status labels
    reply = events.details("CitizenNoticeRequested")[-1]
    assert reply["kind"] == "self_service"
    assert f"{FIRST}  待受理" in reply["text"]
    assert f"{SECOND}  填写中" in reply["text"]


def test_conversation_query_menu_without_tickets(
    driver: TicketWriteDriver, events: RecordingEventsClient
) -> None:
    # GIVEN a citizen without tickets
    # WHEN the citizen presses the progress menu button
    driver.send(driver.event(open_id_of(14), "CLICK", BASE_TIME, EventKey="MENU_QUERY"))

    # THEN the reply says there are no tickets
    assert notice_texts(events) == ["您还没有工单。直接发送文字、语音、照片或位置即可反映问题。"]


def test_conversation_ticket_number_lookup_own(
    driver: TicketWriteDriver, events: RecordingEventsClient
) -> None:
    # GIVEN a submitted ticket
    open_id = open_id_of(15)
    driver.send(driver.text(open_id, "占道经营", BASE_TIME), driver.text(open_id, "提交", BASE_TIME + 1))

    # WHEN the citizen sends its number
    driver.send(driver.text(open_id, FIRST.lower(), BASE_TIME + 2))

    # THEN the reply shows the status and the timeline
    text = notice_texts(events)[-1]
    assert text.startswith(f"工单 {FIRST}：待受理")
    assert "填写中" in text
    # AND the lookup is not stored as content
    assert len(driver.messages(FIRST)) == 1


def test_conversation_ticket_number_lookup_shows_answer(
    driver: TicketWriteDriver, events: RecordingEventsClient
) -> None:
    # GIVEN a submitted ticket that the department answered
    open_id = open_id_of(21)
    driver.send(driver.text(open_id, "路灯不亮", BASE_TIME), driver.text(open_id, "提交", BASE_TIME + 1))
    append_history(
        driver.table,
        ticket_id=FIRST,
        entry_type="action:reply",
        actor="staff-01",
        at=BASE_TIME + 100,
        before_status="dispatched",
        after_status="replied",
        detail={"text": "已安排维修，今晚恢复照明。"},
    )

    # WHEN the citizen sends its number
    driver.send(driver.text(open_id, FIRST, BASE_TIME + 200))

    # THEN the reply carries the department's words, which a template message could not
    assert notice_texts(events)[-1].endswith("答复：已安排维修，今晚恢复照明。")


def test_conversation_ticket_number_lookup_foreign(
    driver: TicketWriteDriver, events: RecordingEventsClient
) -> None:
    # GIVEN another citizen's ticket
    driver.send(driver.text(open_id_of(16), "别人的工单", BASE_TIME))

    # WHEN a different citizen sends its number
    driver.send(driver.text(open_id_of(17), FIRST, BASE_TIME + 1))

    # THEN the reply says not found, exactly as for a number that does not exist
    assert notice_texts(events)[-1] == f"未找到工单 {FIRST}，请核对工单号。"


def closed_ticket_awaiting_rating(driver: TicketWriteDriver, open_id: str) -> None:
    driver.send(driver.text(open_id, "路灯坏了", BASE_TIME), driver.text(open_id, "提交", BASE_TIME + 1))
    driver.put_ticket_status(FIRST, "closed")
    # A closed ticket was dispatched; the workflow's reopen needs its department and working days.
    driver.table.update_item(
        Key={"PK": f"TICKET#{FIRST}", "SK": "TICKET"},
        UpdateExpression="SET department = :department, handling_working_days = :days",
        ExpressionAttributeValues={":department": "cgj", ":days": 13},
    )
    driver.table.update_item(
        Key={"PK": f"CITIZEN#{open_id}", "SK": "PROFILE"},
        UpdateExpression="SET pending_rating_ticket_id = :ticket",
        ExpressionAttributeValues={":ticket": FIRST},
    )


@pytest.mark.parametrize(("choice", "label"), [("1", "满意"), ("2", "基本满意")])
def test_conversation_rating_recorded(
    driver: TicketWriteDriver, events: RecordingEventsClient, choice: str, label: str
) -> None:
    # GIVEN a closed ticket awaiting the citizen's rating
    open_id = open_id_of(18)
    closed_ticket_awaiting_rating(driver, open_id)

    # WHEN the citizen answers
    driver.send(driver.text(open_id, choice, BASE_TIME + 100))

    # THEN the ticket is rated, the invitation is cleared, and the citizen is thanked
    ticket = driver.ticket(FIRST)
    assert ticket["status"] == "rated"
    assert ticket["rating"]["score"] == int(choice)
    assert "pending_rating_ticket_id" not in driver.profile(open_id)
    assert notice_texts(events)[-1] == f"感谢您的评价（{label}）。"
    assert len(driver.tickets()) == 1


def test_conversation_rating_dissatisfied_reopens(
    driver: TicketWriteDriver, events: RecordingEventsClient
) -> None:
    # GIVEN a closed ticket awaiting the citizen's rating
    open_id = open_id_of(19)
    closed_ticket_awaiting_rating(driver, open_id)

    # WHEN the citizen answers 3 (不满意)
    driver.send(driver.text(open_id, "3", BASE_TIME + 100))

    # THEN the workflow reopens the ticket to dispatched, with the rating and a reopen history entry
    ticket = driver.ticket(FIRST)
    assert ticket["status"] == "dispatched"
    assert ticket["reopen_count"] == 1
    assert ticket["rating"]["score"] == 3
    history = driver.table.query(
        KeyConditionExpression="PK = :pk AND begins_with(SK, :hist)",
        ExpressionAttributeValues={":pk": f"TICKET#{FIRST}", ":hist": "HIST#"},
    )["Items"]
    assert "action:reopen" in [entry["entry_type"] for entry in history]
    assert (FIRST, "status_changed", "dispatched") in changes(events)
    assert notice_texts(events)[-1] == f"很抱歉处理结果未能让您满意，工单 {FIRST} 已重新办理。"


def test_conversation_digit_without_pending_rating_is_content(
    driver: TicketWriteDriver, events: RecordingEventsClient
) -> None:
    # GIVEN a citizen with no rating pending
    # WHEN the citizen sends "1"
    driver.send(driver.text(open_id_of(20), "1", BASE_TIME))

    # THEN it opens a draft like any other text
    assert driver.ticket(FIRST)["status"] == "collecting"


def test_conversation_subscribe_sends_welcome(
    driver: TicketWriteDriver, events: RecordingEventsClient
) -> None:
    # GIVEN a new follower
    open_id = open_id_of(21)

    # WHEN WeChat pushes the subscribe event
    driver.send(driver.event(open_id, "subscribe", BASE_TIME))

    # THEN the profile is subscribed and the welcome text explains how to report, also by voice
    assert driver.profile(open_id)["subscribed"] is True
    notices = events.details("CitizenNoticeRequested")
    assert [notice["kind"] for notice in notices] == ["welcome"]
    assert "语音" in notices[0]["text"]


def test_conversation_unsubscribe_erases_citizen(
    driver: TicketWriteDriver, events: RecordingEventsClient
) -> None:
    # GIVEN a citizen with a submitted ticket and an open draft
    open_id = open_id_of(22)
    driver.send(driver.event(open_id, "subscribe", BASE_TIME - 10))
    driver.send(driver.text(open_id, "已提交的反映", BASE_TIME), driver.text(open_id, "提交", BASE_TIME + 1))
    driver.send(driver.text(open_id, "还没提交的草稿", BASE_TIME + 2), driver.image(open_id, BASE_TIME + 3))

    # WHEN the citizen unsubscribes
    driver.send(driver.event(open_id, "unsubscribe", BASE_TIME + 10))

    # THEN the profile and the draft with its messages are gone
    assert driver.profile(open_id) is None
    assert (
        driver.table.query(
            KeyConditionExpression="PK = :pk", ExpressionAttributeValues={":pk": f"TICKET#{SECOND}"}
        )["Items"]
        == []
    )
    # AND the kept ticket carries the keyed hash of the OpenID instead, in CitizenIndex too
    secret_id = driver.stack.ref("PseudonymKeySecret")
    key = driver.stack.client("secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"]
    pseudonym = hmac.new(key.encode(), open_id.encode(), hashlib.sha256).hexdigest()
    kept = driver.ticket(FIRST)
    assert kept["open_id"] == pseudonym
    assert kept["GSI2PK"] == f"CITIZEN#{pseudonym}"
    by_open_id = driver.table.query(
        IndexName=CITIZEN_INDEX,
        KeyConditionExpression="GSI2PK = :pk",
        ExpressionAttributeValues={":pk": f"CITIZEN#{open_id}"},
    )["Items"]
    assert by_open_id == []
    # AND no item in the table contains the OpenID any more
    assert all(open_id not in str(item) for item in driver.scan())


def test_conversation_resubscribe_starts_fresh(
    driver: TicketWriteDriver, events: RecordingEventsClient
) -> None:
    # GIVEN a citizen who reported, unsubscribed and followed again
    open_id = open_id_of(23)
    driver.send(driver.text(open_id, "旧的反映", BASE_TIME), driver.text(open_id, "提交", BASE_TIME + 1))
    driver.send(driver.event(open_id, "unsubscribe", BASE_TIME + 10))
    driver.send(driver.event(open_id, "subscribe", BASE_TIME + 20))

    # WHEN the citizen asks for progress
    driver.send(driver.text(open_id, "查询", BASE_TIME + 30))

    # THEN the old ticket is no longer linked to the citizen
    assert notice_texts(events)[-1] == "您还没有工单。直接发送文字、语音、照片或位置即可反映问题。"
