"""draft-submit: every minute, submits the drafts whose citizen has been silent for the collecting window.

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
from boto3.dynamodb.conditions import Key

from intake import clock
from intake.conversation import SYSTEM, Plan, submit_draft
from intake.event_bus import EventPublisher
from intake.keys import outbox_pk
from intake.records import CitizenNotice, TicketEvent
from intake.settings import get_settings
from intake.ticket_repository import ConcurrentTicketChangeError, Ticket, TicketRepository, put_new

OUTBOX_PRODUCER = "draft-submit"
# An outbox entry that could not be published for a week is dropped by the table's TTL.
OUTBOX_TTL_SECONDS = 7 * 86400

settings = get_settings()
logger = Logger()
dynamodb = boto3.resource("dynamodb")
table = dynamodb.Table(settings.table_name)
repository = TicketRepository(table=table, client=dynamodb.meta.client)
events_client = boto3.client("events")


def outbox_item(plan: Plan, ticket_id: str) -> dict[str, Any]:
    return {
        "PK": outbox_pk(OUTBOX_PRODUCER),
        "SK": ticket_id,
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


def sweep(now: float) -> dict[str, int]:
    """Submit every draft whose last message is older than the collecting window, then publish."""
    cutoff = clock.iso_utc(now - settings.collecting_window_seconds)
    submitted = sum(submit_silent_draft(draft, now) for draft in repository.silent_drafts(cutoff))
    published = publish_outbox()
    return {"submitted": submitted, "published": published}


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    result = sweep(clock.now())
    logger.info("sweep finished", extra=result)
    return result
