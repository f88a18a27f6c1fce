"""Append-only ticket history: every action, notice attempt and media result, never edited in place."""

from __future__ import annotations

import secrets
from typing import Any

from intake import clock
from intake.keys import history_sk, ticket_pk


def history_item(
    ticket_id: str,
    entry_type: str,
    actor: str,
    at: float | None = None,
    before_status: str | None = None,
    after_status: str | None = None,
    detail: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build the DynamoDB item of one history entry (for a transaction or a conditional put).

    `entry_type` names what happened (`created`, `message_added`, `status_changed`, `notice_sent`,
    `notice_failed`, `media_stored`, `media_lost`, `action:<name>` ...); `actor` is `citizen`,
    `system` or the staff member's id. The random suffix in the sort key keeps two entries
    written in the same millisecond apart.
    """
    at = clock.now() if at is None else at
    item: dict[str, Any] = {
        "PK": ticket_pk(ticket_id),
        "SK": history_sk(clock.iso_utc(at), secrets.randbelow(1_000_000)),
        "item_type": "history",
        "ticket_id": ticket_id,
        "entry_type": entry_type,
        "actor": actor,
        "at": clock.iso_utc(at),
        "detail": detail or {},
    }
    if before_status is not None:
        item["before_status"] = before_status
    if after_status is not None:
        item["after_status"] = after_status
    return item


def append_history(table: Any, **entry: Any) -> dict[str, Any]:
    """Write one history entry to a boto3 DynamoDB Table resource; never overwrites an entry."""
    item = history_item(**entry)
    table.put_item(Item=item, ConditionExpression="attribute_not_exists(PK)")
    return item
