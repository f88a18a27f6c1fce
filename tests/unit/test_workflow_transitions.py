"""The status machine: every allowed and every forbidden (action, status) pair of TRANSITIONS."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from intake import clock
from intake.ticket_status import TicketStatus
from intake.workflow import (
    TRANSITIONS,
    Action,
    InvalidActionInputError,
    StaffActionRequest,
    TransitionNotAllowedError,
    markdown_table,
    target_status,
    transition,
)
from intake.workflow_config import get_workflow_config
from intake.working_days import get_calendar

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime.fromisoformat("2026-10-13T10:00:00+08:00").timestamp()

ALLOWED = [(action, status) for action, rule in TRANSITIONS.items() for status in sorted(rule.sources)]
FORBIDDEN = [
    (action, status)
    for action in Action
    for status in TicketStatus
    if status not in TRANSITIONS[action].sources
]

# A valid request body for each action that staff (or ticket-write) send through transition().
BODIES: dict[Action, dict[str, Any]] = {
    Action.ACCEPT: {"appeal_type": "complaint", "category": "noise"},
    Action.REJECT: {"reason": "不属于政务服务范围"},
    Action.DISPATCH: {"department": "cgj"},
    Action.RETURN: {"reason_code": "not_in_scope"},
    Action.REQUEST_INFO: {"text": "请补充地址"},
    Action.RESUME: {},
    Action.EXTEND: {"reason": "需现场核查", "working_days": 5},
    Action.APPROVE_EXTENSION: {},
    Action.REPLY: {"text": "已处理"},
    Action.CLOSE: {},
    Action.REOPEN: {"reason": "市民不满意"},
    Action.MERGE: {"into": "DG-MAIN"},
}


def ticket(status: str) -> dict[str, Any]:
    """Return a ticket item with every attribute any action needs in `status`."""
    return {
        "ticket_id": "DG-1",
        "status": status,
        "open_id": "oCitizen",
        "created_at": "2026-10-08T01:00:00.000Z",
        "deadline": clock.iso_utc(datetime.fromisoformat("2026-10-23T17:30:00+08:00").timestamp()),
        "department": "cgj",
        "handling_working_days": 13,
        "resume_status": "dispatched",
        "paused_at": "2026-10-12T02:00:00.000Z",
        "extension_request": {"reason": "r", "working_days": 2, "requested_by": "x", "requested_at": "t"},
    }


def request(action: Action) -> Any:
    body = {"action": action.value, "actor": "staff-1", **BODIES[action]}
    return TypeAdapter(StaffActionRequest).validate_python(body)


@pytest.mark.parametrize(("action", "status"), ALLOWED)
def test_target_status_allowed(action: Action, status: TicketStatus) -> None:
    # WHEN / THEN the table's target (or the status before the pause) comes back
    rule = TRANSITIONS[action]
    expected = TicketStatus.DISPATCHED if rule.resumes else (rule.target or status)
    assert target_status(action, {"status": status.value, "resume_status": "dispatched"}) == expected


@pytest.mark.parametrize(("action", "status"), FORBIDDEN)
def test_target_status_forbidden(action: Action, status: TicketStatus) -> None:
    # WHEN / THEN
    with pytest.raises(TransitionNotAllowedError):
        target_status(action, {"status": status.value, "resume_status": "dispatched"})


@pytest.mark.parametrize(("action", "status"), [pair for pair in ALLOWED if pair[0] in BODIES])
def test_transition_allowed(action: Action, status: TicketStatus) -> None:
    # GIVEN a ticket in `status`; extend needs no extension pending yet
    item = ticket(status.value)
    if action is Action.EXTEND:
        del item["extension_request"]

    # WHEN the action is applied
    change = transition(item, request(action), NOW, get_workflow_config(), get_calendar())

    # THEN the change moves to the table's target and keeps the status index in step
    assert change.after_status == target_status(action, item)
    assert change.set_fields["status"] == change.after_status.value
    assert change.set_fields["GSI1PK"] == f"STATUS#{change.after_status.value}"


@pytest.mark.parametrize(("action", "status"), [pair for pair in FORBIDDEN if pair[0] in BODIES])
def test_transition_forbidden(action: Action, status: TicketStatus) -> None:
    # WHEN / THEN
    with pytest.raises(TransitionNotAllowedError):
        transition(ticket(status.value), request(action), NOW, get_workflow_config(), get_calendar())


def test_resume_without_recorded_status_is_refused() -> None:
    # GIVEN a paused ticket that lost its resume_status
    item = ticket("awaiting_citizen")
    del item["resume_status"]

    # WHEN / THEN
    with pytest.raises(TransitionNotAllowedError, match="before the pause"):
        transition(item, request(Action.RESUME), NOW, get_workflow_config(), get_calendar())


def test_second_extension_request_is_refused() -> None:
    # WHEN staff ask for an extension while one is pending
    with pytest.raises(TransitionNotAllowedError, match="already pending"):
        transition(ticket("dispatched"), request(Action.EXTEND), NOW, get_workflow_config(), get_calendar())


def test_approve_without_request_is_refused() -> None:
    # GIVEN a ticket without a pending extension
    item = ticket("dispatched")
    del item["extension_request"]

    # WHEN / THEN
    with pytest.raises(TransitionNotAllowedError, match="no extension is pending"):
        transition(item, request(Action.APPROVE_EXTENSION), NOW, get_workflow_config(), get_calendar())


def test_extension_does_not_move_deadline_until_approved() -> None:
    # GIVEN a dispatched ticket without a pending extension
    item = ticket("dispatched")
    del item["extension_request"]

    # WHEN staff ask for 5 more working days
    change = transition(item, request(Action.EXTEND), NOW, get_workflow_config(), get_calendar())

    # THEN only the request is recorded
    assert "deadline" not in change.set_fields
    assert change.set_fields["extension_request"]["working_days"] == 5


def test_extension_longer_than_configured_is_invalid() -> None:
    # GIVEN a request for more working days than workflow_config.json allows
    item = ticket("dispatched")
    del item["extension_request"]
    body = {"action": "extend", "actor": "a", "reason": "r", "working_days": 16}

    # WHEN / THEN
    with pytest.raises(InvalidActionInputError, match="working_days"):
        transition(
            item,
            TypeAdapter(StaffActionRequest).validate_python(body),
            NOW,
            get_workflow_config(),
            get_calendar(),
        )


def test_merge_into_itself_is_refused() -> None:
    # GIVEN a merge naming the ticket itself
    body = {"action": "merge", "actor": "a", "into": "DG-1"}

    # WHEN / THEN
    with pytest.raises(TransitionNotAllowedError, match="itself"):
        transition(
            ticket("submitted"),
            TypeAdapter(StaffActionRequest).validate_python(body),
            NOW,
            get_workflow_config(),
            get_calendar(),
        )


def test_unknown_category_is_invalid() -> None:
    # GIVEN an accept with a category code that is not configured
    body = {"action": "accept", "actor": "a", "appeal_type": "help", "category": "ufo"}

    # WHEN / THEN
    with pytest.raises(InvalidActionInputError, match="category"):
        transition(
            ticket("submitted"),
            TypeAdapter(StaffActionRequest).validate_python(body),
            NOW,
            get_workflow_config(),
            get_calendar(),
        )


def test_docs_show_the_status_machine_table() -> None:
    # GIVEN docs/workflow.md
    document = (ROOT / "docs" / "workflow.md").read_text(encoding="utf-8")

    # WHEN / THEN it contains the table generated from TRANSITIONS
    assert markdown_table() in document
