"""The 12345 status machine: which action may move a ticket from which status to which, in one table.

`TRANSITIONS` is the only place that allows or forbids a status change; docs/workflow.md shows the
same table (a test compares them). `transition()` applies one action to a ticket item in memory and
returns the `Change` to write: new attributes, the history detail and the notices for the citizen.
It performs no I/O. Both writers use it: staff actions through `intake.ticket_actions`, and the
citizen's actions in ticket-write (`supplement_received` when a supplement reaches a ticket in
`awaiting_citizen`, `rate` when the citizen replies to the rating invitation, `handoff` when the
citizen asks for a person after an answer from the knowledge base; staff can hand such an answer over
too). A rating of 3 (不满意) is the
`reopen` action (重办), decided here in `effective_action`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from intake import clock, deadlines, texts
from intake.answer_media import MAX_ANSWER_MEDIA, notice_media
from intake.keys import department_gsi_pk, status_gsi_pk
from intake.records import NoticeKind, NoticeMedia
from intake.ticket_status import TicketStatus
from intake.workflow_config import WorkflowConfig
from intake.working_days import WorkingCalendar

S = TicketStatus


class Action(StrEnum):
    SUBMIT = "submit"
    CANCEL = "cancel"
    ACCEPT = "accept"
    REJECT = "reject"
    DISPATCH = "dispatch"
    RETURN = "return"
    REQUEST_INFO = "request_info"
    RESUME = "resume"
    SUPPLEMENT_RECEIVED = "supplement_received"
    EXTEND = "extend"
    APPROVE_EXTENSION = "approve_extension"
    REPLY = "reply"
    CLOSE = "close"
    RATE = "rate"
    REOPEN = "reopen"
    MERGE = "merge"
    HANDOFF = "handoff"


@dataclass(frozen=True)
class Rule:
    """The statuses an action applies to and the status it leads to.

    A `target` of None keeps the status, as the extension actions do. With `resumes`, the ticket goes
    back to the status recorded when it was paused (`resume_status`).
    """

    sources: frozenset[TicketStatus]
    target: TicketStatus | None
    performed_by: str
    resumes: bool = False


_PAUSABLE = frozenset({S.SUBMITTED, S.ACCEPTED, S.DISPATCHED, S.RETURNED})
_EXTENDABLE = frozenset({S.ACCEPTED, S.DISPATCHED, S.RETURNED, S.AWAITING_CITIZEN})
_MERGEABLE = frozenset({S.SUBMITTED, S.ACCEPTED, S.DISPATCHED, S.RETURNED, S.AWAITING_CITIZEN})

TRANSITIONS: dict[Action, Rule] = {
    Action.SUBMIT: Rule(frozenset({S.COLLECTING}), S.SUBMITTED, "citizen, system"),
    Action.CANCEL: Rule(frozenset({S.COLLECTING}), S.CANCELLED, "citizen"),
    Action.ACCEPT: Rule(frozenset({S.SUBMITTED}), S.ACCEPTED, "staff"),
    Action.REJECT: Rule(frozenset({S.SUBMITTED, S.ACCEPTED, S.RETURNED}), S.REJECTED, "staff"),
    Action.DISPATCH: Rule(frozenset({S.ACCEPTED, S.RETURNED}), S.DISPATCHED, "staff"),
    Action.RETURN: Rule(frozenset({S.DISPATCHED}), S.RETURNED, "staff"),
    Action.REQUEST_INFO: Rule(_PAUSABLE, S.AWAITING_CITIZEN, "staff"),
    Action.RESUME: Rule(frozenset({S.AWAITING_CITIZEN}), None, "staff", resumes=True),
    Action.SUPPLEMENT_RECEIVED: Rule(frozenset({S.AWAITING_CITIZEN}), None, "citizen", resumes=True),
    Action.EXTEND: Rule(_EXTENDABLE, None, "staff"),
    Action.APPROVE_EXTENSION: Rule(_EXTENDABLE, None, "staff"),
    Action.REPLY: Rule(frozenset({S.DISPATCHED}), S.REPLIED, "staff"),
    Action.CLOSE: Rule(frozenset({S.REPLIED}), S.CLOSED, "staff, system"),
    Action.RATE: Rule(frozenset({S.CLOSED}), S.RATED, "citizen"),
    Action.REOPEN: Rule(frozenset({S.CLOSED, S.RATED}), S.DISPATCHED, "staff, citizen"),
    Action.MERGE: Rule(_MERGEABLE, S.MERGED, "staff"),
    Action.HANDOFF: Rule(frozenset({S.REPLIED}), S.SUBMITTED, "citizen, staff"),
}

STAFF_ACTIONS = frozenset(action for action, rule in TRANSITIONS.items() if "staff" in rule.performed_by)


class TransitionNotAllowedError(Exception):
    """The action does not apply to the ticket in its current state (HTTP 409)."""

    def __init__(self, action: str, status: str, reason: str | None = None) -> None:
        self.action = action
        self.status = status
        self.reason = reason
        super().__init__(
            f"action {action!r} is not allowed in status {status!r}" + (f": {reason}" if reason else "")
        )


class InvalidActionInputError(ValueError):
    """A value in the action request is not in the configuration (HTTP 400)."""

    def __init__(self, field_name: str, value: object) -> None:
        self.field_name = field_name
        self.value = value
        super().__init__(f"{field_name} {value!r} is not configured in workflow_config.json")


def target_status(action: Action, ticket: Mapping[str, Any]) -> TicketStatus:
    """Return the status `action` leads to from the ticket's status; raises TransitionNotAllowedError."""
    rule = TRANSITIONS[action]
    status = str(ticket.get("status", ""))
    if status not in rule.sources:
        raise TransitionNotAllowedError(action, status)
    if rule.resumes:
        resume_status = ticket.get("resume_status")
        if resume_status not in TRANSITIONS[Action.REQUEST_INFO].sources:
            raise TransitionNotAllowedError(action, status, "the status before the pause is unknown")
        return TicketStatus(str(resume_status))
    return rule.target if rule.target is not None else TicketStatus(status)


# -- action requests: the body of POST /tickets/{ticket_id}/actions ------------------------------------


class _ActionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    actor: str = Field(min_length=1, max_length=128, description="Staff member or system id, kept in history")


class AcceptRequest(_ActionRequest):
    action: Literal["accept"]
    appeal_type: Literal["consultation", "help", "complaint", "report", "suggestion"]
    category: str | None = Field(default=None, max_length=64, description="A code from workflow_config.json")
    urgent: bool = False


class RejectRequest(_ActionRequest):
    action: Literal["reject"]
    reason: str = Field(min_length=1, max_length=500)


class DispatchRequest(_ActionRequest):
    action: Literal["dispatch"]
    department: str = Field(min_length=1, max_length=64, description="A department code")


class ReturnRequest(_ActionRequest):
    action: Literal["return"]
    reason_code: str = Field(min_length=1, max_length=64, description="A return reason code")
    note: str | None = Field(default=None, max_length=1000)


class RequestInfoRequest(_ActionRequest):
    action: Literal["request_info"]
    text: str = Field(min_length=1, max_length=1000, description="What the citizen should add")


class ResumeRequest(_ActionRequest):
    action: Literal["resume"]


class SupplementReceivedRequest(_ActionRequest):
    action: Literal["supplement_received"]


class RateRequest(_ActionRequest):
    action: Literal["rate"]
    score: int = Field(ge=1, le=3, description="1 满意, 2 基本满意, 3 不满意 (reopens the ticket)")


class ExtendRequest(_ActionRequest):
    action: Literal["extend"]
    reason: str = Field(min_length=1, max_length=500)
    working_days: int = Field(ge=1, le=60)


class ApproveExtensionRequest(_ActionRequest):
    action: Literal["approve_extension"]


class ReplyRequest(_ActionRequest):
    action: Literal["reply"]
    text: str = Field(min_length=1, max_length=2000, description="The answer sent to the citizen")
    media: list[Annotated[str, Field(min_length=1, max_length=1024, pattern=r"^media/")]] = Field(
        default_factory=list,
        max_length=MAX_ANSWER_MEDIA,
        description="S3 keys of this ticket's files in the media bucket (jpg, png, gif as images; amr, "
        "mp3 as voice), sent after the text",
    )


class CloseRequest(_ActionRequest):
    action: Literal["close"]


class ReopenRequest(_ActionRequest):
    action: Literal["reopen"]
    reason: str | None = Field(default=None, max_length=500)


class MergeRequest(_ActionRequest):
    action: Literal["merge"]
    into: str = Field(min_length=1, max_length=64, description="Id of the main ticket")


class HandoffRequest(_ActionRequest):
    """The citizen asks for a person (「人工」) or is dissatisfied with a knowledge-base answer."""

    action: Literal["handoff"]
    reason: Literal["asked_for_person", "dissatisfied"]
    # The message's CreateTime: the handoff period is judged by when the citizen asked, not by when
    # ticket-write got to the message (capped at the processing time in _apply_handoff).
    asked_at: float | None = None


class StaffHandoffRequest(_ActionRequest):
    action: Literal["handoff"]
    note: str | None = Field(
        default=None, max_length=500, description="Why staff take over the knowledge-base answer"
    )


StaffActionRequest = Annotated[
    AcceptRequest
    | RejectRequest
    | DispatchRequest
    | ReturnRequest
    | RequestInfoRequest
    | ResumeRequest
    | ExtendRequest
    | ApproveExtensionRequest
    | ReplyRequest
    | CloseRequest
    | ReopenRequest
    | MergeRequest
    | StaffHandoffRequest,
    Field(discriminator="action"),
]

ActionRequest = StaffActionRequest | SupplementReceivedRequest | RateRequest | HandoffRequest

# The rating score that sends a ticket back for handling (重办) instead of finishing it.
DISSATISFIED_SCORE = 3


# -- the change an action makes -------------------------------------------------------------------------


@dataclass(frozen=True)
class NoticeDraft:
    """A notice for the ticket's citizen before it gets its id and OpenID."""

    kind: NoticeKind
    text: str
    status: str | None = None
    media: tuple[NoticeMedia, ...] = ()
    # The start of the staff's own words, for the template message that replaces a customer-service
    # message outside WeChat's 48-hour window (its text field takes only about 20 characters).
    summary: str | None = None


@dataclass
class Change:
    """Effect of one action on a ticket item; `set_fields` and `remove_fields` name item attributes."""

    action: Action
    before_status: TicketStatus
    after_status: TicketStatus
    set_fields: dict[str, Any] = field(default_factory=dict)
    remove_fields: list[str] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)
    notices: list[NoticeDraft] = field(default_factory=list)


def format_deadline(deadline: float) -> str:
    """Return a deadline as citizens read it, in China Standard Time."""
    return clock.china_datetime(deadline).strftime("%Y-%m-%d %H:%M")


def _deadline(ticket: Mapping[str, Any]) -> float | None:
    value = ticket.get("deadline")
    return deadlines.parse_iso(str(value)) if value else None


def effective_action(request: ActionRequest) -> Action:
    """Return the action a request performs: a dissatisfied rating is a reopen, the rest are themselves."""
    if isinstance(request, RateRequest) and request.score == DISSATISFIED_SCORE:
        return Action.REOPEN
    return Action(request.action)


def awaits_auto_close(ticket: Mapping[str, Any]) -> bool:
    """Return True for a ticket answered from the knowledge base that the citizen has not handed over."""
    return bool(ticket.get("auto_answer")) and not ticket.get("handed_off_at")


def auto_answer_period_ended(ticket: Mapping[str, Any], at: float, config: WorkflowConfig) -> bool:
    """Return True when `auto_answer_close_hours` have passed since the knowledge-base answer."""
    answered_at = (ticket.get("auto_answer") or {}).get("answered_at")
    if not answered_at:
        return True
    return at - deadlines.parse_iso(str(answered_at)) > config.auto_answer_close_hours * 3600


def rating_record(score: int, at: float) -> dict[str, Any]:
    """Return the `rating` attribute of a rated ticket."""
    return {"score": score, "label": texts.text(f"rating.{score}"), "at": clock.iso_utc(at)}


def transition(
    ticket: Mapping[str, Any],
    request: ActionRequest,
    at: float,
    config: WorkflowConfig,
    calendar: WorkingCalendar,
) -> Change:
    """Apply one action to a ticket item (the DynamoDB item as a dict) and return the change.

    Raises TransitionNotAllowedError when the status machine forbids the action and
    InvalidActionInputError when a code in the request is not configured.
    """
    action = effective_action(request)
    after = target_status(action, ticket)
    change = Change(action=action, before_status=TicketStatus(str(ticket["status"])), after_status=after)
    change.set_fields["updated_at"] = clock.iso_utc(at)
    _APPLY[action](change, ticket, request, at, config, calendar)

    # StatusIndex sorts by deadline once one is set, else by when the ticket entered its status
    # (the layout of intake.ticket_repository.status_change_values).
    deadline_iso = change.set_fields.get("deadline", ticket.get("deadline"))
    change.set_fields["status"] = str(after)
    change.set_fields["GSI1PK"] = status_gsi_pk(after)
    change.set_fields["GSI1SK"] = deadline_iso or change.set_fields["updated_at"]
    return change


def _apply_accept(
    change: Change,
    ticket: Mapping[str, Any],
    request: Any,
    at: float,
    config: WorkflowConfig,
    calendar: WorkingCalendar,
) -> None:
    assert isinstance(request, AcceptRequest)
    if request.category is not None and config.category_name(request.category) is None:
        raise InvalidActionInputError("category", request.category)
    working_days = deadlines.handling_working_days(request.appeal_type, request.urgent, config)
    deadline = deadlines.initial_deadline(at, working_days, calendar)
    change.set_fields |= {
        "appeal_type": request.appeal_type,
        "urgent": request.urgent,
        "accepted_at": clock.iso_utc(at),
        "deadline": clock.iso_utc(deadline),
        "handling_working_days": working_days,
    }
    if request.category is not None:
        change.set_fields["category"] = request.category
    change.detail |= {
        "appeal_type": request.appeal_type,
        "category": request.category,
        "urgent": request.urgent,
        "deadline": clock.iso_utc(deadline),
    }
    text = texts.text("notice.accepted", ticket_id=ticket["ticket_id"], deadline=format_deadline(deadline))
    change.notices.append(NoticeDraft(NoticeKind.STATUS, text, str(S.ACCEPTED)))


def _apply_reject(
    change: Change,
    ticket: Mapping[str, Any],
    request: Any,
    at: float,
    config: WorkflowConfig,
    calendar: WorkingCalendar,
) -> None:
    assert isinstance(request, RejectRequest)
    change.set_fields |= {"rejected_reason": request.reason, "rejected_at": clock.iso_utc(at)}
    change.detail["reason"] = request.reason
    text = texts.text("notice.rejected", ticket_id=ticket["ticket_id"], reason=request.reason)
    change.notices.append(NoticeDraft(NoticeKind.STATUS, text, str(S.REJECTED)))


def _apply_dispatch(
    change: Change,
    ticket: Mapping[str, Any],
    request: Any,
    at: float,
    config: WorkflowConfig,
    calendar: WorkingCalendar,
) -> None:
    assert isinstance(request, DispatchRequest)
    department_name = config.department_name(request.department)
    if department_name is None:
        raise InvalidActionInputError("department", request.department)
    change.set_fields |= {
        "department": request.department,
        "dispatched_at": clock.iso_utc(at),
        "GSI3PK": department_gsi_pk(request.department),
        "GSI3SK": str(ticket.get("created_at", "")),
    }
    change.remove_fields.append("return_reason_code")
    change.detail |= {"department": request.department, "previous_department": ticket.get("department")}
    text = texts.text("notice.dispatched", ticket_id=ticket["ticket_id"], department=department_name)
    change.notices.append(NoticeDraft(NoticeKind.STATUS, text, str(S.DISPATCHED)))


def _apply_return(
    change: Change,
    ticket: Mapping[str, Any],
    request: Any,
    at: float,
    config: WorkflowConfig,
    calendar: WorkingCalendar,
) -> None:
    assert isinstance(request, ReturnRequest)
    if config.return_reason_name(request.reason_code) is None:
        raise InvalidActionInputError("reason_code", request.reason_code)
    change.set_fields |= {"return_reason_code": request.reason_code, "returned_at": clock.iso_utc(at)}
    change.detail |= {
        "reason_code": request.reason_code,
        "note": request.note,
        "department": ticket.get("department"),
    }


def _apply_request_info(
    change: Change,
    ticket: Mapping[str, Any],
    request: Any,
    at: float,
    config: WorkflowConfig,
    calendar: WorkingCalendar,
) -> None:
    assert isinstance(request, RequestInfoRequest)
    change.set_fields |= {"paused_at": clock.iso_utc(at), "resume_status": str(change.before_status)}
    change.detail["text"] = request.text
    text = texts.text("notice.request_info", ticket_id=ticket["ticket_id"], text=request.text)
    change.notices.append(
        NoticeDraft(NoticeKind.REQUEST_INFO, text, str(S.AWAITING_CITIZEN), summary=request.text)
    )


def _apply_resume(
    change: Change,
    ticket: Mapping[str, Any],
    request: Any,
    at: float,
    config: WorkflowConfig,
    calendar: WorkingCalendar,
) -> None:
    change.remove_fields += ["paused_at", "resume_status"]
    deadline = _deadline(ticket)
    paused_at = ticket.get("paused_at")
    if deadline is None or not paused_at:
        return
    new_deadline, paused_days = deadlines.resumed_deadline(
        deadline, deadlines.parse_iso(str(paused_at)), at, calendar
    )
    change.set_fields |= {
        "deadline": clock.iso_utc(new_deadline),
        "paused_working_days": int(ticket.get("paused_working_days", 0)) + paused_days,
    }
    change.detail |= {"paused_working_days": paused_days, "deadline": clock.iso_utc(new_deadline)}


def _apply_extend(
    change: Change,
    ticket: Mapping[str, Any],
    request: Any,
    at: float,
    config: WorkflowConfig,
    calendar: WorkingCalendar,
) -> None:
    assert isinstance(request, ExtendRequest)
    if ticket.get("extension_request"):
        raise TransitionNotAllowedError(
            request.action, str(ticket["status"]), "an extension is already pending"
        )
    if _deadline(ticket) is None:
        raise TransitionNotAllowedError(request.action, str(ticket["status"]), "the ticket has no deadline")
    if request.working_days > config.max_extension_working_days:
        raise InvalidActionInputError("working_days", request.working_days)
    change.set_fields["extension_request"] = {
        "reason": request.reason,
        "working_days": request.working_days,
        "requested_by": request.actor,
        "requested_at": clock.iso_utc(at),
    }
    change.detail |= {"reason": request.reason, "working_days": request.working_days}


def _apply_approve_extension(
    change: Change,
    ticket: Mapping[str, Any],
    request: Any,
    at: float,
    config: WorkflowConfig,
    calendar: WorkingCalendar,
) -> None:
    pending = ticket.get("extension_request")
    deadline = _deadline(ticket)
    if not pending or deadline is None:
        raise TransitionNotAllowedError(request.action, str(ticket["status"]), "no extension is pending")
    working_days = int(pending["working_days"])
    new_deadline = deadlines.extended_deadline(deadline, working_days, calendar)
    granted = {
        **pending,
        "approved_by": request.actor,
        "approved_at": clock.iso_utc(at),
        "previous_deadline": ticket["deadline"],
        "deadline": clock.iso_utc(new_deadline),
    }
    change.set_fields |= {
        "deadline": clock.iso_utc(new_deadline),
        "extensions": [*ticket.get("extensions", []), granted],
    }
    change.remove_fields.append("extension_request")
    change.detail |= {
        "working_days": working_days,
        "previous_deadline": ticket["deadline"],
        "deadline": clock.iso_utc(new_deadline),
    }
    text = texts.text(
        "notice.extended", ticket_id=ticket["ticket_id"], deadline=format_deadline(new_deadline)
    )
    change.notices.append(NoticeDraft(NoticeKind.STATUS, text, "extended"))


def _apply_reply(
    change: Change,
    ticket: Mapping[str, Any],
    request: Any,
    at: float,
    config: WorkflowConfig,
    calendar: WorkingCalendar,
) -> None:
    assert isinstance(request, ReplyRequest)
    deadline = _deadline(ticket)
    on_time = deadline is None or at <= deadline
    change.set_fields |= {
        "replied_at": clock.iso_utc(at),
        "reply_text": request.text,
        "replied_on_time": on_time,
    }
    change.detail |= {"text": request.text, "on_time": on_time}
    if request.media:
        change.detail["media"] = list(request.media)
    department = config.department_name(str(ticket.get("department", ""))) or ""
    text = texts.text(
        "notice.staff_answer", ticket_id=ticket["ticket_id"], department=department, text=request.text
    )
    media = tuple(notice_media(request.media))
    change.notices.append(
        NoticeDraft(NoticeKind.STAFF_ANSWER, text, str(S.REPLIED), media, summary=request.text)
    )


def _apply_close(
    change: Change,
    ticket: Mapping[str, Any],
    request: Any,
    at: float,
    config: WorkflowConfig,
    calendar: WorkingCalendar,
) -> None:
    change.set_fields["closed_at"] = clock.iso_utc(at)
    ticket_id = ticket["ticket_id"]
    if awaits_auto_close(ticket):
        # The citizen already has the knowledge-base answer; closing it is bookkeeping, not news, and
        # the answer was not a department's work to rate.
        change.detail["reason"] = "auto_answer"
        return
    change.notices.append(
        NoticeDraft(NoticeKind.STATUS, texts.text("notice.closed", ticket_id=ticket_id), str(S.CLOSED))
    )
    change.notices.append(
        NoticeDraft(
            NoticeKind.RATING_INVITATION,
            texts.text("notice.rating_invitation", ticket_id=ticket_id),
            str(S.CLOSED),
        )
    )


def _apply_rate(
    change: Change,
    ticket: Mapping[str, Any],
    request: Any,
    at: float,
    config: WorkflowConfig,
    calendar: WorkingCalendar,
) -> None:
    assert isinstance(request, RateRequest)
    rating = rating_record(request.score, at)
    change.set_fields["rating"] = rating
    change.detail["rating"] = request.score
    text = texts.text("citizen.rating_recorded", rating=rating["label"])
    change.notices.append(NoticeDraft(NoticeKind.SELF_SERVICE, text))


def _apply_reopen(
    change: Change,
    ticket: Mapping[str, Any],
    request: Any,
    at: float,
    config: WorkflowConfig,
    calendar: WorkingCalendar,
) -> None:
    """Reopen (重办) on a staff request, or on the citizen's dissatisfied rating, which stays recorded."""
    assert isinstance(request, ReopenRequest | RateRequest)
    if not ticket.get("department"):
        raise TransitionNotAllowedError(request.action, str(ticket["status"]), "the ticket has no department")
    working_days = int(ticket.get("handling_working_days", 0))
    deadline = deadlines.initial_deadline(at, working_days, calendar)
    change.set_fields |= {
        "reopened_at": clock.iso_utc(at),
        "reopen_count": int(ticket.get("reopen_count", 0)) + 1,
        "deadline": clock.iso_utc(deadline),
    }
    change.remove_fields += ["closed_at", "replied_at", "replied_on_time", "reply_text", "rating"]
    if isinstance(request, RateRequest):
        change.set_fields["rating"] = rating_record(request.score, at)
        change.detail |= {"reason": "rating_dissatisfied", "rating": request.score}
    else:
        change.detail["reason"] = request.reason
    change.detail["deadline"] = clock.iso_utc(deadline)
    text = texts.text("citizen.rating_reopened", ticket_id=ticket["ticket_id"])
    change.notices.append(NoticeDraft(NoticeKind.STATUS, text, str(S.DISPATCHED)))


def _apply_merge(
    change: Change,
    ticket: Mapping[str, Any],
    request: Any,
    at: float,
    config: WorkflowConfig,
    calendar: WorkingCalendar,
) -> None:
    assert isinstance(request, MergeRequest)
    if request.into == ticket["ticket_id"]:
        raise TransitionNotAllowedError(
            request.action, str(ticket["status"]), "a ticket cannot merge into itself"
        )
    change.set_fields |= {"merged_into": request.into, "merged_at": clock.iso_utc(at)}
    change.remove_fields += ["paused_at", "resume_status", "extension_request"]
    change.detail["into"] = request.into


def _apply_handoff(
    change: Change,
    ticket: Mapping[str, Any],
    request: Any,
    at: float,
    config: WorkflowConfig,
    calendar: WorkingCalendar,
) -> None:
    """Hand a knowledge-base answer over to staff: the ticket joins the normal flow as submitted.

    The citizen may do so within `auto_answer_close_hours` of the answer, judged by the message's
    CreateTime. Staff may take over any answer not yet closed or handed over.
    """
    assert isinstance(request, HandoffRequest | StaffHandoffRequest)
    if not awaits_auto_close(ticket):
        raise TransitionNotAllowedError(
            request.action, str(ticket["status"]), "the ticket is not an automatic answer awaiting handoff"
        )
    if isinstance(request, HandoffRequest):
        asked_at = at if request.asked_at is None else min(request.asked_at, at)
        if auto_answer_period_ended(ticket, asked_at, config):
            raise TransitionNotAllowedError(
                request.action, str(ticket["status"]), "the handoff period has ended"
            )
        change.detail["reason"] = request.reason
        text = texts.text("citizen.handoff", ticket_id=ticket["ticket_id"])
    else:
        change.detail |= {"reason": "staff_takeover", "note": request.note}
        text = texts.text("citizen.staff_handoff", ticket_id=ticket["ticket_id"])
    change.set_fields |= {"submitted_at": clock.iso_utc(at), "handed_off_at": clock.iso_utc(at)}
    change.remove_fields += ["replied_at", "replied_on_time", "reply_text"]
    change.detail["entry_id"] = ticket["auto_answer"].get("entry_id")
    change.notices.append(NoticeDraft(NoticeKind.ACKNOWLEDGEMENT, text, str(S.SUBMITTED)))


_APPLY = {
    Action.ACCEPT: _apply_accept,
    Action.REJECT: _apply_reject,
    Action.DISPATCH: _apply_dispatch,
    Action.RETURN: _apply_return,
    Action.REQUEST_INFO: _apply_request_info,
    Action.RESUME: _apply_resume,
    Action.SUPPLEMENT_RECEIVED: _apply_resume,
    Action.EXTEND: _apply_extend,
    Action.APPROVE_EXTENSION: _apply_approve_extension,
    Action.REPLY: _apply_reply,
    Action.CLOSE: _apply_close,
    Action.RATE: _apply_rate,
    Action.REOPEN: _apply_reopen,
    Action.MERGE: _apply_merge,
    Action.HANDOFF: _apply_handoff,
}


def markdown_table() -> str:
    """Return the status machine as the Markdown table that docs/workflow.md shows."""
    lines = ["| action | from | to | performed by |", "| --- | --- | --- | --- |"]
    for action, rule in TRANSITIONS.items():
        sources = ", ".join(f"`{status}`" for status in sorted(rule.sources))
        if rule.resumes:
            target = "the status before the pause"
        elif rule.target is None:
            target = "unchanged"
        else:
            target = f"`{rule.target}`"
        lines.append(f"| `{action}` | {sources} | {target} | {rule.performed_by} |")
    return "\n".join(lines)
