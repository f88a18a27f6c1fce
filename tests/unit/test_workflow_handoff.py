"""The citizen's side of the workflow in ticket-write: a supplement ends the pause, a rating of 3 reopens.

Both go through `intake.workflow.transition`, the same rules as the staff actions, and commit in the
push's own DynamoDB transaction with an `action:<name>` history entry.
"""

# The driver fixtures are imported from test_ticket_write, so their names reappear as test arguments.
# ruff: noqa: F811

from __future__ import annotations

from typing import Any

import pytest

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
# BASE_TIME is Friday 2026-12-04 10:00 China time. The pause began on Tuesday 12-01 at 10:00, so the
# clock was held on Tuesday, Wednesday and Thursday: the deadline of Monday 12-07 17:30 moves by 3
# working days to Thursday 12-10 17:30.
PAUSED_AT = "2026-12-01T02:00:00.000Z"
DEADLINE = "2026-12-07T09:30:00.000Z"
RESUMED_DEADLINE = "2026-12-10T09:30:00.000Z"
# A reopen at Friday 12-04 10:01 restarts 13 working days from that day: Wednesday 12-23 17:30.
REOPENED_DEADLINE = "2026-12-23T09:30:00.000Z"


def history(driver: TicketWriteDriver, ticket_id: str) -> list[dict[str, Any]]:
    return driver.table.query(
        KeyConditionExpression="PK = :pk AND begins_with(SK, :hist)",
        ExpressionAttributeValues={":pk": f"TICKET#{ticket_id}", ":hist": "HIST#"},
    )["Items"]


def submitted_ticket(driver: TicketWriteDriver, open_id: str) -> None:
    driver.send(
        driver.text(open_id, "违章搭建", BASE_TIME - 3600),
        driver.text(open_id, "提交", BASE_TIME - 3600 + 5),
    )


def pause(driver: TicketWriteDriver, ticket_id: str, **extra: Any) -> None:
    """Put the ticket in awaiting_citizen as request_info leaves it, from dispatched."""
    values = {
        ":status": "awaiting_citizen",
        ":gsi": "STATUS#awaiting_citizen",
        ":deadline": DEADLINE,
        ":department": "cgj",
        ":paused_at": PAUSED_AT,
        ":resume": "dispatched",
        **{f":{name}": value for name, value in extra.items()},
    }
    assignments = ", ".join(f"#{name[1:]} = {name}" for name in values)
    driver.table.update_item(
        Key={"PK": f"TICKET#{ticket_id}", "SK": "TICKET"},
        UpdateExpression=f"SET {assignments}",
        ExpressionAttributeNames={
            "#status": "status",
            "#gsi": "GSI1PK",
            "#deadline": "deadline",
            "#department": "department",
            "#paused_at": "paused_at",
            "#resume": "resume_status",
            **{f"#{name}": name for name in extra},
        },
        ExpressionAttributeValues=values,
    )


def test_handoff_supplement_resumes_the_paused_ticket(
    driver: TicketWriteDriver, events: RecordingEventsClient
) -> None:
    # GIVEN a dispatched ticket that staff put in 待补充 on Tuesday
    open_id = open_id_of(31)
    submitted_ticket(driver, open_id)
    pause(driver, FIRST)

    # WHEN the citizen sends a photo on Friday
    driver.send(driver.image(open_id, BASE_TIME))

    # THEN the ticket is back in dispatched with the deadline moved by the 3 working days paused
    ticket = driver.ticket(FIRST)
    assert ticket["status"] == "dispatched"
    assert ticket["GSI1PK"] == "STATUS#dispatched"
    assert ticket["deadline"] == RESUMED_DEADLINE
    assert ticket["GSI1SK"] == RESUMED_DEADLINE
    assert ticket["paused_working_days"] == 3
    assert "paused_at" not in ticket
    assert "resume_status" not in ticket
    assert ticket["message_count"] == 2
    # AND the history records the workflow action, by the citizen, with before and after values
    (entry,) = [item for item in history(driver, FIRST) if item["entry_type"] == "action:supplement_received"]
    assert (entry["actor"], entry["before_status"], entry["after_status"]) == (
        "citizen",
        "awaiting_citizen",
        "dispatched",
    )
    assert entry["detail"]["before"]["deadline"] == DEADLINE
    # AND the bus hears of the status change and of the supplement
    changes = [(event["change"], event["status"]) for event in events.details("TicketChanged")]
    assert ("status_changed", "dispatched") in changes
    assert ("supplement_received", "dispatched") in changes


def test_handoff_follow_up_messages_join_the_resumed_ticket(
    driver: TicketWriteDriver, events: RecordingEventsClient
) -> None:
    # GIVEN a paused ticket that the citizen's first supplement resumed
    open_id = open_id_of(32)
    submitted_ticket(driver, open_id)
    pause(driver, FIRST)
    driver.send(driver.image(open_id, BASE_TIME))

    # WHEN a text follows within the collecting window, and another one after it
    driver.send(driver.text(open_id, "在三楼", BASE_TIME + 60))
    driver.send(driver.text(open_id, "另外一件事", BASE_TIME + 60 + WINDOW + 1))

    # THEN the first joins the resumed ticket without a second resume, the second opens a new draft
    assert len(driver.messages(FIRST)) == 3
    resumes = [item for item in history(driver, FIRST) if item["entry_type"] == "action:supplement_received"]
    assert len(resumes) == 1
    assert driver.ticket(FIRST)["deadline"] == RESUMED_DEADLINE
    assert driver.ticket(SECOND)["status"] == "collecting"
    # AND the citizen got one acknowledgement for the burst
    texts = [notice["text"] for notice in events.details("CitizenNoticeRequested")]
    assert texts.count(f"已收到您为工单 {FIRST} 补充的材料。") == 1


def test_handoff_pause_without_resume_status_keeps_waiting(
    driver: TicketWriteDriver, events: RecordingEventsClient, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a ticket in awaiting_citizen whose status before the pause was not recorded
    open_id = open_id_of(33)
    submitted_ticket(driver, open_id)
    pause(driver, FIRST)
    driver.table.update_item(
        Key={"PK": f"TICKET#{FIRST}", "SK": "TICKET"}, UpdateExpression="REMOVE resume_status"
    )

    # WHEN the citizen supplements it
    failed = driver.send(driver.text(open_id, "补充说明", BASE_TIME))

    # THEN the message is attached, the ticket keeps waiting for staff to resume it, and it is logged
    assert failed == []
    assert len(driver.messages(FIRST)) == 2
    assert driver.ticket(FIRST)["status"] == "awaiting_citizen"
    assert driver.ticket(FIRST)["deadline"] == DEADLINE
    assert "supplement cannot resume the ticket" in caplog.text


def closed_ticket(driver: TicketWriteDriver, open_id: str) -> None:
    submitted_ticket(driver, open_id)
    driver.table.update_item(
        Key={"PK": f"TICKET#{FIRST}", "SK": "TICKET"},
        UpdateExpression=(
            "SET #status = :closed, GSI1PK = :gsi, department = :department, handling_working_days = :days, "
            "deadline = :deadline, closed_at = :at, replied_at = :at, replied_on_time = :true, reply_text = :reply"
        ),
        ExpressionAttributeNames={"#status": "status"},
        ExpressionAttributeValues={
            ":closed": "closed",
            ":gsi": "STATUS#closed",
            ":department": "cgj",
            ":days": 13,
            ":deadline": DEADLINE,
            ":at": "2026-12-03T02:00:00.000Z",
            ":true": True,
            ":reply": "已处理",
        },
    )
    driver.table.update_item(
        Key={"PK": f"CITIZEN#{open_id}", "SK": "PROFILE"},
        UpdateExpression="SET pending_rating_ticket_id = :ticket",
        ExpressionAttributeValues={":ticket": FIRST},
    )


def test_handoff_dissatisfied_rating_follows_the_reopen_rules(
    driver: TicketWriteDriver, events: RecordingEventsClient
) -> None:
    # GIVEN a closed ticket awaiting the citizen's rating
    open_id = open_id_of(34)
    closed_ticket(driver, open_id)

    # WHEN the citizen replies 3 (不满意)
    driver.send(driver.text(open_id, "3", BASE_TIME + 60))

    # THEN the workflow's reopen applies: dispatched, deadline restarted, reopen_count incremented
    ticket = driver.ticket(FIRST)
    assert ticket["status"] == "dispatched"
    assert ticket["deadline"] == REOPENED_DEADLINE
    assert ticket["reopen_count"] == 1
    assert ticket["version"] == 1
    # AND the reply of the finished round is cleared while the rating stays recorded
    assert [
        name for name in ("closed_at", "replied_at", "replied_on_time", "reply_text") if name in ticket
    ] == []
    assert ticket["rating"]["score"] == 3
    # AND the history entry is the reopen action by the citizen
    (entry,) = [item for item in history(driver, FIRST) if item["entry_type"] == "action:reopen"]
    assert entry["actor"] == "citizen"
    assert entry["detail"]["reason"] == "rating_dissatisfied"


def test_handoff_satisfied_rating_is_the_rate_action(
    driver: TicketWriteDriver, events: RecordingEventsClient
) -> None:
    # GIVEN a closed ticket awaiting the citizen's rating
    open_id = open_id_of(35)
    closed_ticket(driver, open_id)

    # WHEN the citizen replies 1 (满意)
    driver.send(driver.text(open_id, "1", BASE_TIME + 60))

    # THEN the ticket is rated through the workflow's rate action and the citizen is thanked
    ticket = driver.ticket(FIRST)
    assert ticket["status"] == "rated"
    assert ticket["rating"]["label"] == "满意"
    assert ticket["replied_on_time"] is True
    assert [item["entry_type"] for item in history(driver, FIRST)].count("action:rate") == 1
    assert [notice["text"] for notice in events.details("CitizenNoticeRequested")][
        -1
    ] == "感谢您的评价（满意）。"
