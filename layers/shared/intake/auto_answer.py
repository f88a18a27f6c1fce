"""Consultations answered at once from the knowledge base, the 「人工」 handoff and the guide buttons.

The rules (docs/workflow.md, "Answers from the knowledge base"):

- Content with words (a text, or a voice message's recognition) that goes to no open draft and no
  ticket awaiting a supplement is matched with `intake.knowledge_matching.best_match`. A confident
  match is answered at once with the entry's answer and the line that offers a person. The push still
  becomes a ticket of appeal type `consultation` in status `replied`, with `auto_answer` (entry id,
  question, score, answer, time) and the answer as `reply_text`. The profile's `auto_answer_ticket_id`
  names it.
- 「人工」 (or a configured synonym, or a dissatisfied reply such as 没用) sent within
  `auto_answer_close_hours` of the answer (judged by the message's CreateTime, capped at now) applies
  the citizen's `handoff` action: the ticket becomes `submitted` (待受理) for staff, and the citizen
  gets the normal acknowledgement. Staff can apply `handoff` too (`intake.ticket_actions`).
- The same words with nothing to hand over (no answer, or its period ended) join an open draft or a
  ticket awaiting a supplement like any content; otherwise they get `citizen.handoff_unavailable` and
  open no ticket.
- Otherwise draft-submit's sweep closes the ticket (system `close`) once the period has passed, without
  a closing notice or rating invitation (`intake.workflow._apply_close`).
- A message that mentions an emergency is never answered from the base: it takes the normal flow,
  which sends the 110/119/120 reply.
- A failed read of the knowledge base is logged as a warning and the push takes the normal flow.
- A menu CLICK with the key `KB:<entry_id>` replies with that entry's answer and opens no ticket; the
  key `MENU_FAQ` lists the base's questions.

The plan functions are pure, like `intake.conversation`: ticket-write loads the entries and tickets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from intake import clock, texts
from intake.conversation import (
    CITIZEN,
    SYSTEM,
    CitizenState,
    Plan,
    add_message,
    message_location,
    message_text,
    plan_citizen_action,
    record_interaction,
)
from intake.emergency import mentions_emergency
from intake.history import history_item
from intake.knowledge_base import KnowledgeEntry
from intake.knowledge_matching import KnowledgeMatch, best_match
from intake.messages import ContentMessage, Message
from intake.records import NoticeKind
from intake.ticket_actions import change_entries
from intake.ticket_repository import new_ticket_item, put_new, status_change_values
from intake.ticket_status import TicketStatus
from intake.workflow import (
    Change,
    CloseRequest,
    HandoffRequest,
    auto_answer_period_ended,
    awaits_auto_close,
    transition,
)
from intake.workflow_config import get_workflow_config
from intake.working_days import get_calendar

logger = Logger(child=True)

# How many questions the 常见问题 button lists.
FAQ_LIMIT = 8
# The `caller` recorded in the history of draft-submit's automatic close.
SWEEP_CALLER = "draft-submit"


def find_answer(
    message: Message, load_entries: Callable[[], Sequence[KnowledgeEntry]], threshold: float
) -> KnowledgeMatch | None:
    """Return the knowledge entry that answers the message confidently, or None for the normal flow."""
    words = message_text(message)
    if not words or not words.strip() or mentions_emergency(words):
        return None
    try:
        entries = load_entries()
    except (ClientError, BotoCoreError, ValidationError) as err:
        logger.warning(
            "knowledge base unavailable, message takes the normal flow",
            extra={"error": type(err).__name__},
        )
        return None
    return best_match(words, entries, threshold)


# -- the answer -------------------------------------------------------------------------------------


def auto_answer_record(match: KnowledgeMatch, at: float) -> dict[str, Any]:
    """Return the ticket's `auto_answer` attribute: which answer was given, how sure, and when."""
    entry = match.entry
    return {
        "entry_id": entry.entry_id,
        "entry_version": entry.version,
        "question": entry.question,
        "score": match.score,
        "answer": entry.answer,
        "answered_at": clock.iso_utc(at),
    }


def plan_auto_answer(
    plan: Plan,
    message: ContentMessage,
    state: CitizenState,
    match: KnowledgeMatch,
    allocate: Callable[[int], str],
) -> None:
    """Answer the consultation from the knowledge base and record it as a replied ticket."""
    record_interaction(plan, state.profile, message.create_time)
    plan.profile_set["last_message_at"] = message.create_time
    ticket_id = allocate(message.create_time)
    record = auto_answer_record(match, plan.at)

    # The ticket is born replied: staff see the question, the answer given and the score.
    item = new_ticket_item(
        ticket_id, plan.open_id, clock.iso_utc(message.create_time), message_location(message)
    )
    item |= status_change_values(TicketStatus.REPLIED, plan.at_iso)
    item |= {
        "appeal_type": "consultation",
        "category": match.entry.category,
        "submitted_at": plan.at_iso,
        "replied_at": plan.at_iso,
        "reply_text": match.entry.answer,
        "replied_on_time": True,
        "auto_answer": record,
        "message_count": 1,
        "updated_at": plan.at_iso,
    }
    plan.entries.append(put_new(item))

    plan.entries.append(
        put_new(history_item(ticket_id, "created", CITIZEN, at=plan.at, after_status=TicketStatus.REPLIED))
    )
    plan.entries.append(
        put_new(
            history_item(
                ticket_id,
                "auto_answered",
                SYSTEM,
                at=plan.at,
                after_status=TicketStatus.REPLIED,
                detail=record,
            )
        )
    )
    detail = {"msg_type": message.msg_type, "auto_answered": True, "entry_id": match.entry.entry_id}
    plan.event(ticket_id, "created", TicketStatus.REPLIED, detail=detail)
    add_message(plan, ticket_id, message, TicketStatus.REPLIED)

    plan.notice(
        f"{ticket_id}:auto_answer",
        NoticeKind.SELF_SERVICE,
        texts.text("citizen.auto_answer", answer=match.entry.answer, ticket_id=ticket_id),
        ticket_id=ticket_id,
        status=TicketStatus.REPLIED,
    )
    plan.profile_set["auto_answer_ticket_id"] = ticket_id
    plan.outcome = "auto_answered"


# -- the handoff ------------------------------------------------------------------------------------


def plan_handoff(
    plan: Plan, message: Message, state: CitizenState, item: dict[str, Any], reason: str
) -> None:
    """Hand the auto-answered ticket (item read consistently) to staff through the workflow.

    Raises TransitionNotAllowedError when the ticket is no longer waiting (closed, handed over, or the
    period has ended).
    """
    request = HandoffRequest(
        action="handoff",
        actor=CITIZEN,
        reason=reason,  # type: ignore[arg-type]
        asked_at=message.create_time,
    )
    plan_citizen_action(plan, item, request, state, message, "auto_answer_ticket_id")
    plan.outcome = "handed_off"


def plan_handoff_unavailable(plan: Plan, message: Message, state: CitizenState) -> None:
    """Answer 「人工」 that has no knowledge-base answer to hand over; a draft of only that word helps no one."""
    record_interaction(plan, state.profile, message.create_time)
    plan.notice(plan.reply_id("handoff"), NoticeKind.SELF_SERVICE, texts.text("citizen.handoff_unavailable"))
    plan.outcome = "handoff_unavailable"


# -- the automatic close ----------------------------------------------------------------------------


def auto_close_due(item: dict[str, Any], at: float) -> bool:
    """Return True when an auto-answered ticket is still replied, not handed over, and its period ended."""
    return (
        item.get("status") == TicketStatus.REPLIED
        and awaits_auto_close(item)
        and auto_answer_period_ended(item, at, get_workflow_config())
    )


def auto_close_change(item: dict[str, Any], at: float) -> tuple[Change, list[dict[str, Any]], dict[str, Any]]:
    """Return the system `close` of an auto-answered ticket: the change, its entries and history entry."""
    change = transition(
        item, CloseRequest(action="close", actor=SYSTEM), at, get_workflow_config(), get_calendar()
    )
    entries, entry = change_entries(item, change, SYSTEM, SWEEP_CALLER, at)
    return change, entries, entry


# -- the guide buttons ------------------------------------------------------------------------------


def plan_guide(
    plan: Plan, message: Message, state: CitizenState, entry_id: str, entry: KnowledgeEntry | None, day: date
) -> None:
    """Reply to a `KB:<entry_id>` menu button with the entry's answer, or a polite fallback; no ticket."""
    record_interaction(plan, state.profile, message.create_time)
    if entry is None or entry.status != "active" or not entry.is_valid_on(day):
        logger.warning(
            "guide button names no active knowledge entry",
            extra={"entry_id": entry_id, "status": entry.status if entry else None},
        )
        plan.notice(plan.reply_id("guide"), NoticeKind.SELF_SERVICE, texts.text("citizen.guide_unavailable"))
        plan.outcome = "guide_unavailable"
        return
    plan.notice(plan.reply_id("guide"), NoticeKind.SELF_SERVICE, entry.answer)
    plan.outcome = "guide_answered"


def faq_text(entries: Sequence[KnowledgeEntry]) -> str:
    """Return the list of the base's questions, in entry-id order, at most FAQ_LIMIT."""
    chosen = sorted(entries, key=lambda entry: entry.entry_id)[:FAQ_LIMIT]
    if not chosen:
        return texts.text("citizen.guide_unavailable")
    lines = [texts.text("citizen.faq_header")]
    lines += [
        texts.text("citizen.faq_line", number=number, question=entry.question)
        for number, entry in enumerate(chosen, start=1)
    ]
    return "\n".join(lines)


def plan_faq(plan: Plan, message: Message, state: CitizenState, entries: Sequence[KnowledgeEntry]) -> None:
    record_interaction(plan, state.profile, message.create_time)
    plan.notice(plan.reply_id("faq"), NoticeKind.SELF_SERVICE, faq_text(entries))
    plan.outcome = "faq_answered"
