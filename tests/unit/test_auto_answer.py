"""Consultations answered from the knowledge base by ticket-write, the 「人工」 handoff and the auto-close."""

from __future__ import annotations

# The driver fixtures are imported from test_ticket_write, so their names reappear as test arguments.
# ruff: noqa: F811
import json
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from botocore.exceptions import ClientError

from intake import texts
from intake.knowledge_base import KnowledgeRepository, starter_rows
from intake.records import InboundRecord
from intake.workflow_config import get_workflow_config
from tests.conftest import drain_event_details
from tests.unit.staff_api_events import rest_event, ticket_item
from tests.unit.test_ticket_write import (  # noqa: F401 - fixtures
    BASE_TIME,
    RecordingEventsClient,
    TicketWriteDriver,
    driver,
    events,
    open_id_of,
    pinned_clock,
)

HOUR = 3600
# kb-0001 of the starter set: 社保卡怎么办理.
QUESTION = "请问社保卡怎么办理？"
# Names 社保卡 but mainly reports a problem; the matcher scores it below the threshold.
NEAR_MISS = "我想问问社保卡的事情，顺便说一下小区垃圾没人清理"


@pytest.fixture
def knowledge(driver: TicketWriteDriver) -> KnowledgeRepository:
    """The stack's knowledge base with the shipped starter entries."""
    repository = KnowledgeRepository(driver.table)
    repository.upsert(starter_rows(get_workflow_config()), actor="test-setup")
    return repository


@pytest.fixture
def sweeper(load_function: Callable[..., ModuleType], driver: TicketWriteDriver) -> ModuleType:
    return load_function("DraftSubmitFunction")


@pytest.fixture
def staff_api(load_function: Callable[..., ModuleType], driver: TicketWriteDriver) -> ModuleType:
    return load_function("StaffApiFunction")


def act(staff_api: ModuleType, lambda_context: Any, ticket_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST /tickets/{ticket_id}/actions through the staff API handler; returns status code and body."""
    event = rest_event(
        "POST",
        f"/tickets/{ticket_id}/actions",
        "/tickets/{ticket_id}/actions",
        path_parameters={"ticket_id": ticket_id},
        body=body,
    )
    response = staff_api.lambda_handler(event, lambda_context)
    return {"status": response["statusCode"], **json.loads(response["body"])}


SCHEDULED_EVENT = {
    "version": "0",
    "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "account": "123456789012",
    "time": "2026-12-04T02:20:00Z",
    "region": "us-east-1",
    "resources": ["arn:aws:events:us-east-1:123456789012:rule/draft-submit-every-minute"],
    "detail": {},
}


def voice(driver: TicketWriteDriver, open_id: str, recognition: str, at: int) -> InboundRecord:
    fields = {
        "MsgType": "voice",
        "MediaId": "voice-media-1",
        "Format": "amr",
        "Recognition": recognition,
        "MsgId": driver.next_msg_id(),
    }
    return driver.push(open_id, fields, at)


def history_types(driver: TicketWriteDriver, ticket_id: str) -> list[str]:
    return [
        item["entry_type"]
        for item in driver.scan()
        if item.get("item_type") == "history" and item["ticket_id"] == ticket_id
    ]


def answered(driver: TicketWriteDriver, events: RecordingEventsClient, open_id: str) -> dict[str, Any]:
    """Send the consultation and return the one ticket it made."""
    assert driver.send(driver.text(open_id, QUESTION, BASE_TIME)) == []
    (ticket,) = driver.tickets()
    return ticket


def test_auto_answer_consultation_answered_at_once(
    driver: TicketWriteDriver, events: RecordingEventsClient, knowledge: KnowledgeRepository
) -> None:
    # GIVEN a citizen asking a question the knowledge base answers
    open_id = open_id_of(1)

    # WHEN ticket-write processes it
    ticket = answered(driver, events, open_id)

    # THEN one consultation ticket records which answer was given, how sure the match was, and the message
    assert ticket["status"] == "replied"
    assert ticket["appeal_type"] == "consultation"
    assert ticket["auto_answer"]["entry_id"] == "kb-0001"
    assert ticket["auto_answer"]["question"] == "社保卡怎么办理"
    assert float(ticket["auto_answer"]["score"]) >= 0.7
    assert ticket["reply_text"] == knowledge.get("kb-0001").answer
    assert len(driver.messages(ticket["ticket_id"])) == 1
    assert "auto_answered" in history_types(driver, ticket["ticket_id"])
    # AND the citizen gets one notice with the answer and the offer of a person
    notices = events.details("CitizenNoticeRequested")
    assert [notice["notice_id"] for notice in notices] == [f"{ticket['ticket_id']}:auto_answer"]
    assert notices[0]["text"].startswith(knowledge.get("kb-0001").answer)
    assert "回复「人工」转人工服务" in notices[0]["text"]
    # AND the profile remembers the ticket for a handoff
    assert driver.profile(open_id)["auto_answer_ticket_id"] == ticket["ticket_id"]


@pytest.mark.parametrize(("reply", "reason"), [("人工", "asked_for_person"), ("没用", "dissatisfied")])
def test_auto_answer_handoff_submits_ticket(
    driver: TicketWriteDriver,
    events: RecordingEventsClient,
    knowledge: KnowledgeRepository,
    pinned_clock: Callable[[float], None],
    reply: str,
    reason: str,
) -> None:
    # GIVEN a consultation answered from the knowledge base
    open_id = open_id_of(2)
    ticket_id = answered(driver, events, open_id)["ticket_id"]

    # WHEN the citizen replies 「人工」 (or that it did not help) an hour later
    pinned_clock(BASE_TIME + HOUR)
    failures = driver.send(driver.text(open_id, reply, BASE_TIME + HOUR))

    # THEN the same ticket joins the normal flow as submitted, without a second ticket
    assert failures == []
    assert [item["ticket_id"] for item in driver.tickets()] == [ticket_id]
    stored = driver.ticket(ticket_id)
    assert stored["status"] == "submitted"
    assert "reply_text" not in stored
    assert stored["auto_answer"]["entry_id"] == "kb-0001"
    handoff = [item for item in driver.items_of_type("history") if item["entry_type"] == "action:handoff"]
    assert [entry["detail"]["reason"] for entry in handoff] == [reason]
    # AND the citizen gets the normal acknowledgement, and the profile no longer names the ticket
    notices = events.details("CitizenNoticeRequested")
    assert notices[-1]["kind"] == "acknowledgement"
    assert ticket_id in notices[-1]["text"]
    assert "auto_answer_ticket_id" not in driver.profile(open_id)


def test_auto_answer_closed_by_sweep_after_period(
    driver: TicketWriteDriver,
    events: RecordingEventsClient,
    knowledge: KnowledgeRepository,
    sweeper: ModuleType,
    pinned_clock: Callable[[float], None],
    lambda_context: Any,
) -> None:
    # GIVEN a consultation answered from the knowledge base and no reply from the citizen
    ticket_id = answered(driver, events, open_id_of(3))["ticket_id"]
    notices_before = len(events.details("CitizenNoticeRequested"))

    # WHEN the sweep runs before and after the 24 hours, and once more
    pinned_clock(BASE_TIME + 23 * HOUR)
    early = sweeper.lambda_handler(SCHEDULED_EVENT, lambda_context)
    pinned_clock(BASE_TIME + 24 * HOUR + 60)
    due = sweeper.lambda_handler(SCHEDULED_EVENT, lambda_context)
    version_after_close = driver.ticket(ticket_id)["version"]
    again = sweeper.lambda_handler(SCHEDULED_EVENT, lambda_context)

    # THEN only the run after the period closes it, once, as the system
    assert early["auto_closed"] == 0
    assert due["auto_closed"] == 1
    assert again["auto_closed"] == 0
    stored = driver.ticket(ticket_id)
    assert stored["status"] == "closed"
    assert stored["version"] == version_after_close
    closes = [item for item in driver.items_of_type("history") if item["entry_type"] == "action:close"]
    assert [(entry["actor"], entry["detail"]["reason"]) for entry in closes] == [("system", "auto_answer")]
    # AND the citizen gets neither a closing notice nor a rating invitation
    assert len(events.details("CitizenNoticeRequested")) == notices_before
    assert (
        sweeper.table.get_item(Key={"PK": "OUTBOX#draft-submit", "SK": f"{ticket_id}:auto_close"}).get("Item")
        is None
    )


def test_auto_answer_handoff_after_period_gets_fixed_reply(
    driver: TicketWriteDriver,
    events: RecordingEventsClient,
    knowledge: KnowledgeRepository,
    pinned_clock: Any,
) -> None:
    # GIVEN an answer whose handoff period ended before the sweep closed it
    open_id = open_id_of(4)
    ticket_id = answered(driver, events, open_id)["ticket_id"]

    # WHEN the citizen replies 「人工」 25 hours later
    pinned_clock(BASE_TIME + 25 * HOUR)
    driver.send(driver.text(open_id, "人工", BASE_TIME + 25 * HOUR))

    # THEN the answer stays as it was, no draft opens, and the citizen is told how to report a problem
    assert driver.ticket(ticket_id)["status"] == "replied"
    assert [ticket["ticket_id"] for ticket in driver.tickets()] == [ticket_id]
    reply = events.details("CitizenNoticeRequested")[-1]
    assert reply["text"] == texts.text("citizen.handoff_unavailable")
    assert "auto_answer_ticket_id" not in driver.profile(open_id)


def test_auto_answer_handoff_sent_in_period_processed_late_submits(
    driver: TicketWriteDriver,
    events: RecordingEventsClient,
    knowledge: KnowledgeRepository,
    pinned_clock: Any,
) -> None:
    # GIVEN an answer, and 「人工」 sent 23 hours after it
    open_id = open_id_of(10)
    ticket_id = answered(driver, events, open_id)["ticket_id"]
    record = driver.text(open_id, "人工", BASE_TIME + 23 * HOUR)

    # WHEN ticket-write gets to the message only after the 24-hour period (a backlog)
    pinned_clock(BASE_TIME + 25 * HOUR)
    failures = driver.send(record)

    # THEN the period is judged by the message's CreateTime: the answer is handed to staff, no draft opens
    assert failures == []
    assert [ticket["ticket_id"] for ticket in driver.tickets()] == [ticket_id]
    assert driver.ticket(ticket_id)["status"] == "submitted"
    assert events.details("CitizenNoticeRequested")[-1]["kind"] == "acknowledgement"


def test_auto_answer_handoff_create_time_capped_at_now(
    driver: TicketWriteDriver,
    events: RecordingEventsClient,
    knowledge: KnowledgeRepository,
    pinned_clock: Any,
) -> None:
    # GIVEN an answer whose period ended, and 「人工」 whose CreateTime claims a time inside the period
    open_id = open_id_of(11)
    ticket_id = answered(driver, events, open_id)["ticket_id"]
    pinned_clock(BASE_TIME + 25 * HOUR)

    # WHEN ticket-write processes it (a CreateTime after now cannot stretch the period either)
    driver.send(driver.text(open_id, "人工", BASE_TIME + 26 * HOUR))

    # THEN the answer is not handed over
    assert driver.ticket(ticket_id)["status"] == "replied"


def test_auto_answer_handoff_word_without_answer_gets_fixed_reply(
    driver: TicketWriteDriver, events: RecordingEventsClient, knowledge: KnowledgeRepository
) -> None:
    # GIVEN a citizen with no answer from the knowledge base and no draft
    open_id = open_id_of(12)

    # WHEN the citizen sends 「人工」 and then 「没用」
    failures = driver.send(
        driver.text(open_id, "人工", BASE_TIME), driver.text(open_id, "没用", BASE_TIME + 5)
    )

    # THEN no ticket opens and each message gets the fixed reply
    assert failures == []
    assert driver.tickets() == []
    notices = events.details("CitizenNoticeRequested")
    assert [notice["text"] for notice in notices] == [texts.text("citizen.handoff_unavailable")] * 2


def test_auto_answer_handoff_word_joins_open_draft(
    driver: TicketWriteDriver, events: RecordingEventsClient, knowledge: KnowledgeRepository
) -> None:
    # GIVEN a citizen writing a complaint
    open_id = open_id_of(13)
    driver.send(driver.text(open_id, "物业维修一直拖着", BASE_TIME))

    # WHEN the citizen adds 「没有解决」 within the collecting window
    driver.send(driver.text(open_id, "没有解决", BASE_TIME + 30))

    # THEN the words are part of the complaint
    (ticket,) = driver.tickets()
    assert ticket["status"] == "collecting"
    assert ticket["message_count"] == 2


def test_auto_answer_near_miss_opens_draft(
    driver: TicketWriteDriver, events: RecordingEventsClient, knowledge: KnowledgeRepository
) -> None:
    # GIVEN a message that names a knowledge-base subject but scores below the threshold
    open_id = open_id_of(5)

    # WHEN ticket-write processes it
    driver.send(driver.text(open_id, NEAR_MISS, BASE_TIME))

    # THEN the normal draft flow runs
    (ticket,) = driver.tickets()
    assert ticket["status"] == "collecting"
    assert "auto_answer" not in ticket
    assert [notice["notice_id"] for notice in events.details("CitizenNoticeRequested")] == [
        f"{ticket['ticket_id']}:ack"
    ]


def test_auto_answer_open_draft_wins(
    driver: TicketWriteDriver, events: RecordingEventsClient, knowledge: KnowledgeRepository
) -> None:
    # GIVEN a citizen with an open draft
    open_id = open_id_of(6)
    driver.send(driver.text(open_id, "小区门口的路灯坏了", BASE_TIME))

    # WHEN the citizen then asks a question the knowledge base answers, within the collecting window
    driver.send(driver.text(open_id, QUESTION, BASE_TIME + 30))

    # THEN the question joins the draft and nothing is answered from the base
    (ticket,) = driver.tickets()
    assert ticket["status"] == "collecting"
    assert ticket["message_count"] == 2
    assert all(notice["kind"] != "self_service" for notice in events.details("CitizenNoticeRequested"))


def test_auto_answer_voice_recognition_answered(
    driver: TicketWriteDriver, events: RecordingEventsClient, knowledge: KnowledgeRepository
) -> None:
    # GIVEN a voice message whose recognition asks the question
    open_id = open_id_of(7)

    # WHEN ticket-write processes it
    driver.send(voice(driver, open_id, "社保卡怎么办理", BASE_TIME))

    # THEN it is answered from the base and the voice file is still collected
    (ticket,) = driver.tickets()
    assert ticket["auto_answer"]["entry_id"] == "kb-0001"
    assert [job["msg_type"] for job in driver.media_jobs()] == ["voice"]


def test_auto_answer_redelivery_writes_nothing_twice(
    driver: TicketWriteDriver, events: RecordingEventsClient, knowledge: KnowledgeRepository
) -> None:
    # GIVEN one consultation push
    record = driver.text(open_id_of(8), QUESTION, BASE_TIME)

    # WHEN SQS delivers it twice
    driver.send(record)
    driver.send(record)

    # THEN there is one ticket, one message and one answer
    assert len(driver.tickets()) == 1
    assert len(driver.items_of_type("message")) == 1
    assert len(events.details("CitizenNoticeRequested")) == 1


class FailingTable:
    """The tickets table whose queries fail as DynamoDB's throttling does; everything else is real."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def query(self, **kwargs: Any) -> Any:
        raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "Query")


def test_auto_answer_knowledge_read_failure_keeps_normal_flow(
    driver: TicketWriteDriver,
    events: RecordingEventsClient,
    knowledge: KnowledgeRepository,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # GIVEN the knowledge base cannot be read
    monkeypatch.setattr(driver.module.knowledge, "table", FailingTable(driver.module.knowledge.table))

    # WHEN a consultation arrives
    failures = driver.send(driver.text(open_id_of(9), QUESTION, BASE_TIME))

    # THEN the push is not lost: it opens a normal draft, and the failure is logged as a warning
    assert failures == []
    (ticket,) = driver.tickets()
    assert ticket["status"] == "collecting"
    assert "knowledge base unavailable" in caplog.text


def test_auto_answer_staff_close_keeps_pending_rating(
    driver: TicketWriteDriver,
    events: RecordingEventsClient,
    knowledge: KnowledgeRepository,
    staff_api: ModuleType,
    lambda_context: Any,
) -> None:
    # GIVEN a citizen with an answer from the knowledge base and a complaint that staff close, so the
    # citizen is invited to rate the complaint
    open_id = open_id_of(20)
    answer_id = answered(driver, events, open_id)["ticket_id"]
    driver.table.put_item(Item=ticket_item("DG-COMPLAINT", "replied", open_id=open_id, department="cgj"))
    assert act(staff_api, lambda_context, "DG-COMPLAINT", {"action": "close", "actor": "li"})["status"] == 200

    # WHEN staff close the answer too, and the citizen then replies 3 (不满意) to the invitation
    closed = act(staff_api, lambda_context, answer_id, {"action": "close", "actor": "li"})
    pending = driver.profile(open_id)["pending_rating_ticket_id"]
    driver.send(driver.text(open_id, "3", BASE_TIME + 60))

    # THEN the answer closes without taking over the invitation, and the 3 reopens the complaint
    assert closed["status"] == 200
    assert pending == "DG-COMPLAINT"
    assert driver.ticket(answer_id)["status"] == "closed"
    assert driver.ticket("DG-COMPLAINT")["status"] == "dispatched"
    assert sorted(ticket["ticket_id"] for ticket in driver.tickets()) == sorted([answer_id, "DG-COMPLAINT"])


def test_auto_answer_staff_handoff_submits_ticket(
    driver: TicketWriteDriver,
    events: RecordingEventsClient,
    knowledge: KnowledgeRepository,
    staff_api: ModuleType,
    lambda_context: Any,
    pinned_clock: Callable[[float], None],
) -> None:
    # GIVEN an answer from the knowledge base that staff find insufficient
    open_id = open_id_of(21)
    answer_id = answered(driver, events, open_id)["ticket_id"]
    queue = driver.stack.ref("OutboundQueue")
    sqs = driver.stack.client("sqs")
    drain_event_details(sqs, queue)

    # WHEN staff take it over, and then try to take it over again
    pinned_clock(BASE_TIME + 2 * HOUR)
    body = {"action": "handoff", "actor": "dispatcher-li", "note": "答复不完整"}
    taken = act(staff_api, lambda_context, answer_id, body)
    again = act(staff_api, lambda_context, answer_id, body)

    # THEN the ticket is submitted for the normal flow, keeping the answer given, once
    assert taken["status"] == 200
    stored = driver.ticket(answer_id)
    assert stored["status"] == "submitted"
    assert stored["handed_off_at"] == stored["submitted_at"]
    assert "reply_text" not in stored
    assert stored["auto_answer"]["entry_id"] == "kb-0001"
    (entry,) = [item for item in driver.items_of_type("history") if item["entry_type"] == "action:handoff"]
    assert (entry["actor"], entry["detail"]["reason"], entry["detail"]["note"]) == (
        "dispatcher-li",
        "staff_takeover",
        "答复不完整",
    )
    assert again["status"] == 409
    # AND the citizen is told that staff took the consultation over
    notices = [detail for detail in drain_event_details(sqs, queue) if detail.get("kind")]
    assert [(notice["kind"], notice["text"]) for notice in notices] == [
        ("acknowledgement", texts.text("citizen.staff_handoff", ticket_id=answer_id))
    ]
    # AND staff handle it as usual
    accept = {"action": "accept", "actor": "dispatcher-li", "appeal_type": "consultation"}
    assert act(staff_api, lambda_context, answer_id, accept)["status"] == 200


def test_auto_answer_staff_handoff_of_staff_reply_is_409(
    driver: TicketWriteDriver, staff_api: ModuleType, lambda_context: Any
) -> None:
    # GIVEN a ticket a department replied to
    driver.table.put_item(Item=ticket_item("DG-REPLIED", "replied", department="cgj"))

    # WHEN staff try to hand it off
    response = act(staff_api, lambda_context, "DG-REPLIED", {"action": "handoff", "actor": "li"})

    # THEN 409: only an answer from the knowledge base can be handed off
    assert response["status"] == 409
    assert driver.ticket("DG-REPLIED")["status"] == "replied"


def test_auto_answer_not_a_merge_target(
    driver: TicketWriteDriver,
    events: RecordingEventsClient,
    knowledge: KnowledgeRepository,
    staff_api: ModuleType,
    lambda_context: Any,
) -> None:
    # GIVEN an answer from the knowledge base and a submitted ticket about the same matter
    answer_id = answered(driver, events, open_id_of(22))["ticket_id"]
    driver.table.put_item(Item=ticket_item("DG-DUP", "submitted", open_id=open_id_of(23)))
    merge = {"action": "merge", "actor": "li", "into": answer_id}

    # WHEN staff merge the ticket into the answer, then take the answer over and merge again
    refused = act(staff_api, lambda_context, "DG-DUP", merge)
    act(staff_api, lambda_context, answer_id, {"action": "handoff", "actor": "li"})
    merged = act(staff_api, lambda_context, "DG-DUP", merge)

    # THEN the first merge is refused with the reason, and the taken-over ticket absorbs the duplicate
    assert refused["status"] == 409
    assert refused["message"] == texts.text(
        "api_error.conflict", detail=texts.text("api_error.merge_into_auto_answer", ticket_id=answer_id)
    )
    assert merged["status"] == 200
    assert driver.ticket(answer_id)["merged_tickets"] == {"DG-DUP"}
