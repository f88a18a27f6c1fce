"""deadline-watch: reminders, overdue flags and escalation (督办), each once per deadline, against moto."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from types import ModuleType
from typing import Any

import pytest

from intake import clock
from intake.deadline_watch import WatchResult
from intake.event_bus import EventPublisher
from intake.keys import TICKET_SK, ticket_pk
from intake.ticket_actions import TicketActions
from intake.workflow import ApproveExtensionRequest, ExtendRequest, ReplyRequest
from intake.workflow_config import get_workflow_config
from intake.working_days import get_calendar
from tests.conftest import drain_event_details
from tests.unit.staff_api_events import ticket_item

TICKET_ID = "DG20260901-0001"
# Friday 2026-09-18 17:30 China time. The next working day is the make-up Sunday 2026-09-20 (国庆 调休).
DEADLINE_FRI = "2026-09-18T09:30:00.000Z"
# Tuesday 2026-09-29 17:30 China time, right before 国庆 (10-01 to 10-07).
DEADLINE_BEFORE_HOLIDAY = "2026-09-29T09:30:00.000Z"


def china(text: str) -> float:
    return datetime.fromisoformat(f"{text}+08:00").timestamp()


def scheduled_event() -> dict[str, Any]:
    return {
        "version": "0",
        "id": "0d3c4a9e-5b1f-4c55-9a2e-2f6f1f0a7c11",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2026-09-17T09:45:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/deadline-watch-every-fifteen-minutes"],
        "detail": {},
    }


@pytest.fixture
def table(stack: Any) -> Any:
    return stack.session.resource("dynamodb").Table(stack.ref("TicketsTable"))


@pytest.fixture
def watch(load_function: Callable[..., ModuleType]) -> ModuleType:
    return load_function("DeadlineWatchFunction")


@pytest.fixture
def ticket_changes(stack: Any) -> Callable[[], list[dict[str, Any]]]:
    """Route the bus's TicketChanged events to a test queue and return a function that drains their details."""
    sqs = stack.client("sqs")
    events = stack.client("events")
    url = sqs.create_queue(QueueName="deadline-watch-test-ticket-changes")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    bus = stack.ref("TicketEventBus")
    events.put_rule(
        Name="deadline-watch-test",
        EventBusName=bus,
        EventPattern=json.dumps({"detail-type": ["TicketChanged"]}),
    )
    events.put_targets(Rule="deadline-watch-test", EventBusName=bus, Targets=[{"Id": "queue", "Arn": arn}])

    return lambda: drain_event_details(sqs, url)


@pytest.fixture
def run_at(
    watch: ModuleType, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> Callable[[float], dict[str, int]]:
    """Return a function that invokes the handler with the scheduled event at a pinned time."""

    def run(at: float) -> dict[str, int]:
        monkeypatch.setattr(clock, "now", lambda: at)
        result: dict[str, int] = watch.lambda_handler(scheduled_event(), lambda_context)
        return result

    return run


def put_ticket(
    table: Any, status: str, deadline: str | None, ticket_id: str = TICKET_ID, **fields: Any
) -> None:
    table.put_item(Item=ticket_item(ticket_id, status, deadline=deadline, department="cgj", **fields))


def stored(table: Any, ticket_id: str = TICKET_ID) -> dict[str, Any]:
    item: dict[str, Any] = table.get_item(Key={"PK": ticket_pk(ticket_id), "SK": TICKET_SK})["Item"]
    return item


def history_types(table: Any, ticket_id: str = TICKET_ID) -> list[str]:
    response = table.query(
        KeyConditionExpression="PK = :pk AND begins_with(SK, :hist)",
        ExpressionAttributeValues={":pk": ticket_pk(ticket_id), ":hist": "HIST#"},
    )
    return [str(item["entry_type"]) for item in response["Items"]]


def staff_actions(watch: ModuleType) -> TicketActions:
    publisher = EventPublisher(watch.events_client, watch.settings.event_bus_name)
    return TicketActions(watch.repository, publisher, get_workflow_config(), get_calendar())


class FailingOnceEventsClient:
    """An EventBridge client whose first PutEvents call reports every entry as failed."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls = 0

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # boto3 names the argument Entries
        self.calls += 1
        if self.calls == 1:
            failed = [{"ErrorCode": "InternalFailure", "ErrorMessage": "injected"} for _ in Entries]
            return {"FailedEntryCount": len(Entries), "Entries": failed}
        response: dict[str, Any] = self._client.put_events(Entries=Entries)
        return response


def test_deadline_watch_reminds_once(
    table: Any, run_at: Callable[[float], dict[str, int]], ticket_changes: Callable[[], list[dict[str, Any]]]
) -> None:
    # GIVEN a dispatched ticket due Friday 17:30
    put_ticket(table, "dispatched", DEADLINE_FRI)

    # WHEN the watch runs Thursday before 17:30, after it, and once more
    before = run_at(china("2026-09-17T17:00:00"))
    due = run_at(china("2026-09-17T17:45:00"))
    again = run_at(china("2026-09-17T18:00:00"))

    # THEN only the run after Thursday 17:30 reminds, once
    assert before["reminders"] == 0
    assert due["reminders"] == 1
    assert again["reminders"] == 0
    assert history_types(table) == ["deadline_reminder"]
    assert stored(table)["reminded_for_deadline"] == DEADLINE_FRI
    # AND one TicketChanged event names the deadline and the department
    changes = ticket_changes()
    assert [(c["change"], c["detail"]["deadline"], c["detail"]["department"]) for c in changes] == [
        ("deadline_reminder", DEADLINE_FRI, "cgj")
    ]


def test_deadline_watch_concurrent_runs_remind_once(table: Any, watch: ModuleType) -> None:
    # GIVEN a ticket due tomorrow that two runs read before either writes
    put_ticket(table, "accepted", DEADLINE_FRI)
    now = china("2026-09-17T17:45:00")
    first_run, second_run = watch.build_watch(), watch.build_watch()
    first_read = list(first_run.candidates(now))
    second_read = list(second_run.candidates(now))

    # WHEN both runs record what they read
    first, second = WatchResult(), WatchResult()
    for ticket in first_read:
        first_run.apply(ticket, now, first)
    for ticket in second_read:
        second_run.apply(ticket, now, second)

    # THEN the first run reminds and the second one writes nothing
    assert first.reminders == 1
    assert first.skipped == 0
    assert second.reminders == 0
    assert second.skipped == 1
    assert history_types(table) == ["deadline_reminder"]


def test_deadline_watch_moved_deadline_reminds_again(
    table: Any,
    watch: ModuleType,
    run_at: Callable[[float], dict[str, int]],
    ticket_changes: Callable[[], list[dict[str, Any]]],
) -> None:
    # GIVEN a reminded ticket whose deadline an approved extension moves by 2 working days,
    # from Friday 09-18 over the make-up Sunday 09-20 to Monday 09-21 17:30
    put_ticket(table, "dispatched", DEADLINE_FRI)
    run_at(china("2026-09-17T17:45:00"))
    actions = staff_actions(watch)
    extend_at = china("2026-09-18T09:00:00")
    actions.apply(
        TICKET_ID,
        ExtendRequest(action="extend", actor="dept-wang", reason="需现场复核", working_days=2),
        "arn",
        extend_at,
    )
    actions.apply(
        TICKET_ID, ApproveExtensionRequest(action="approve_extension", actor="lead-zhao"), "arn", extend_at
    )
    ticket_changes()

    # WHEN the watch runs Friday evening and on the make-up Sunday after 17:30
    friday = run_at(china("2026-09-18T18:00:00"))
    sunday = run_at(china("2026-09-20T17:45:00"))

    # THEN the new deadline gets its own reminder on the make-up working day, not before
    assert stored(table)["deadline"] == "2026-09-21T09:30:00.000Z"
    assert friday["reminders"] == 0
    assert sunday["reminders"] == 1
    assert stored(table)["reminded_for_deadline"] == "2026-09-21T09:30:00.000Z"
    assert [c["detail"]["deadline"] for c in ticket_changes()] == ["2026-09-21T09:30:00.000Z"]


def test_deadline_watch_flags_overdue_once(
    table: Any, run_at: Callable[[float], dict[str, int]], ticket_changes: Callable[[], list[dict[str, Any]]]
) -> None:
    # GIVEN a returned ticket whose deadline passed at Friday 17:30 without a reminder run before
    put_ticket(table, "returned", DEADLINE_FRI)

    # WHEN the watch runs after the deadline, twice
    first = run_at(china("2026-09-18T17:45:00"))
    second = run_at(china("2026-09-18T18:00:00"))

    # THEN the ticket is flagged overdue once, without a late reminder
    assert first["overdue"] == 1
    assert first["reminders"] == 0
    assert second["overdue"] == 0
    assert stored(table)["overdue_since"] == DEADLINE_FRI
    assert history_types(table) == ["overdue"]
    assert [c["change"] for c in ticket_changes()] == ["overdue"]


def test_deadline_watch_escalates_across_holiday(
    table: Any, run_at: Callable[[float], dict[str, int]], ticket_changes: Callable[[], list[dict[str, Any]]]
) -> None:
    # GIVEN a ticket due Tuesday 09-29 17:30. Five working days later, skipping 国庆 and counting the
    # make-up Saturday 10-10, is Monday 10-12 17:30
    put_ticket(table, "dispatched", DEADLINE_BEFORE_HOLIDAY)

    # WHEN the watch runs the next day, on 10-12 before and after 17:30, and once more
    next_day = run_at(china("2026-09-30T10:00:00"))
    before = run_at(china("2026-10-12T17:00:00"))
    after = run_at(china("2026-10-12T17:45:00"))
    again = run_at(china("2026-10-12T18:00:00"))

    # THEN the ticket is flagged overdue the next day and escalated once, after 10-12 17:30
    assert next_day["overdue"] == 1
    assert next_day["escalations"] == 0
    assert before["escalations"] == 0
    assert after["escalations"] == 1
    assert again["escalations"] == 0
    assert stored(table)["escalated_at"] == clock.iso_utc(china("2026-10-12T17:45:00"))
    assert history_types(table) == ["overdue", "escalated"]
    escalated = [c for c in ticket_changes() if c["change"] == "escalated"]
    assert [(c["detail"]["department"], c["detail"]["working_days_overdue"]) for c in escalated] == [
        ("cgj", 5)
    ]


def test_deadline_watch_skips_awaiting_citizen(
    table: Any, run_at: Callable[[float], dict[str, int]], ticket_changes: Callable[[], list[dict[str, Any]]]
) -> None:
    # GIVEN a ticket paused for the citizen whose deadline date is behind the clock
    put_ticket(
        table,
        "awaiting_citizen",
        DEADLINE_FRI,
        paused_at="2026-09-17T02:00:00.000Z",
        resume_status="dispatched",
    )

    # WHEN the watch runs well past the deadline
    result = run_at(china("2026-10-12T17:45:00"))

    # THEN the paused ticket is not even a candidate
    assert result["checked"] == 0
    assert history_types(table) == []
    assert ticket_changes() == []


@pytest.mark.parametrize("status", ["replied", "closed"])
def test_deadline_watch_skips_finished_ticket(
    table: Any, run_at: Callable[[float], dict[str, int]], status: str
) -> None:
    # GIVEN a replied or closed ticket that kept its deadline
    put_ticket(table, status, DEADLINE_FRI)

    # WHEN the watch runs past the deadline and the grace period
    result = run_at(china("2026-10-12T17:45:00"))

    # THEN nothing is recorded on it
    assert result["checked"] == 0
    assert history_types(table) == []
    assert "overdue_since" not in stored(table)


def test_deadline_watch_skips_changed_ticket(table: Any, watch: ModuleType) -> None:
    # GIVEN an overdue ticket the watch read, then staff replied before the watch wrote
    put_ticket(table, "dispatched", DEADLINE_FRI)
    now = china("2026-09-18T17:45:00")
    run = watch.build_watch()
    read = list(run.candidates(now))
    staff_actions(watch).apply(
        TICKET_ID, ReplyRequest(action="reply", actor="dept-wang", text="已处理"), "arn", now
    )

    # WHEN the watch records what it read
    result = WatchResult()
    for ticket in read:
        run.apply(ticket, now, result)

    # THEN the change is skipped and the ticket carries no overdue flag
    assert result.overdue == 0
    assert result.skipped == 1
    assert "overdue_since" not in stored(table)
    assert "overdue" not in history_types(table)


def test_deadline_watch_retries_failed_publish(
    table: Any,
    watch: ModuleType,
    run_at: Callable[[float], dict[str, int]],
    ticket_changes: Callable[[], list[dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN a ticket due a reminder and EventBridge failing the first publish
    put_ticket(table, "dispatched", DEADLINE_FRI)
    monkeypatch.setattr(watch, "events_client", FailingOnceEventsClient(watch.events_client))

    # WHEN the watch runs, fails to publish, and runs again
    with pytest.raises(Exception, match="EventBridge rejected"):
        run_at(china("2026-09-17T17:45:00"))
    second = run_at(china("2026-09-17T18:00:00"))

    # THEN the reminder was recorded once and its event went out with the second run
    assert second["reminders"] == 0
    assert second["published"] == 1
    assert history_types(table) == ["deadline_reminder"]
    assert [c["change"] for c in ticket_changes()] == ["deadline_reminder"]


def test_deadline_watch_empty_table(run_at: Callable[[float], dict[str, int]]) -> None:
    # GIVEN no tickets at all

    # WHEN the watch runs
    result = run_at(china("2026-09-17T17:45:00"))

    # THEN it reports zero of everything
    assert result == {
        "checked": 0,
        "reminders": 0,
        "overdue": 0,
        "escalations": 0,
        "skipped": 0,
        "published": 0,
    }
