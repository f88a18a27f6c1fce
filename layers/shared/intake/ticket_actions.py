"""Apply a staff action to a ticket in DynamoDB: one conditional transaction, then events and notices.

The ticket update is conditioned on the status and `version` read before the change, so two staff
members acting at once cannot both win: the second gets ConcurrentTicketChangeError (HTTP 409).
Each action appends one history entry (actor, caller, time, before and after values) in the same
transaction; history entries are only ever added. After the commit, a `TicketChanged` event and the
citizen notices go to the event bus; a notice id is built from the history entry's sort key, so it
is stable for that action.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from intake import clock, texts
from intake.citizen_profile import profile_key
from intake.event_bus import EventPublisher, EventPublishError
from intake.history import history_item
from intake.keys import TICKET_SK, ticket_pk
from intake.records import CitizenNotice, NoticeKind, TicketEvent
from intake.ticket_repository import TicketRepository, put_new, ticket_key, update
from intake.ticket_status import TicketStatus
from intake.workflow import Action, ActionRequest, Change, NoticeDraft, awaits_auto_close, transition
from intake.workflow_config import WorkflowConfig
from intake.working_days import WorkingCalendar

logger = Logger(child=True)

# A main ticket can absorb duplicates while it is still being handled. An answer from the knowledge
# base that nobody handed over is not handled: its automatic close sends the duplicates no notice, so
# it cannot absorb them (`_merge_entries`, `_merge_target_update`) until staff take it over.
MERGE_TARGET_STATUSES = frozenset(
    {
        TicketStatus.SUBMITTED,
        TicketStatus.ACCEPTED,
        TicketStatus.DISPATCHED,
        TicketStatus.RETURNED,
        TicketStatus.AWAITING_CITIZEN,
        TicketStatus.REPLIED,
    }
)

# Index attributes are bookkeeping; the history keeps the values staff care about.
_NOT_AUDITED = frozenset({"GSI1PK", "GSI1SK", "GSI3PK", "GSI3SK", "updated_at", "version"})


class TicketNotFoundError(LookupError):
    """No ticket item has this id (HTTP 404)."""

    def __init__(self, ticket_id: str) -> None:
        self.ticket_id = ticket_id
        super().__init__(f"ticket {ticket_id!r} does not exist")


class MergeTargetError(Exception):
    """The ticket named in `merge.into` cannot take a duplicate (HTTP 409)."""

    def __init__(self, into: str, status: str | None, auto_answer: bool = False) -> None:
        self.into = into
        self.status = status
        # True when the target is an answer from the knowledge base that nobody handed over.
        self.auto_answer = auto_answer
        what = "an unclaimed automatic answer" if auto_answer else f"in status {status!r}"
        super().__init__(f"ticket {into!r} {what} cannot absorb a duplicate")


@dataclass(frozen=True)
class ActionResult:
    ticket: dict[str, Any]
    change: Change
    history_entry: dict[str, Any]
    events_published: bool


def _audit_values(ticket: dict[str, Any], change: Change) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return the before and after values of every attribute the change touches."""
    touched = [name for name in [*change.set_fields, *change.remove_fields] if name not in _NOT_AUDITED]
    before = {name: ticket.get(name) for name in touched}
    after = {name: change.set_fields.get(name) for name in touched}
    return before, after


def _ticket_update(
    ticket: dict[str, Any],
    change: Change,
    version: int,
    extra_set: dict[str, Any] | None = None,
    add: dict[str, int] | None = None,
) -> dict[str, Any]:
    condition = "#c_status = :c_status AND "
    values: dict[str, Any] = {
        "#c_status": "status",
        ":c_status": change.before_status.value,
        "#c_version": "version",
    }
    if "version" in ticket:
        condition += "#c_version = :c_version"
        values[":c_version"] = version
    else:
        condition += "attribute_not_exists(#c_version)"
    set_values = {**change.set_fields, **(extra_set or {}), "version": version + 1}
    return update(
        ticket_key(str(ticket["ticket_id"])),
        set_values=set_values,
        remove=[name for name in change.remove_fields if name not in set_values],
        add=add,
        condition=condition,
        condition_values=values,
    )


def change_entries(
    ticket: dict[str, Any],
    change: Change,
    actor: str,
    caller: str,
    at: float,
    extra_set: dict[str, Any] | None = None,
    add: dict[str, int] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Return the transaction entries of a change (ticket update, history put) and the history entry.

    The ticket update is conditioned on the status and `version` that were read. `extra_set` and
    `add` change attributes outside the workflow in the same update, such as ticket-write's message
    count.
    """
    before, after = _audit_values(ticket, change)
    entry = history_item(
        str(ticket["ticket_id"]),
        entry_type=f"action:{change.action}",
        actor=actor,
        at=at,
        before_status=change.before_status.value,
        after_status=change.after_status.value,
        detail={**change.detail, "caller": caller, "before": before, "after": after},
    )
    version = int(ticket.get("version", 0))
    return [_ticket_update(ticket, change, version, extra_set, add), put_new(entry)], entry


def change_event(ticket_id: str, change: Change, entry: dict[str, Any], at: float) -> TicketEvent:
    """Return the `TicketChanged` event of a committed change."""
    status_changed = change.before_status is not change.after_status
    return TicketEvent(
        ticket_id=ticket_id,
        change="status_changed" if status_changed else str(change.action),
        status=change.after_status.value,
        previous_status=change.before_status.value,
        actor=str(entry["actor"]),
        at=at,
        detail={"action": str(change.action), "history_sk": entry["SK"]},
    )


def change_notice(
    ticket_id: str, open_id: str, draft: NoticeDraft, entry: dict[str, Any], at: float
) -> CitizenNotice:
    """Return a notice of a change; its id is stable for the history entry, so redeliveries share it."""
    return CitizenNotice(
        notice_id=f"{ticket_id}:{entry['SK']}:{draft.kind}",
        kind=draft.kind,
        open_id=open_id,
        ticket_id=ticket_id,
        status=draft.status,
        text=draft.text,
        template_values={"summary": draft.summary} if draft.summary else {},
        media=list(draft.media),
        created_at=at,
    )


def _merge_target_update(into: str, merged_ticket_id: str, at_iso: str) -> dict[str, Any]:
    allowed = sorted(status.value for status in MERGE_TARGET_STATUSES)
    placeholders = {f":c_ok{index}": status for index, status in enumerate(allowed)}
    return {
        "Update": {
            "Key": ticket_key(into),
            "UpdateExpression": "ADD #merged :merged SET #updated = :at",
            "ConditionExpression": f"#status IN ({', '.join(placeholders)})"
            " AND (attribute_not_exists(#auto) OR attribute_exists(#handed))",
            "ExpressionAttributeNames": {
                "#merged": "merged_tickets",
                "#updated": "updated_at",
                "#status": "status",
                "#auto": "auto_answer",
                "#handed": "handed_off_at",
            },
            "ExpressionAttributeValues": {":merged": {merged_ticket_id}, ":at": at_iso, **placeholders},
        }
    }


class TicketActions:
    """Applies actions to tickets on the tickets table and publishes what they change."""

    def __init__(
        self,
        repository: TicketRepository,
        publisher: EventPublisher,
        config: WorkflowConfig,
        calendar: WorkingCalendar,
    ) -> None:
        self._repository = repository
        self._publisher = publisher
        self._config = config
        self._calendar = calendar

    def get_ticket_item(self, ticket_id: str) -> dict[str, Any]:
        item = self._repository.get_item(ticket_pk(ticket_id), TICKET_SK)
        if item is None:
            raise TicketNotFoundError(ticket_id)
        return item

    def apply(
        self, ticket_id: str, request: ActionRequest, caller: str, at: float | None = None
    ) -> ActionResult:
        """Apply `request` to the ticket, commit it with its history entry, then publish.

        Raises TicketNotFoundError, workflow.TransitionNotAllowedError,
        workflow.InvalidActionInputError, MergeTargetError and
        ticket_repository.ConcurrentTicketChangeError (the ticket changed since it was read).
        """
        at = clock.now() if at is None else at
        ticket = self.get_ticket_item(ticket_id)
        change = transition(ticket, request, at, self._config, self._calendar)
        version = int(ticket.get("version", 0))
        entries, entry = change_entries(ticket, change, request.actor, caller, at)
        if change.action is Action.MERGE:
            entries += self._merge_entries(ticket_id, change.detail["into"], request.actor, at)
        self._repository.commit(entries, marker_index=None)
        logger.info(
            "ticket action applied",
            extra={"ticket_id": ticket_id, "action": str(change.action), "status": change.after_status.value},
        )

        updated = {**ticket, **change.set_fields, "version": version + 1}
        for name in change.remove_fields:
            if name not in change.set_fields:
                updated.pop(name, None)
        if change.action is Action.CLOSE and not awaits_auto_close(ticket):
            # An unclaimed knowledge-base answer gets no rating invitation, so it must not take the
            # profile's pending rating from a ticket whose invitation the citizen may still answer.
            self._set_pending_rating(updated)
        published = self._publish(updated, change, entry, at)
        return ActionResult(ticket=updated, change=change, history_entry=entry, events_published=published)

    def _merge_entries(self, ticket_id: str, into: str, actor: str, at: float) -> list[dict[str, Any]]:
        target = self._repository.get_item(ticket_pk(into), TICKET_SK)
        if target is None:
            raise TicketNotFoundError(into)
        if target.get("status") not in MERGE_TARGET_STATUSES:
            raise MergeTargetError(into, target.get("status"))
        if awaits_auto_close(target):
            raise MergeTargetError(into, target.get("status"), auto_answer=True)
        entry = history_item(
            into, entry_type="merged_in", actor=actor, at=at, detail={"ticket_id": ticket_id}
        )
        return [_merge_target_update(into, ticket_id, clock.iso_utc(at)), put_new(entry)]

    def _set_pending_rating(self, ticket: dict[str, Any]) -> None:
        """Let the citizen's next "1", "2" or "3" rate this ticket; a missing profile means unsubscribed."""
        open_id = ticket.get("open_id")
        if not open_id or ticket.get("open_id_pseudonymized"):
            return
        try:
            self._repository.table.update_item(
                Key=profile_key(str(open_id)),
                UpdateExpression="SET pending_rating_ticket_id = :ticket_id",
                ConditionExpression="attribute_exists(PK)",
                ExpressionAttributeValues={":ticket_id": ticket["ticket_id"]},
            )
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            logger.info("no citizen profile to invite to rate", extra={"ticket_id": ticket["ticket_id"]})

    def _notices(
        self, ticket: dict[str, Any], change: Change, entry: dict[str, Any], at: float
    ) -> list[CitizenNotice]:
        notices: list[CitizenNotice] = []
        open_id = ticket.get("open_id")
        if open_id and not ticket.get("open_id_pseudonymized"):
            notices += [self._notice(ticket, str(open_id), draft, entry, at) for draft in change.notices]
        if change.action is Action.CLOSE:
            notices += self._merged_ticket_notices(ticket, entry, at)
        return notices

    @staticmethod
    def _notice(
        ticket: dict[str, Any], open_id: str, draft: NoticeDraft, entry: dict[str, Any], at: float
    ) -> CitizenNotice:
        return change_notice(str(ticket["ticket_id"]), open_id, draft, entry, at)

    def _merged_ticket_notices(
        self, ticket: dict[str, Any], entry: dict[str, Any], at: float
    ) -> list[CitizenNotice]:
        """Tell the citizens of the duplicates merged into this ticket that it is closed."""
        notices = []
        for merged_id in sorted(ticket.get("merged_tickets", set())):
            merged = self._repository.get_item(ticket_pk(merged_id), TICKET_SK)
            if merged is None or not merged.get("open_id") or merged.get("open_id_pseudonymized"):
                continue
            text = texts.text("notice.merged_closed", ticket_id=merged_id, main_ticket_id=ticket["ticket_id"])
            draft = NoticeDraft(NoticeKind.STATUS, text, TicketStatus.CLOSED.value)
            notices.append(self._notice({"ticket_id": merged_id}, str(merged["open_id"]), draft, entry, at))
        return notices

    def _publish(self, ticket: dict[str, Any], change: Change, entry: dict[str, Any], at: float) -> bool:
        """Publish the change and its notices; on failure record it in the history and return False."""
        event = change_event(str(ticket["ticket_id"]), change, entry, at)
        notices = self._notices(ticket, change, entry, at)
        try:
            self._publisher.publish([event], notices)
        except (EventPublishError, ClientError, BotoCoreError):
            # The change is committed, so the caller gets it with events_published=False instead of a 500
            # that would make staff repeat an action that already happened.
            # NOTE: these events are lost; only the history entry records them.
            logger.exception("ticket change not published", extra={"ticket_id": ticket["ticket_id"]})
            self._repository.table.put_item(
                Item=history_item(
                    str(ticket["ticket_id"]),
                    entry_type="events_unpublished",
                    actor="system",
                    detail={
                        "history_sk": entry["SK"],
                        "notice_ids": [notice.notice_id for notice in notices],
                    },
                ),
                ConditionExpression="attribute_not_exists(PK)",
            )
            return False
        return True
