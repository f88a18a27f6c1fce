"""draft-submit: every minute, submits silent drafts and closes answers from the knowledge base.

Drafts whose citizen has been silent for the collecting window are submitted. Tickets answered from the
knowledge base (`intake.auto_answer`) that the citizen did not hand to staff within
`auto_answer_close_hours` get the system `close`: found on StatusIndex (`STATUS#replied`, `GSI1SK` =
time of the answer), each closed by one transaction conditioned on the status and `version` read, so
a handoff at the same moment wins and a second run closes nothing again.

Drafts are found on StatusIndex (`GSI1PK=STATUS#collecting`, `GSI1SK` = time of the last message).
Each submission is one transaction that also requires the draft's `last_message_at` to be unchanged,
so a message that ticket-write adds at the same moment wins and the draft keeps collecting.

The transaction also puts the events and notices to publish into this function's outbox item
(`PK=OUTBOX#draft-submit`, `SK={ticket_id}`). Each run publishes and deletes every outbox entry, so
events that a failed PutEvents left behind go out with the next successful run. An entry that cannot
be published for 7 days expires through the table's TTL.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from boto3.dynamodb.conditions import Attr, Key

from intake import clock
from intake.auto_answer import auto_close_change, auto_close_due
from intake.conversation import SYSTEM, Plan, submit_draft
from intake.event_bus import EventPublisher
from intake.keys import STATUS_INDEX, TICKET_SK, outbox_pk, status_gsi_pk, ticket_pk
from intake.records import CitizenNotice, TicketEvent
from intake.settings import get_settings
from intake.ticket_actions import change_event
from intake.ticket_repository import ConcurrentTicketChangeError, Ticket, TicketRepository, put_new
from intake.ticket_status import TicketStatus
from intake.workflow_config import get_workflow_config

OUTBOX_PRODUCER = "draft-submit"
# An outbox entry that could not be published for a week is dropped by the table's TTL.
OUTBOX_TTL_SECONDS = 7 * 86400

settings = get_settings()
logger = Logger()
dynamodb = boto3.resource("dynamodb")
table = dynamodb.Table(settings.table_name)
repository = TicketRepository(table=table, client=dynamodb.meta.client)
events_client = boto3.client("events")


def outbox_item(plan: Plan, ticket_id: str, sort_key: str | None = None) -> dict[str, Any]:
    return {
        "PK": outbox_pk(OUTBOX_PRODUCER),
        "SK": sort_key or ticket_id,
        "item_type": "outbox",
        "ticket_events": json.dumps([event.model_dump(mode="json") for event in plan.ticket_events]),
        "notices": json.dumps(
            [notice.model_dump(mode="json") for notice in plan.notices], ensure_ascii=False
        ),
        "expires_at": int(plan.at) + OUTBOX_TTL_SECONDS,
    }


def publish_outbox() -> int:
    """Publish every entry in the outbox and delete it; a failed publish raises and keeps the entry."""
    publisher = EventPublisher(events_client, settings.event_bus_name)
    published = 0
    response = table.query(
        KeyConditionExpression=Key("PK").eq(outbox_pk(OUTBOX_PRODUCER)), ConsistentRead=True
    )
    for item in response.get("Items", []):
        publisher.publish(
            [TicketEvent.model_validate(event) for event in json.loads(item["ticket_events"])],
            [CitizenNotice.model_validate(notice) for notice in json.loads(item["notices"])],
        )
        table.delete_item(Key={"PK": item["PK"], "SK": item["SK"]})
        published += 1
    return published


def submit_silent_draft(draft: Ticket, now: float) -> bool:
    """Submit one draft and queue its events in the outbox; False when a new message got there first."""
    plan = Plan(dedup_hash=f"sweep:{draft.ticket_id}", open_id=draft.open_id, at=now)
    submit_draft(plan, draft, SYSTEM, reason="collecting_window_elapsed", require_silence=True)
    try:
        repository.commit([*plan.entries, put_new(outbox_item(plan, draft.ticket_id))], marker_index=None)
    except ConcurrentTicketChangeError:
        logger.info("draft changed before submission, skipped", extra={"ticket_id": draft.ticket_id})
        return False
    logger.info("draft submitted", extra={"ticket_id": draft.ticket_id})
    return True


def auto_answers_due(answered_before: str) -> Any:
    """Yield the ids of replied tickets answered from the knowledge base before the ISO time given."""
    arguments: dict[str, Any] = {
        "IndexName": STATUS_INDEX,
        "KeyConditionExpression": Key("GSI1PK").eq(status_gsi_pk(TicketStatus.REPLIED.value))
        & Key("GSI1SK").lt(answered_before),
        # NOTE: staff-replied tickets whose deadline is before the cutoff are read and filtered out.
        "FilterExpression": Attr("auto_answer").exists() & Attr("handed_off_at").not_exists(),
        "ProjectionExpression": "ticket_id",
    }
    while True:
        response = table.query(**arguments)
        for item in response.get("Items", []):
            yield str(item["ticket_id"])
        if "LastEvaluatedKey" not in response:
            return
        arguments["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def close_auto_answer(ticket_id: str, now: float) -> bool:
    """Close one auto-answered ticket and queue its event in the outbox; False when it changed or waits."""
    item = repository.get_item(ticket_pk(ticket_id), TICKET_SK)
    if item is None or not auto_close_due(item, now):
        return False
    change, entries, entry = auto_close_change(item, now)
    plan = Plan(dedup_hash=f"auto-close:{ticket_id}", open_id=str(item["open_id"]), at=now)
    plan.ticket_events.append(change_event(ticket_id, change, entry, now))
    outbox = put_new(outbox_item(plan, ticket_id, sort_key=f"{ticket_id}:auto_close"))
    try:
        repository.commit([*entries, outbox], marker_index=None)
    except ConcurrentTicketChangeError:
        logger.info("auto-answered ticket changed before closing, skipped", extra={"ticket_id": ticket_id})
        return False
    logger.info("auto-answered ticket closed", extra={"ticket_id": ticket_id})
    return True


def sweep(now: float) -> dict[str, int]:
    """Submit silent drafts, close the auto-answers whose handoff period ended, then publish."""
    cutoff = clock.iso_utc(now - settings.collecting_window_seconds)
    submitted = sum(submit_silent_draft(draft, now) for draft in repository.silent_drafts(cutoff))
    answered_before = clock.iso_utc(now - get_workflow_config().auto_answer_close_hours * 3600)
    closed = sum(close_auto_answer(ticket_id, now) for ticket_id in auto_answers_due(answered_before))
    published = publish_outbox()
    return {"submitted": submitted, "auto_closed": closed, "published": published}


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    result = sweep(clock.now())
    logger.info("sweep finished", extra=result)
    return result
