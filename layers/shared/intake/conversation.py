"""Conversation rules: how one citizen's pushes become draft tickets, submissions and self-service replies.

The rules, in the order `classify` and `plan_content` apply them:

- A text that is only a command word (`[commands]` in texts.zh-CN.toml) or a menu CLICK key acts on the
  draft or asks for progress; "1"/"2"/"3" rate the ticket named by the profile's
  `pending_rating_ticket_id`; a ticket number alone returns that ticket's timeline.
- 「人工」 or a dissatisfied reply hands the auto-answered ticket the profile names
  (`auto_answer_ticket_id`) to staff, or gets a fixed reply when there is none; a `KB:<entry_id>` CLICK
  or `MENU_FAQ` replies from the knowledge base (`intake.auto_answer`).
- Empty or whitespace-only text opens no ticket.
- Content (text, photo, voice, video, short video, location, link) goes, in this order of precedence:
  1. to the citizen's newest ticket in `awaiting_citizen` (待补充), because staff asked for exactly that.
     The first supplement resumes the ticket through the workflow (`supplement_received`: back to the
     status before the pause, deadline moved by the working days paused), in the same transaction;
     messages that follow within the collecting window of the last supplement join the same ticket
     while it is still being handled (the profile's `last_supplement_ticket_id`);
  2. to the open draft (status `collecting`) when at most the collecting window passed between the
     draft's last message and this one (both CreateTime). When more passed, the old draft is submitted
     in the same transaction and a new draft opens;
  3. to an answer from the knowledge base, when ticket-write finds a confident match for its words
     (`intake.auto_answer`);
  4. to a new draft, which queues an acknowledgement carrying the ticket number.
- The periodic LOCATION event updates the profile's `last_location`. A new draft takes it as its location
  when it is at most `LOCATION_EVENT_MAX_AGE_SECONDS` old, and an open draft without a location takes
  it when the event arrives. A location message always replaces a location from an event.

- A rating and the supplement that ends a pause are workflow actions: `intake.workflow.transition`
  decides their effect (a 3 reopens the ticket), exactly as for staff actions.

Every function here is pure: it reads the citizen's state (loaded by ticket-write) and adds transaction
entries, ticket events, notices and media jobs to a `Plan`. Ticket numbers come from the `allocate`
callable, the only side effect, which the caller supplies.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from aws_lambda_powertools import Logger

from intake import clock, texts
from intake.citizen_profile import CitizenProfile, Location, profile_key
from intake.emergency import mentions_emergency
from intake.history import history_item
from intake.keys import message_sk
from intake.media_jobs import media_job_for
from intake.messages import (
    ClickEvent,
    ContentMessage,
    EventMessage,
    ImageMessage,
    LinkMessage,
    LocationEvent,
    LocationMessage,
    Message,
    ScanEvent,
    SubscribeEvent,
    TextMessage,
    UnsubscribeEvent,
    VideoMessage,
    ViewEvent,
    VoiceMessage,
)
from intake.records import CitizenNotice, MediaJob, NoticeKind, TicketEvent
from intake.self_service import rating_choice
from intake.settings import get_settings
from intake.ticket_actions import change_entries, change_event, change_notice
from intake.ticket_numbers import parse_ticket_number
from intake.ticket_repository import (
    Ticket,
    delete,
    marker_item,
    new_ticket_item,
    put_new,
    status_change_values,
    ticket_key,
    update,
    update_ticket,
)
from intake.ticket_status import TicketStatus
from intake.workflow import (
    ActionRequest,
    Change,
    RateRequest,
    SupplementReceivedRequest,
    TransitionNotAllowedError,
    transition,
)
from intake.workflow_config import get_workflow_config
from intake.working_days import get_calendar

logger = Logger(child=True)

# The prefix of menu CLICK keys that name a knowledge entry (办事指南): `KB:<entry_id>`.
GUIDE_KEY_PREFIX = "KB:"
# A position from a LOCATION event older than this does not locate a new draft.
LOCATION_EVENT_MAX_AGE_SECONDS = 1800

CITIZEN = "citizen"
SYSTEM = "system"
# The `caller` recorded in the history of the workflow actions that ticket-write applies.
WECHAT_CALLER = "wechat"
# Statuses in which a ticket that was just supplemented still takes follow-up messages.
SUPPLEMENT_FOLLOW_UP_STATUSES = frozenset(
    {
        TicketStatus.SUBMITTED,
        TicketStatus.ACCEPTED,
        TicketStatus.DISPATCHED,
        TicketStatus.RETURNED,
        TicketStatus.AWAITING_CITIZEN,
    }
)


class Action(StrEnum):
    """What a citizen asks for with a command word or a menu button."""

    REPORT = "report"  # how to report a problem (the welcome text)
    QUERY = "query"
    SUBMIT = "submit"
    CANCEL = "cancel"
    FAQ = "faq"  # list the knowledge base's questions (常见问题)


# The custom menu's CLICK keys, as configured in the WeChat console, and what each does.
MENU_ACTIONS: dict[str, Action] = {
    "MENU_REPORT": Action.REPORT,
    "MENU_QUERY": Action.QUERY,
    "MENU_SUBMIT": Action.SUBMIT,
    "MENU_CANCEL": Action.CANCEL,
    "MENU_FAQ": Action.FAQ,
}


class Intent(StrEnum):
    CONTENT = "content"
    EMPTY_TEXT = "empty_text"
    ACTION = "action"
    LOOKUP = "lookup"
    RATING = "rating"
    HANDOFF = "handoff"  # the citizen asks for a person after an answer from the knowledge base
    GUIDE = "guide"  # a menu button naming a knowledge entry
    SUBSCRIBE = "subscribe"
    UNSUBSCRIBE = "unsubscribe"
    LOCATION_EVENT = "location_event"
    INTERACTION = "interaction"  # opens the 48-hour window but asks for nothing (scan, view, unknown click)
    IGNORE = "ignore"


@dataclass(frozen=True)
class Classification:
    intent: Intent
    action: Action | None = None
    ticket_number: str | None = None
    rating: int | None = None
    handoff_reason: str | None = None
    entry_id: str | None = None


def text_action(text: str) -> Action | None:
    """Return the action when the whole text, trimmed, is one of the configured command words."""
    stripped = text.strip()
    for action in (Action.SUBMIT, Action.CANCEL, Action.QUERY):
        if stripped in texts.lookup(f"commands.{action.value}"):
            return action
    return None


def handoff_reason(text: str) -> str | None:
    """Return why the citizen wants a person (`asked_for_person`, `dissatisfied`) when the text says so."""
    stripped = text.strip()
    if stripped in texts.lookup("commands.handoff"):
        return "asked_for_person"
    if stripped in texts.lookup("commands.dissatisfied"):
        return "dissatisfied"
    return None


def _classify_text(
    message: TextMessage, profile: CitizenProfile | None, ticket_prefix: str
) -> Classification:
    if not message.content.strip():
        return Classification(Intent.EMPTY_TEXT)
    action = text_action(message.content)
    if action:
        return Classification(Intent.ACTION, action=action)
    reason = handoff_reason(message.content)
    if reason is not None:
        # With no answer to hand over, ticket-write still treats the words apart (intake.auto_answer).
        return Classification(Intent.HANDOFF, handoff_reason=reason)
    score = rating_choice(message.content)
    if score is not None and profile is not None and profile.pending_rating_ticket_id:
        return Classification(Intent.RATING, rating=score)
    number = parse_ticket_number(message.content, ticket_prefix)
    if number:
        return Classification(Intent.LOOKUP, ticket_number=number)
    return Classification(Intent.CONTENT)


# Events whose meaning does not depend on their fields.
_EVENT_INTENTS: tuple[tuple[type[EventMessage], Intent], ...] = (
    (SubscribeEvent, Intent.SUBSCRIBE),
    (UnsubscribeEvent, Intent.UNSUBSCRIBE),
    (LocationEvent, Intent.LOCATION_EVENT),
    (ScanEvent, Intent.INTERACTION),
    # A menu link (VIEW) opens no customer-service window in WeChat, unlike click and scan events.
    (ViewEvent, Intent.IGNORE),
)


def _classify_click(key: str) -> Classification:
    menu_action = MENU_ACTIONS.get(key)
    if menu_action:
        return Classification(Intent.ACTION, action=menu_action)
    entry_id = key.removeprefix(GUIDE_KEY_PREFIX).strip() if key.startswith(GUIDE_KEY_PREFIX) else ""
    if entry_id:
        return Classification(Intent.GUIDE, entry_id=entry_id)
    return Classification(Intent.INTERACTION)


def classify(message: Message, profile: CitizenProfile | None, ticket_prefix: str) -> Classification:
    """Decide what a push asks for, before any ticket is read."""
    if isinstance(message, TextMessage):
        return _classify_text(message, profile, ticket_prefix)
    if isinstance(message, ContentMessage):
        return Classification(Intent.CONTENT)
    if isinstance(message, ClickEvent):
        return _classify_click(message.event_key or "")
    for event_type, intent in _EVENT_INTENTS:
        if isinstance(message, event_type):
            return Classification(intent)
    return Classification(Intent.IGNORE)


# -- the plan ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CitizenState:
    """The citizen's data as ticket-write read it before planning.

    `draft` is set only while it is collecting. `supplement_to` is the ticket item (read consistently)
    that content goes to as a supplement: the ticket in `awaiting_citizen`, or the one supplemented
    within the collecting window (see `supplement_target`).
    """

    open_id: str
    profile: CitizenProfile | None
    draft: Ticket | None = None
    supplement_to: dict[str, Any] | None = None


@dataclass
class Plan:
    """Everything one push changes: one DynamoDB transaction, then media jobs, events and notices."""

    dedup_hash: str
    open_id: str
    at: float
    outcome: str = "recorded"
    entries: list[dict[str, Any]] = field(default_factory=list)
    ticket_events: list[TicketEvent] = field(default_factory=list)
    notices: list[CitizenNotice] = field(default_factory=list)
    media_jobs: list[MediaJob] = field(default_factory=list)
    profile_set: dict[str, Any] = field(default_factory=dict)
    profile_remove: list[str] = field(default_factory=list)
    delete_profile: bool = False
    ticket_id: str | None = None
    message_sk: str | None = None

    @property
    def at_iso(self) -> str:
        return clock.iso_utc(self.at)

    def event(
        self,
        ticket_id: str,
        change: str,
        status: TicketStatus,
        previous_status: TicketStatus | None = None,
        actor: str = CITIZEN,
        detail: dict[str, Any] | None = None,
    ) -> None:
        self.ticket_events.append(
            TicketEvent(
                ticket_id=ticket_id,
                change=change,
                status=status.value,
                previous_status=previous_status.value if previous_status else None,
                actor=actor,
                at=self.at,
                detail=detail or {},
            )
        )

    def notice(
        self,
        notice_id: str,
        kind: NoticeKind,
        text: str,
        ticket_id: str | None = None,
        status: TicketStatus | None = None,
    ) -> None:
        self.notices.append(
            CitizenNotice(
                notice_id=notice_id,
                kind=kind,
                open_id=self.open_id,
                ticket_id=ticket_id,
                status=status.value if status else None,
                text=text,
                created_at=self.at,
            )
        )

    def reply_id(self, suffix: str = "reply") -> str:
        """Return a notice id for a reply to this push, stable across its redeliveries."""
        return f"{self.dedup_hash}:{suffix}"

    def pending_events_json(self) -> str:
        return json.dumps(
            {
                "ticket_events": [event.model_dump(mode="json") for event in self.ticket_events],
                "notices": [notice.model_dump(mode="json") for notice in self.notices],
                "media_jobs": [job.model_dump(mode="json") for job in self.media_jobs],
            },
            ensure_ascii=False,
        )

    def transaction(self) -> list[dict[str, Any]]:
        """Return the transaction entries: the push marker first, then the changes, then the profile."""
        marker = put_new(
            marker_item(
                self.dedup_hash,
                at=self.at,
                at_iso=self.at_iso,
                outcome=self.outcome,
                pending_events=self.pending_events_json(),
                ticket_id=self.ticket_id,
                message_sk=self.message_sk,
            )
        )
        entries = [marker, *self.entries]
        if self.delete_profile:
            entries.append(delete(profile_key(self.open_id)))
        elif self.profile_set or self.profile_remove:
            remove = [name for name in self.profile_remove if name not in self.profile_set]
            entries.append(update(profile_key(self.open_id), set_values=self.profile_set, remove=remove))
        return entries


def parse_iso(at_iso: str) -> float:
    return datetime.fromisoformat(at_iso).timestamp()


# -- profile ----------------------------------------------------------------------------------------


def record_interaction(plan: Plan, profile: CitizenProfile | None, create_time: int) -> None:
    """Move the 48-hour customer-service window to this push and reset the quota counted against it."""
    plan.profile_set |= {"item_type": "citizen", "open_id": plan.open_id, "subscribed": True}
    previous = profile.last_interaction_at if profile else None
    if previous is None or create_time >= previous:
        plan.profile_set |= {"last_interaction_at": create_time, "cs_quota_used": 0}


# -- content ----------------------------------------------------------------------------------------


def message_text(message: Message) -> str | None:
    """Return the words of a message: the text, or WeChat's speech recognition of a voice note."""
    if isinstance(message, TextMessage):
        return message.content
    if isinstance(message, VoiceMessage):
        return message.recognition
    return None


def message_location(message: Message) -> Location | None:
    if isinstance(message, LocationMessage):
        return Location(
            latitude=message.latitude,
            longitude=message.longitude,
            label=message.label,
            source="message",
            reported_at=message.create_time,
        )
    return None


def message_item(ticket_id: str, message: ContentMessage, sort_key: str, plan: Plan) -> dict[str, Any]:
    """Return the item of one citizen message under its ticket (`SK=MSG#...`)."""
    item: dict[str, Any] = {
        "PK": f"TICKET#{ticket_id}",
        "SK": sort_key,
        "item_type": "message",
        "ticket_id": ticket_id,
        "msg_id": message.msg_id,
        "msg_type": message.msg_type,
        "dedup_hash": plan.dedup_hash,
        "created_at": clock.iso_utc(message.create_time),
        "received_at": plan.at_iso,
    }
    if isinstance(message, TextMessage):
        item["content"] = message.content
    if isinstance(message, LocationMessage):
        item["location"] = {
            "latitude": message.latitude,
            "longitude": message.longitude,
            "label": message.label,
            "scale": message.scale,
        }
    if isinstance(message, LinkMessage):
        item["link"] = {"title": message.title, "description": message.description, "url": message.url}
    if isinstance(message, ImageMessage | VoiceMessage | VideoMessage):
        # media-store fills in the rest once the file is in S3 (status stored) or gone (status lost).
        item["media"] = {
            "status": "pending",
            "content_type": None,
            "size": None,
            "sha256": None,
            "s3_key": None,
        }
    if isinstance(message, VoiceMessage):
        item["voice_format"] = message.format
        if message.recognition:
            item["recognition"] = message.recognition
    return item


def add_message(plan: Plan, ticket_id: str, message: ContentMessage, status: TicketStatus) -> None:
    sort_key = message_sk(message.create_time, plan.dedup_hash)
    plan.ticket_id = ticket_id
    plan.message_sk = sort_key
    # The message item is itself append-only and timestamped, so it gets no separate history entry.
    plan.entries.append(put_new(message_item(ticket_id, message, sort_key, plan)))
    job = media_job_for(message, ticket_id, sort_key)
    if job:
        plan.media_jobs.append(job)
    plan.event(
        ticket_id,
        "message_added",
        status,
        detail={"msg_id": message.msg_id, "msg_type": message.msg_type, "message_sk": sort_key},
    )


def _flag_emergency(plan: Plan, ticket_id: str, message: Message) -> dict[str, Any]:
    """Queue the 110/119/120 notice when the message mentions an emergency; return the ticket flags."""
    if not mentions_emergency(message_text(message)):
        return {}
    plan.notice(
        plan.reply_id("emergency"),
        NoticeKind.EMERGENCY,
        texts.text("citizen.emergency", ticket_id=ticket_id),
        ticket_id=ticket_id,
    )
    return {"urgent": True, "emergency": True}


def submit_draft(plan: Plan, draft: Ticket, actor: str, reason: str, require_silence: bool = False) -> None:
    """Submit a collecting draft (待受理): status, StatusIndex keys, history, event and notice.

    With `require_silence` the update also requires the draft's `last_message_at` to be unchanged since
    it was read, so the sweep never submits a draft that a message joined in the meantime.
    """
    values = {**status_change_values(TicketStatus.SUBMITTED, plan.at_iso), "submitted_at": plan.at_iso}
    if require_silence:
        entry = update(
            ticket_key(draft.ticket_id),
            set_values=values,
            condition="#c_status = :c_status AND #c_last = :c_last",
            condition_values={
                "#c_status": "status",
                ":c_status": TicketStatus.COLLECTING.value,
                "#c_last": "last_message_at",
                ":c_last": draft.last_message_at,
            },
        )
    else:
        entry = update_ticket(draft.ticket_id, TicketStatus.COLLECTING, set_values=values)
    plan.entries.append(entry)
    _record_draft_closed(plan, draft, TicketStatus.SUBMITTED, actor, {"reason": reason})


def _cancel_draft(plan: Plan, draft: Ticket) -> None:
    plan.entries.append(
        update_ticket(
            draft.ticket_id,
            TicketStatus.COLLECTING,
            set_values=status_change_values(TicketStatus.CANCELLED, plan.at_iso),
        )
    )
    _record_draft_closed(plan, draft, TicketStatus.CANCELLED, CITIZEN)


def _record_draft_closed(
    plan: Plan, draft: Ticket, status: TicketStatus, actor: str, detail: dict[str, Any] | None = None
) -> None:
    """Record that a draft left `collecting` for `status` (submitted or cancelled) and tell the citizen.

    The history entry, the TicketChanged event and the notice share the new status; the notice text is
    `citizen.submitted` or `citizen.cancelled`, and the profile no longer points at the draft.
    """
    plan.entries.append(
        put_new(
            history_item(
                draft.ticket_id,
                "status_changed",
                actor,
                at=plan.at,
                before_status=TicketStatus.COLLECTING,
                after_status=status,
                detail=detail,
            )
        )
    )
    plan.event(
        draft.ticket_id,
        "status_changed",
        status,
        previous_status=TicketStatus.COLLECTING,
        actor=actor,
        detail=detail,
    )
    plan.notice(
        f"{draft.ticket_id}:{status.value}",
        NoticeKind.STATUS,
        texts.text(f"citizen.{status.value}", ticket_id=draft.ticket_id),
        ticket_id=draft.ticket_id,
        status=status,
    )
    plan.profile_remove.append("open_draft_ticket_id")


def _fresh_event_location(profile: CitizenProfile | None, create_time: int) -> Location | None:
    if profile is None or profile.last_location is None:
        return None
    if create_time - profile.last_location.reported_at > LOCATION_EVENT_MAX_AGE_SECONDS:
        return None
    return profile.last_location


def _open_draft(
    plan: Plan, message: ContentMessage, state: CitizenState, allocate: Callable[[int], str]
) -> None:
    ticket_id = allocate(message.create_time)
    created_iso = clock.iso_utc(message.create_time)
    flags = _flag_emergency(plan, ticket_id, message)
    location = message_location(message) or _fresh_event_location(state.profile, message.create_time)
    item = new_ticket_item(ticket_id, plan.open_id, created_iso, location=location, **flags)
    item |= {"message_count": 1, "updated_at": plan.at_iso}
    plan.entries.append(put_new(item))
    plan.entries.append(
        put_new(history_item(ticket_id, "created", CITIZEN, at=plan.at, after_status=TicketStatus.COLLECTING))
    )
    plan.event(ticket_id, "created", TicketStatus.COLLECTING, detail={"msg_type": message.msg_type, **flags})
    add_message(plan, ticket_id, message, TicketStatus.COLLECTING)
    plan.notice(
        f"{ticket_id}:ack",
        NoticeKind.ACKNOWLEDGEMENT,
        texts.text("citizen.acknowledgement", ticket_id=ticket_id),
        ticket_id=ticket_id,
        status=TicketStatus.COLLECTING,
    )
    plan.profile_set["open_draft_ticket_id"] = ticket_id
    plan.outcome = "draft_opened"


def _join_draft(plan: Plan, message: ContentMessage, draft: Ticket) -> None:
    message_iso = clock.iso_utc(message.create_time)
    last_iso = max(message_iso, draft.last_message_at or message_iso)
    values: dict[str, Any] = {"last_message_at": last_iso, "GSI1SK": last_iso, "updated_at": plan.at_iso}
    values |= _flag_emergency(plan, draft.ticket_id, message)
    location = message_location(message)
    if location:
        values["location"] = location.model_dump()
    plan.entries.append(
        update_ticket(draft.ticket_id, TicketStatus.COLLECTING, set_values=values, add={"message_count": 1})
    )
    add_message(plan, draft.ticket_id, message, TicketStatus.COLLECTING)
    plan.outcome = "draft_joined"


def supplement_target(
    awaiting: dict[str, Any] | None,
    last_supplemented: dict[str, Any] | None,
    create_time: int,
    window: int,
) -> dict[str, Any] | None:
    """Choose the ticket item that a content message supplements, if any.

    `awaiting` is the citizen's newest ticket in `awaiting_citizen`; `last_supplemented` is the ticket
    named by the profile's `last_supplement_ticket_id`. The latter takes the message while it is still
    handled and its last supplement is at most `window` seconds older than the message.
    """
    if awaiting is not None and awaiting.get("status") == TicketStatus.AWAITING_CITIZEN:
        return awaiting
    if last_supplemented is None or last_supplemented.get("status") not in SUPPLEMENT_FOLLOW_UP_STATUSES:
        return None
    last = last_supplemented.get("last_supplement_at")
    if not last or create_time - parse_iso(str(last)) > window:
        return None
    return last_supplemented


def _resume_change(plan: Plan, item: dict[str, Any]) -> Change | None:
    """Return the workflow change that ends the pause, or None when the ticket cannot resume."""
    if item.get("status") != TicketStatus.AWAITING_CITIZEN:
        return None
    try:
        return transition(
            item,
            SupplementReceivedRequest(action="supplement_received", actor=CITIZEN),
            plan.at,
            get_workflow_config(),
            get_calendar(),
        )
    except TransitionNotAllowedError as err:
        # An item without `resume_status` (written before the workflow recorded it) keeps waiting;
        # staff resume it with the `resume` action.
        logger.warning(
            "supplement cannot resume the ticket",
            extra={"ticket_id": item.get("ticket_id"), "reason": err.reason},
        )
        return None


def _attach_supplement(plan: Plan, message: ContentMessage, item: dict[str, Any], window: int) -> None:
    ticket_id = str(item["ticket_id"])
    status = TicketStatus(str(item["status"]))
    message_iso = clock.iso_utc(message.create_time)
    values: dict[str, Any] = {
        "last_message_at": message_iso,
        "last_supplement_at": message_iso,
        "updated_at": plan.at_iso,
    }
    values |= _flag_emergency(plan, ticket_id, message)
    location = message_location(message)
    if location:
        values["location"] = location.model_dump()

    change = _resume_change(plan, item)
    if change is not None:
        entries, entry = change_entries(
            item, change, CITIZEN, WECHAT_CALLER, plan.at, extra_set=values, add={"message_count": 1}
        )
        plan.entries += entries
        plan.ticket_events.append(change_event(ticket_id, change, entry, plan.at))
        plan.notices += [
            change_notice(ticket_id, plan.open_id, draft, entry, plan.at) for draft in change.notices
        ]
        status = change.after_status
    else:
        plan.entries.append(update_ticket(ticket_id, status, set_values=values, add={"message_count": 1}))

    add_message(plan, ticket_id, message, status)
    plan.event(
        ticket_id,
        "supplement_received",
        status,
        detail={"msg_type": message.msg_type, "message_sk": plan.message_sk},
    )
    # One acknowledgement per burst of supplements, like the draft's collecting window.
    last = item.get("last_supplement_at")
    if not last or message.create_time - parse_iso(str(last)) > window:
        plan.notice(
            plan.reply_id("supplement"),
            NoticeKind.STATUS,
            texts.text("citizen.supplement_received", ticket_id=ticket_id),
            ticket_id=ticket_id,
            status=status,
        )
    plan.profile_set["last_supplement_ticket_id"] = ticket_id
    plan.outcome = "supplement_attached"


def draft_is_silent(draft: Ticket, at: float, window: int) -> bool:
    """Return True when more than `window` seconds passed between the draft's last message and `at`."""
    if draft.last_message_at is None:
        return True
    return at - parse_iso(draft.last_message_at) > window


def plan_content(
    plan: Plan, message: ContentMessage, state: CitizenState, window: int, allocate: Callable[[int], str]
) -> None:
    """Add one content message to the right ticket (see the module docstring for the precedence)."""
    record_interaction(plan, state.profile, message.create_time)
    plan.profile_set["last_message_at"] = message.create_time
    if state.supplement_to is not None:
        _attach_supplement(plan, message, state.supplement_to, window)
        return
    draft = state.draft
    if draft is not None and not draft_is_silent(draft, message.create_time, window):
        _join_draft(plan, message, draft)
        return
    if draft is not None:
        submit_draft(plan, draft, SYSTEM, reason="collecting_window_elapsed")
    _open_draft(plan, message, state, allocate)


def plan_empty_text(plan: Plan, message: TextMessage, state: CitizenState) -> None:
    record_interaction(plan, state.profile, message.create_time)
    plan.outcome = "empty_text_ignored"


# -- commands ---------------------------------------------------------------------------------------


def plan_action(plan: Plan, action: Action, message: Message, state: CitizenState) -> None:
    """Submit or cancel the draft, or send the welcome text; ticket-write plans QUERY and FAQ itself."""
    record_interaction(plan, state.profile, message.create_time)
    if action is Action.REPORT:
        plan.notice(plan.reply_id("welcome"), NoticeKind.WELCOME, welcome_text())
        plan.outcome = "welcome_sent"
    elif action is Action.SUBMIT:
        if state.draft is None:
            plan.notice(plan.reply_id(), NoticeKind.SELF_SERVICE, texts.text("citizen.nothing_to_submit"))
            plan.outcome = "nothing_to_submit"
            return
        submit_draft(plan, state.draft, CITIZEN, reason="citizen_submitted")
        plan.ticket_id = state.draft.ticket_id
        plan.outcome = "draft_submitted"
    elif action is Action.CANCEL:
        if state.draft is None:
            plan.notice(plan.reply_id(), NoticeKind.SELF_SERVICE, texts.text("citizen.nothing_to_cancel"))
            plan.outcome = "nothing_to_cancel"
            return
        _cancel_draft(plan, state.draft)
        plan.ticket_id = state.draft.ticket_id
        plan.outcome = "draft_cancelled"


def plan_self_service_reply(plan: Plan, message: Message, state: CitizenState, text: str) -> None:
    """Queue the reply to a progress query or a ticket-number lookup, rendered by intake.self_service."""
    record_interaction(plan, state.profile, message.create_time)
    plan.notice(plan.reply_id(), NoticeKind.SELF_SERVICE, text)
    plan.outcome = "self_service_answered"


def plan_rating(
    plan: Plan, message: TextMessage, state: CitizenState, item: dict[str, Any], score: int
) -> None:
    """Record the citizen's rating of a closed ticket (item read consistently) through the workflow.

    `intake.workflow.transition` decides the effect: 1 and 2 rate the ticket, 3 (不满意) reopens it
    (重办). Raises TransitionNotAllowedError when the workflow refuses, for example a reopen of a
    ticket without a department.
    """
    request = RateRequest(action="rate", actor=CITIZEN, score=score)
    change = plan_citizen_action(plan, item, request, state, message, "pending_rating_ticket_id")
    plan.outcome = "ticket_rated" if change.after_status is TicketStatus.RATED else "ticket_reopened"


def plan_citizen_action(
    plan: Plan,
    item: dict[str, Any],
    request: ActionRequest,
    state: CitizenState,
    message: Message,
    done_profile_key: str,
) -> Change:
    """Apply a citizen's workflow action to the ticket `item` and add its history, event and notices.

    `done_profile_key` is the profile attribute that pointed at the ticket awaiting this action; it is
    removed. Raises TransitionNotAllowedError when the workflow rejects the action.
    """
    ticket_id = str(item["ticket_id"])
    change = transition(item, request, plan.at, get_workflow_config(), get_calendar())
    record_interaction(plan, state.profile, message.create_time)
    plan.profile_remove.append(done_profile_key)
    plan.ticket_id = ticket_id
    entries, entry = change_entries(item, change, CITIZEN, WECHAT_CALLER, plan.at)
    plan.entries += entries
    plan.ticket_events.append(change_event(ticket_id, change, entry, plan.at))
    plan.notices += [
        change_notice(ticket_id, plan.open_id, draft, entry, plan.at) for draft in change.notices
    ]
    return change


# -- events -----------------------------------------------------------------------------------------


def welcome_text() -> str:
    """Return the welcome text with this deployment's collecting window in minutes."""
    minutes = max(1, round(get_settings().collecting_window_seconds / 60))
    return texts.text("citizen.welcome", window_minutes=minutes)


def plan_subscribe(plan: Plan, message: EventMessage, state: CitizenState) -> None:
    record_interaction(plan, state.profile, message.create_time)
    plan.notice(plan.reply_id("welcome"), NoticeKind.WELCOME, welcome_text())
    plan.outcome = "subscribed"


def plan_interaction(plan: Plan, message: EventMessage, state: CitizenState) -> None:
    record_interaction(plan, state.profile, message.create_time)
    plan.outcome = "interaction_recorded"


def plan_location_event(plan: Plan, message: LocationEvent, state: CitizenState) -> None:
    """Store the reported position; an open draft without a location takes it (see the module docstring)."""
    location = Location(
        latitude=message.latitude,
        longitude=message.longitude,
        source="location_event",
        reported_at=message.create_time,
    )
    if state.profile is None:
        # No profile means not subscribed; a location report alone does not create one.
        plan.outcome = "location_ignored"
        return
    plan.profile_set["last_location"] = location.model_dump()
    plan.outcome = "location_recorded"
    draft = state.draft
    if draft is None or draft.location is not None:
        return
    plan.entries.append(
        update_ticket(
            draft.ticket_id,
            TicketStatus.COLLECTING,
            set_values={"location": location.model_dump(), "updated_at": plan.at_iso},
        )
    )
    plan.event(
        draft.ticket_id, "location_changed", TicketStatus.COLLECTING, detail={"source": "location_event"}
    )
    plan.ticket_id = draft.ticket_id
    plan.outcome = "draft_located"


def plan_unsubscribe(
    plan: Plan, pseudonymized: list[Ticket], deleted_draft_id: str | None, pseudonym: str | None
) -> None:
    """Delete the profile and publish what the erasure changed (the caller already changed the tickets).

    Events and notices never carry the OpenID of an unsubscribed citizen: there are no notices, and
    ticket events name the ticket only.
    """
    plan.delete_profile = True
    plan.outcome = "citizen_erased"
    if deleted_draft_id:
        plan.event(deleted_draft_id, "draft_deleted", TicketStatus.CANCELLED, actor=SYSTEM)
    for ticket in pseudonymized:
        plan.event(
            ticket.ticket_id,
            "citizen_pseudonymized",
            ticket.status,
            actor=SYSTEM,
            detail={"pseudonym": pseudonym} if pseudonym else {},
        )
