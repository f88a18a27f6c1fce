"""The deadline watch: a reminder before a ticket's deadline, the overdue flag, and escalation (督办).

Only tickets whose handling clock runs are watched (`deadlines.CLOCK_STATUSES`: accepted, dispatched,
returned). A ticket awaiting the citizen has its clock held, and a replied ticket has stopped it.
StatusIndex sorts these statuses by deadline, so one key range per status contains every candidate.

Each change happens at most once per deadline. The ticket keeps the deadline it was made for in
`reminded_for_deadline`, `overdue_for_deadline` and `escalated_for_deadline`. The update is
conditioned on the status and deadline that were read and on that marker, so a re-run, a concurrent
run or a ticket that changed meanwhile (replied, paused, extended) writes nothing. A deadline moved
by an extension or a resume gets its own reminder, flag and escalation.

The update, its history entry and the `TicketChanged` event to publish are one transaction; the
event waits in this producer's outbox item (`PK=OUTBOX#deadline-watch`) until a publish succeeds,
so a failed PutEvents is retried by the next run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from aws_lambda_powertools import Logger
from boto3.dynamodb.conditions import Key

from intake import clock, deadlines
from intake.event_bus import EventPublisher
from intake.history import history_item
from intake.keys import STATUS_INDEX, outbox_pk, status_gsi_pk
from intake.records import TicketEvent
from intake.ticket_repository import (
    ConcurrentTicketChangeError,
    TicketRepository,
    put_new,
    ticket_key,
    update,
)
from intake.workflow_config import DeadlineWatchConfig
from intake.working_days import WorkingCalendar, office_day_end

logger = Logger(child=True)

OUTBOX_PRODUCER = "deadline-watch"
# An outbox entry that could not be published for a week is dropped by the table's TTL.
OUTBOX_TTL_SECONDS = 7 * 86400
SYSTEM_ACTOR = "system"


class DeadlineChange(StrEnum):
    """Change the watch records. The value is the history `entry_type` and the event's `change`."""

    REMINDER = "deadline_reminder"
    OVERDUE = "overdue"
    ESCALATED = "escalated"


# The ticket attribute holding the deadline each change was made for.
MARKERS = {
    DeadlineChange.REMINDER: "reminded_for_deadline",
    DeadlineChange.OVERDUE: "overdue_for_deadline",
    DeadlineChange.ESCALATED: "escalated_for_deadline",
}


def reminder_horizon(now: float, lead_working_days: int, calendar: WorkingCalendar) -> float:
    """Return the latest deadline that is due a reminder at Unix time `now`.

    With a lead of 1, a deadline gets its reminder from 17:30 of the working day before the
    deadline's day, when at most one working day of work is left. From a moment within the office
    hours of working day W, the deadlines up to 17:30 of the (lead - 1)th working day after W qualify.
    """
    start_day = calendar.clock_start_day(now)
    return office_day_end(calendar.add_working_days(start_day, lead_working_days - 1))


def escalation_time(deadline: float, grace_working_days: int, calendar: WorkingCalendar) -> float:
    """Return when a ticket still open after `deadline` is escalated: 17:30 of the Nth working day after."""
    return deadlines.extended_deadline(deadline, grace_working_days, calendar)


def due_changes(
    deadline: float, now: float, config: DeadlineWatchConfig, calendar: WorkingCalendar
) -> list[DeadlineChange]:
    """Return the changes a ticket with this deadline is due at `now`, before the once-only markers."""
    if now <= deadline:
        horizon = reminder_horizon(now, config.reminder_lead_working_days, calendar)
        return [DeadlineChange.REMINDER] if deadline <= horizon else []
    due = [DeadlineChange.OVERDUE]
    if now >= escalation_time(deadline, config.escalation_grace_working_days, calendar):
        due.append(DeadlineChange.ESCALATED)
    return due


@dataclass
class WatchResult:
    """Counts of one run. `skipped` counts changes lost to a concurrent change of the ticket."""

    checked: int = 0
    reminders: int = 0
    overdue: int = 0
    escalations: int = 0
    skipped: int = 0
    published: int = 0

    def count(self, change: DeadlineChange) -> None:
        if change is DeadlineChange.REMINDER:
            self.reminders += 1
        elif change is DeadlineChange.OVERDUE:
            self.overdue += 1
        else:
            self.escalations += 1

    def summary(self) -> dict[str, int]:
        return {
            "checked": self.checked,
            "reminders": self.reminders,
            "overdue": self.overdue,
            "escalations": self.escalations,
            "skipped": self.skipped,
            "published": self.published,
        }


def _marker_update(ticket: dict[str, Any], change: DeadlineChange, now: float) -> dict[str, Any]:
    """Return the ticket update that records `change`, conditioned on the status, deadline and marker."""
    deadline_iso = str(ticket["deadline"])
    set_values: dict[str, Any] = {MARKERS[change]: deadline_iso}
    if change is DeadlineChange.OVERDUE:
        set_values["overdue_since"] = deadline_iso
    elif change is DeadlineChange.ESCALATED:
        set_values["escalated_at"] = clock.iso_utc(now)
    return update(
        ticket_key(str(ticket["ticket_id"])),
        set_values=set_values,
        condition=(
            "#c_status = :c_status AND #c_deadline = :c_deadline"
            " AND (attribute_not_exists(#c_marker) OR #c_marker <> :c_deadline)"
        ),
        condition_values={
            "#c_status": "status",
            "#c_deadline": "deadline",
            "#c_marker": MARKERS[change],
            ":c_status": str(ticket["status"]),
            ":c_deadline": deadline_iso,
        },
    )


def _change_detail(
    ticket: dict[str, Any], change: DeadlineChange, now: float, calendar: WorkingCalendar
) -> dict[str, Any]:
    detail: dict[str, Any] = {"deadline": ticket["deadline"], "department": ticket.get("department")}
    if change is not DeadlineChange.REMINDER:
        deadline = deadlines.parse_iso(str(ticket["deadline"]))
        detail["working_days_overdue"] = calendar.working_days_elapsed(deadline, now)
    return detail


def _outbox_item(ticket_id: str, entry: dict[str, Any], event: TicketEvent, now: float) -> dict[str, Any]:
    return {
        "PK": outbox_pk(OUTBOX_PRODUCER),
        "SK": f"{ticket_id}#{entry['SK']}",
        "item_type": "outbox",
        "ticket_events": json.dumps([event.model_dump(mode="json")], ensure_ascii=False),
        "expires_at": int(now) + OUTBOX_TTL_SECONDS,
    }


class DeadlineWatch:
    """Finds tickets near or past their deadline and records each due change once."""

    def __init__(
        self,
        repository: TicketRepository,
        publisher: EventPublisher,
        config: DeadlineWatchConfig,
        calendar: WorkingCalendar,
    ) -> None:
        self._repository = repository
        self._publisher = publisher
        self._config = config
        self._calendar = calendar

    def candidates(self, now: float) -> Iterator[dict[str, Any]]:
        """Yield the ticket items of the clock statuses whose deadline is due a reminder or has passed."""
        horizon = clock.iso_utc(
            reminder_horizon(now, self._config.reminder_lead_working_days, self._calendar)
        )
        for status in sorted(deadlines.CLOCK_STATUSES):
            arguments: dict[str, Any] = {
                "IndexName": STATUS_INDEX,
                "KeyConditionExpression": Key("GSI1PK").eq(status_gsi_pk(status))
                & Key("GSI1SK").lte(horizon),
            }
            while True:
                response = self._repository.table.query(**arguments)
                # A ticket without a deadline sorts by the time it entered its status, and it has no clock to watch.
                yield from (item for item in response.get("Items", []) if item.get("deadline"))
                if "LastEvaluatedKey" not in response:
                    break
                arguments["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def apply(self, ticket: dict[str, Any], now: float, result: WatchResult) -> None:
        """Record every change due for one ticket as read from the index; count each in `result`."""
        deadline = deadlines.parse_iso(str(ticket["deadline"]))
        for change in due_changes(deadline, now, self._config, self._calendar):
            if ticket.get(MARKERS[change]) == ticket["deadline"]:
                continue
            if self._record(ticket, change, now):
                result.count(change)
            else:
                result.skipped += 1

    def _record(self, ticket: dict[str, Any], change: DeadlineChange, now: float) -> bool:
        """Commit one change with its history entry and outbox event. Return False when the ticket moved on."""
        ticket_id = str(ticket["ticket_id"])
        detail = _change_detail(ticket, change, now, self._calendar)
        entry = history_item(ticket_id, entry_type=str(change), actor=SYSTEM_ACTOR, at=now, detail=detail)
        event = TicketEvent(
            ticket_id=ticket_id,
            change=str(change),
            status=str(ticket["status"]),
            actor=SYSTEM_ACTOR,
            at=now,
            detail={**detail, "history_sk": entry["SK"]},
        )
        entries = [
            _marker_update(ticket, change, now),
            put_new(entry),
            put_new(_outbox_item(ticket_id, entry, event, now)),
        ]
        try:
            self._repository.commit(entries, marker_index=None)
        except ConcurrentTicketChangeError:
            logger.info(
                "ticket changed before the deadline watch wrote, skipped", extra={"ticket_id": ticket_id}
            )
            return False
        logger.info("deadline change recorded", extra={"ticket_id": ticket_id, "change": str(change)})
        return True

    def publish_outbox(self) -> int:
        """Publish and delete every event waiting in the outbox.

        A failed publish raises EventPublishError and leaves the entry for the next run.
        """
        table = self._repository.table
        arguments: dict[str, Any] = {
            "KeyConditionExpression": Key("PK").eq(outbox_pk(OUTBOX_PRODUCER)),
            "ConsistentRead": True,
        }
        published = 0
        while True:
            response = table.query(**arguments)
            for item in response.get("Items", []):
                events = [TicketEvent.model_validate(event) for event in json.loads(item["ticket_events"])]
                self._publisher.publish(events, [])
                table.delete_item(Key={"PK": item["PK"], "SK": item["SK"]})
                published += 1
            if "LastEvaluatedKey" not in response:
                return published
            arguments["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def check(self, now: float) -> WatchResult:
        """Check every candidate ticket once and record the changes due. `publish_outbox` sends the events."""
        result = WatchResult()
        for ticket in self.candidates(now):
            result.checked += 1
            self.apply(ticket, now, result)
        return result
