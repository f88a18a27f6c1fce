"""ticket-write: turns queued WeChat pushes into tickets, exactly once per push, and replies to self-service.

Three layers keep a push from landing twice:
1. The FIFO queue's deduplication (MessageDeduplicationId = hash of the push's dedup id).
2. Powertools idempotency keyed by the dedup id. It covers the whole unit (write, media job, publish),
   so a failure anywhere raises, Powertools deletes the in-progress record and the redelivery runs again.
3. The push marker `PUSH#{dedup_hash}`, written in the same DynamoDB transaction as the push's changes.
   A redelivery that finds it writes nothing again and only publishes what the marker still lists as
   pending, so it also holds after the idempotency record expired.

`SqsFifoPartialProcessor(skip_group_on_error=True)` keeps each citizen's order: after a failure, the
rest of that citizen's records in the batch are reported as failures too, and other citizens go on.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from intake import clock
from intake.auto_answer import (
    find_answer,
    plan_auto_answer,
    plan_faq,
    plan_guide,
    plan_handoff,
    plan_handoff_unavailable,
)
from intake.citizen_profile import CitizenProfile
from intake.conversation import (
    Action,
    CitizenState,
    Classification,
    Intent,
    Plan,
    classify,
    draft_is_silent,
    plan_action,
    plan_content,
    plan_empty_text,
    plan_interaction,
    plan_location_event,
    plan_rating,
    plan_self_service_reply,
    plan_subscribe,
    plan_unsubscribe,
    supplement_target,
)
from intake.event_bus import EventPublisher
from intake.keys import TICKET_SK
from intake.knowledge_base import KnowledgeEntry, KnowledgeRepository, cached_active_entries, china_today
from intake.media_jobs import MediaJobSender, media_job_for
from intake.messages import (
    ContentMessage,
    LocationEvent,
    Message,
    TextMessage,
    UnknownMessage,
    hashed_dedup_id,
)
from intake.pseudonym import get_pseudonym_key, pseudonymize
from intake.records import CitizenNotice, InboundRecord, MediaJob, TicketEvent
from intake.self_service import (
    TICKET_LIST_LIMIT,
    ticket_detail_text,
    ticket_list_text,
    ticket_not_found_text,
)
from intake.settings import get_settings
from intake.ticket_numbers import TicketNumberAllocator
from intake.ticket_repository import (
    ConcurrentTicketChangeError,
    PushAlreadyWrittenError,
    Ticket,
    TicketRepository,
    ticket_key,
)
from intake.ticket_status import TicketStatus
from intake.workflow import TransitionNotAllowedError

# How often one push is planned again after a concurrent change (the draft sweep, a staff action).
MAX_PLAN_ATTEMPTS = 3

settings = get_settings()
logger = Logger()
metrics = Metrics()
processor = SqsFifoPartialProcessor(skip_group_on_error=True)
dynamodb = boto3.resource("dynamodb")
table = dynamodb.Table(settings.table_name)
repository = TicketRepository(table=table, client=dynamodb.meta.client)
ticket_numbers = TicketNumberAllocator(table, settings.ticket_prefix)
knowledge = KnowledgeRepository(table)
events_client = boto3.client("events")
sqs_client = boto3.client("sqs")
persistence_layer = DynamoDBPersistenceLayer(table_name=settings.idempotency_table_name)


def count_idempotent_replay(response: Any, idempotent_data: DataRecord) -> Any:
    """Count a redelivered push that Powertools idempotency answered from its store."""
    metrics.add_metric(name="DuplicatePushSkipped", unit=MetricUnit.Count, value=1)
    return response


idempotency_config = IdempotencyConfig(
    event_key_jmespath="dedup_id", raise_on_no_idempotency_key=True, response_hook=count_idempotent_replay
)


class InvalidInboundRecordError(ValueError):
    """The SQS body is not a valid InboundRecord; it fails on every delivery and ends in the DLQ."""


# -- parsing ----------------------------------------------------------------------------------------


def _error_summary(err: ValidationError) -> list[dict[str, Any]]:
    """Return where and how validation failed, without the input values (they may hold an OpenID)."""
    return [
        {"loc": ".".join(str(part) for part in error["loc"]), "type": error["type"]}
        for error in err.errors(include_url=False, include_input=False, include_context=False)
    ]


def _reject(record: SQSRecord, reason: str, errors: list[dict[str, Any]] | None = None) -> None:
    logger.error(
        "inbound record rejected",
        extra={
            "message_id": record.message_id,
            "reason": reason,
            "errors": errors or [],
            "receive_count": record.attributes.approximate_receive_count,
        },
    )
    raise InvalidInboundRecordError(f"SQS message {record.message_id} rejected: {reason}")


def parse_record(record: SQSRecord) -> tuple[InboundRecord, Message]:
    """Validate the body and check that the record, its message and its SQS group agree."""
    try:
        inbound = InboundRecord.model_validate_json(record.body)
    except ValidationError as err:
        _reject(record, "invalid InboundRecord", _error_summary(err))
    try:
        message = inbound.message()
    except ValidationError as err:
        _reject(record, "invalid push fields", _error_summary(err))
    if message.open_id != inbound.open_id or message.dedup_id() != inbound.dedup_id:
        _reject(record, "record does not match its push fields")
    group_id = record.attributes.message_group_id
    if group_id is not None and group_id != inbound.open_id:
        _reject(record, "MessageGroupId is not the record's OpenID")
    return inbound, message


# -- loading and planning ---------------------------------------------------------------------------


def load_draft(profile_draft_id: str | None) -> Ticket | None:
    """Return the profile's open draft while it is still collecting (the sweep may have submitted it)."""
    if not profile_draft_id:
        return None
    draft = repository.get_ticket(profile_draft_id)
    if draft is None or draft.status != TicketStatus.COLLECTING:
        return None
    return draft


def owned_ticket(ticket_id: str | None, open_id: str) -> Ticket | None:
    """Return the ticket when it exists and belongs to this citizen, else None."""
    if not ticket_id:
        return None
    ticket = repository.get_ticket(ticket_id)
    if ticket is None or ticket.open_id_pseudonymized or ticket.open_id != open_id:
        return None
    return ticket


def erase_citizen(open_id: str) -> tuple[list[Ticket], str | None, str | None]:
    """Delete the citizen's drafts and replace the OpenID on every kept ticket with its pseudonym.

    Each step can run again after a crash: deleted items stay deleted and the pseudonym update is
    conditional on the ticket still carrying the OpenID.
    """
    profile = repository.get_profile(open_id)
    deleted_draft_id: str | None = None
    if profile and profile.open_draft_ticket_id and repository.delete_draft(profile.open_draft_ticket_id):
        deleted_draft_id = profile.open_draft_ticket_id
    # NOTE: CitizenIndex is eventually consistent, so a ticket created within about a second before the
    # unsubscribe can be missed here and keep its OpenID.
    tickets = repository.citizen_tickets(open_id)
    kept = []
    for ticket in tickets:
        if ticket.status == TicketStatus.COLLECTING:
            if repository.delete_draft(ticket.ticket_id):
                deleted_draft_id = deleted_draft_id or ticket.ticket_id
            else:
                kept.append(ticket)
        else:
            kept.append(ticket)
    if not kept:
        return [], deleted_draft_id, None
    pseudonym = pseudonymize(open_id, get_pseudonym_key())
    changed = [
        ticket for ticket in kept if repository.pseudonymize_ticket(ticket.ticket_id, open_id, pseudonym)
    ]
    logger.info(
        "citizen erased",
        extra={"pseudonymized_tickets": len(changed), "deleted_draft_id": deleted_draft_id},
    )
    return changed, deleted_draft_id, pseudonym


def lookup_text(ticket_number: str | None, open_id: str) -> str:
    """Render a ticket's timeline for its owner; any other citizen learns only that it was not found."""
    ticket = owned_ticket(ticket_number, open_id)
    if ticket is None:
        return ticket_not_found_text(ticket_number or "")
    return ticket_detail_text(ticket, repository.history(ticket.ticket_id))


def ticket_item(ticket_id: str) -> dict[str, Any] | None:
    """Return the raw ticket item, read consistently, as the workflow's transition() takes it."""
    return repository.get_item(ticket_key(ticket_id)["PK"], TICKET_SK)


def load_supplement_target(
    profile: CitizenProfile | None, open_id: str, create_time: int
) -> dict[str, Any] | None:
    """Return the ticket item that this citizen's content supplements (rules in intake.conversation)."""
    awaiting = repository.awaiting_ticket(open_id)
    awaiting_item = ticket_item(awaiting.ticket_id) if awaiting else None
    last_id = profile.last_supplement_ticket_id if profile else None
    last = owned_ticket(last_id, open_id)
    last_item = ticket_item(last.ticket_id) if last else None
    return supplement_target(awaiting_item, last_item, create_time, settings.collecting_window_seconds)


def plan_rating_or_content(plan: Plan, message: TextMessage, state: CitizenState, score: int) -> None:
    """Rate the ticket awaiting a rating; when the invitation is stale, the digit is ordinary content."""
    pending_id = state.profile.pending_rating_ticket_id if state.profile else None
    ticket = owned_ticket(pending_id, state.open_id)
    item = ticket_item(ticket.ticket_id) if ticket is not None else None
    if item is not None and item.get("status") == TicketStatus.CLOSED:
        try:
            plan_rating(plan, message, state, item, score)
            return
        except TransitionNotAllowedError as err:
            logger.warning(
                "rating rejected by the workflow",
                extra={"ticket_id": item["ticket_id"], "reason": err.reason},
            )
    # Already rated, reopened by staff in the meantime, or refused: the digit is content.
    target = load_supplement_target(state.profile, state.open_id, message.create_time)
    state = CitizenState(state.open_id, state.profile, state.draft, supplement_to=target)
    plan_content(plan, message, state, settings.collecting_window_seconds, ticket_numbers.allocate)
    plan.profile_remove.append("pending_rating_ticket_id")


def active_knowledge() -> list[KnowledgeEntry]:
    """Return today's active knowledge entries (China time), read at most once a minute per instance."""
    return cached_active_entries(knowledge, china_today())


def plan_content_or_answer(plan: Plan, message: ContentMessage, state: CitizenState) -> None:
    """Plan content by the precedence of intake.conversation, answering from the knowledge base when it can.

    A ticket awaiting a supplement and an open draft both come before the knowledge base.
    """
    target = load_supplement_target(state.profile, state.open_id, message.create_time)
    state = CitizenState(state.open_id, state.profile, state.draft, supplement_to=target)
    if target is None and state.draft is None:
        match = find_answer(message, active_knowledge, settings.knowledge_match_threshold)
        if match is not None:
            plan_auto_answer(plan, message, state, match, ticket_numbers.allocate)
            return
    plan_content(plan, message, state, settings.collecting_window_seconds, ticket_numbers.allocate)


def plan_handoff_or_content(plan: Plan, message: TextMessage, state: CitizenState, reason: str) -> None:
    """Hand the auto-answered ticket to staff.

    With nothing to hand over (no answer, or its period ended), the words join a ticket awaiting a
    supplement or an open draft as content; otherwise they get a fixed reply and open no ticket.
    """
    ticket_id = state.profile.auto_answer_ticket_id if state.profile else None
    ticket = owned_ticket(ticket_id, state.open_id)
    item = ticket_item(ticket.ticket_id) if ticket is not None else None
    if item is not None:
        try:
            plan_handoff(plan, message, state, item, reason)
            return
        except TransitionNotAllowedError as err:
            logger.info("handoff not possible", extra={"ticket_id": item["ticket_id"], "reason": err.reason})
    if ticket_id:
        plan.profile_remove.append("auto_answer_ticket_id")
    window = settings.collecting_window_seconds
    target = load_supplement_target(state.profile, state.open_id, message.create_time)
    draft_open = state.draft is not None and not draft_is_silent(state.draft, message.create_time, window)
    if target is None and not draft_open:
        plan_handoff_unavailable(plan, message, state)
        return
    state = CitizenState(state.open_id, state.profile, state.draft, supplement_to=target)
    plan_content(plan, message, state, window, ticket_numbers.allocate)


def load_guide_entry(entry_id: str) -> KnowledgeEntry | None:
    """Return the knowledge entry a menu button names; a failed read is logged and treated as missing."""
    try:
        return knowledge.get(entry_id)
    except (ClientError, BotoCoreError, ValidationError) as err:
        logger.warning(
            "knowledge entry unreadable", extra={"entry_id": entry_id, "error": type(err).__name__}
        )
        return None


def plan_request(plan: Plan, classification: Classification, message: Message, state: CitizenState) -> None:
    """Plan a command word, a menu button or a ticket-number lookup."""
    if classification.intent is Intent.LOOKUP:
        text = lookup_text(classification.ticket_number, state.open_id)
        plan_self_service_reply(plan, message, state, text)
    elif classification.intent is Intent.GUIDE:
        entry_id = classification.entry_id or ""
        plan_guide(plan, message, state, entry_id, load_guide_entry(entry_id), china_today())
    elif classification.action is Action.QUERY:
        tickets = repository.citizen_tickets(state.open_id, limit=TICKET_LIST_LIMIT)
        plan_self_service_reply(plan, message, state, ticket_list_text(tickets))
    elif classification.action is Action.FAQ:
        plan_faq(plan, message, state, active_knowledge())
    elif classification.action is not None:
        plan_action(plan, classification.action, message, state)


def build_plan(message: Message, dedup_hash: str) -> Plan | None:
    """Read the citizen's state and plan this push's changes; None when the push changes nothing."""
    open_id = message.open_id
    profile = repository.get_profile(open_id)
    classification = classify(message, profile, settings.ticket_prefix)
    if classification.intent is Intent.IGNORE:
        return None
    plan = Plan(dedup_hash=dedup_hash, open_id=open_id, at=clock.now())
    draft = load_draft(profile.open_draft_ticket_id if profile else None)
    state = CitizenState(open_id=open_id, profile=profile, draft=draft)

    match classification.intent:
        case Intent.CONTENT:
            assert isinstance(message, ContentMessage)
            plan_content_or_answer(plan, message, state)
        case Intent.EMPTY_TEXT:
            assert isinstance(message, TextMessage)
            plan_empty_text(plan, message, state)
        case Intent.ACTION | Intent.LOOKUP | Intent.GUIDE:
            plan_request(plan, classification, message, state)
        case Intent.HANDOFF:
            assert isinstance(message, TextMessage)
            plan_handoff_or_content(plan, message, state, classification.handoff_reason or "")
        case Intent.RATING:
            assert isinstance(message, TextMessage)
            plan_rating_or_content(plan, message, state, classification.rating or 0)
        case Intent.SUBSCRIBE:
            plan_subscribe(plan, message, state)  # type: ignore[arg-type]
        case Intent.UNSUBSCRIBE:
            pseudonymized, deleted_draft_id, pseudonym = erase_citizen(open_id)
            plan_unsubscribe(plan, pseudonymized, deleted_draft_id, pseudonym)
        case Intent.LOCATION_EVENT:
            assert isinstance(message, LocationEvent)
            plan_location_event(plan, message, state)
        case Intent.INTERACTION:
            plan_interaction(plan, message, state)  # type: ignore[arg-type]
    return plan


# -- delivery ---------------------------------------------------------------------------------------


def deliver(
    dedup_hash: str,
    media_jobs: list[MediaJob],
    ticket_events: list[TicketEvent],
    notices: list[CitizenNotice],
) -> None:
    """Send media jobs, publish events and notices, then mark the push complete; any failure raises."""
    sender = MediaJobSender(sqs_client, settings.media_queue_url)
    for job in media_jobs:
        sender.send(job)
    EventPublisher(events_client, settings.event_bus_name).publish(ticket_events, notices)
    repository.complete_marker(dedup_hash, clock.iso_utc(clock.now()))


def resume(marker: dict[str, Any], message: Message, dedup_hash: str) -> dict[str, str]:
    """Finish a push whose changes an earlier delivery committed: publish what is pending, nothing else."""
    ticket_id = str(marker.get("ticket_id", ""))
    pending = marker.get("pending_events")
    if pending:
        document = json.loads(pending)
        deliver(
            dedup_hash,
            [MediaJob.model_validate(job) for job in document["media_jobs"]],
            [TicketEvent.model_validate(event) for event in document["ticket_events"]],
            [CitizenNotice.model_validate(notice) for notice in document["notices"]],
        )
        logger.info("redelivered push completed", extra={"dedup_hash": dedup_hash, "ticket_id": ticket_id})
        return {"outcome": "resumed", "ticket_id": ticket_id}
    resend_pending_media(marker, message)
    logger.info("redelivered push already complete", extra={"dedup_hash": dedup_hash, "ticket_id": ticket_id})
    metrics.add_metric(name="DuplicatePushSkipped", unit=MetricUnit.Count, value=1)
    return {"outcome": "duplicate", "ticket_id": ticket_id}


def resend_pending_media(marker: dict[str, Any], message: Message) -> None:
    """Send the media job again when media-store has not stored the file yet (media-store is idempotent)."""
    ticket_id, sort_key = marker.get("ticket_id"), marker.get("message_sk")
    if not ticket_id or not sort_key or not isinstance(message, ContentMessage):
        return
    job = media_job_for(message, str(ticket_id), str(sort_key))
    if job is None:
        return
    item = repository.get_item(ticket_key(str(ticket_id))["PK"], str(sort_key))
    if item is not None and item.get("media", {}).get("status") == "pending":
        MediaJobSender(sqs_client, settings.media_queue_url).send(job)


@idempotent_function(
    data_keyword_argument="record", persistence_store=persistence_layer, config=idempotency_config
)
def handle_push(record: InboundRecord) -> dict[str, str]:
    """Apply one push exactly once: plan, commit with the push marker, then deliver."""
    message = record.message()
    dedup_hash = hashed_dedup_id(record.dedup_id)
    marker = repository.get_marker(dedup_hash)
    if marker is not None:
        return resume(marker, message, dedup_hash)

    for attempt in range(1, MAX_PLAN_ATTEMPTS + 1):
        plan = build_plan(message, dedup_hash)
        if plan is None:
            logger.info("push ignored", extra={"dedup_hash": dedup_hash, "msg_type": record.msg_type})
            return {"outcome": "ignored", "ticket_id": ""}
        try:
            repository.commit(plan.transaction())
        except PushAlreadyWrittenError:
            return resume(repository.get_marker(dedup_hash) or {}, message, dedup_hash)
        except ConcurrentTicketChangeError:
            logger.info("push planned again", extra={"dedup_hash": dedup_hash, "attempt": attempt})
            continue
        logger.info(
            "push written",
            extra={"dedup_hash": dedup_hash, "ticket_id": plan.ticket_id, "outcome": plan.outcome},
        )
        if plan.outcome in ("draft_opened", "auto_answered"):
            metrics.add_metric(name="TicketCreated", unit=MetricUnit.Count, value=1)
        if plan.outcome == "auto_answered":
            metrics.add_metric(name="ConsultationAutoAnswered", unit=MetricUnit.Count, value=1)
        deliver(dedup_hash, plan.media_jobs, plan.ticket_events, plan.notices)
        return {"outcome": plan.outcome, "ticket_id": plan.ticket_id or ""}
    raise ConcurrentTicketChangeError(
        f"push {dedup_hash} conflicted {MAX_PLAN_ATTEMPTS} times with concurrent ticket changes; retrying"
    )


def record_handler(record: SQSRecord) -> None:
    inbound, message = parse_record(record)
    if isinstance(message, UnknownMessage):
        # WeChat adds message and event types without notice; they are acknowledged, never processed.
        logger.warning(
            "unsupported push skipped",
            extra={"message_id": record.message_id, "msg_type": inbound.msg_type, "event": inbound.event},
        )
        return
    handle_push(record=inbound)


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    idempotency_config.register_lambda_context(context)
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
