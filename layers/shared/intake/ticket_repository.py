"""Ticket items in the single DynamoDB table: their shape, the transaction entries that change them, reads.

Writers compose a list of transaction entries (`Put`, `Update`, `Delete` in the shape of
TransactWriteItems, with plain Python values) and hand them to `TicketRepository.commit`, which
serializes them and runs them as one DynamoDB transaction. Every entry that changes a ticket carries a
condition on the ticket's status, so a concurrent change (the draft sweep, a staff action) cancels the
transaction instead of being overwritten. The item layout and access patterns are in docs/data-model.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from aws_lambda_powertools import Logger
from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict

from intake.citizen_profile import CitizenProfile, Location, profile_key
from intake.keys import (
    CITIZEN_INDEX,
    PUSH_SK,
    STATUS_INDEX,
    TICKET_SK,
    citizen_gsi_pk,
    dedup_pk,
    status_gsi_pk,
    ticket_pk,
)
from intake.ticket_status import TicketStatus

logger = Logger(child=True)

# DynamoDB allows 100 entries per transaction.
MAX_TRANSACTION_ENTRIES = 100
# A push marker must outlive every redelivery of its push: 14 days on the inbound queue plus 14 days
# on its dead-letter queue (a FIFO dead-letter queue restarts the retention clock), plus margin.
PUSH_MARKER_TTL_SECONDS = 30 * 86400


class TicketStoreError(RuntimeError):
    """DynamoDB rejected a write for a reason other than a failed condition; the record is retried."""


class PushAlreadyWrittenError(RuntimeError):
    """The push's marker exists: an earlier delivery of this push already committed its changes."""


class ConcurrentTicketChangeError(RuntimeError):
    """A ticket or profile changed between read and write; read again and plan again."""


class Ticket(BaseModel):
    """A ticket item (`PK=TICKET#{ticket_id}`, `SK=TICKET`)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    ticket_id: str
    status: TicketStatus
    open_id: str
    open_id_pseudonymized: bool = False
    appeal_type: str | None = None
    department: str | None = None
    created_at: str
    updated_at: str
    submitted_at: str | None = None
    deadline: str | None = None
    last_message_at: str | None = None
    last_supplement_at: str | None = None
    location: Location | None = None
    message_count: int = 0
    urgent: bool = False
    emergency: bool = False
    rating: dict[str, Any] | None = None
    reopen_count: int = 0

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Ticket:
        return cls.model_validate(item)


# -- transaction entries ----------------------------------------------------------------------------


def ticket_key(ticket_id: str) -> dict[str, str]:
    return {"PK": ticket_pk(ticket_id), "SK": TICKET_SK}


def marker_key(dedup_hash: str) -> dict[str, str]:
    return {"PK": dedup_pk(dedup_hash), "SK": PUSH_SK}


def put_new(item: dict[str, Any]) -> dict[str, Any]:
    """Return a Put entry that fails when an item with the same key exists."""
    return {"Put": {"Item": item, "ConditionExpression": "attribute_not_exists(PK)"}}


def delete(key: dict[str, str]) -> dict[str, Any]:
    return {"Delete": {"Key": key}}


def update(
    key: dict[str, str],
    set_values: dict[str, Any] | None = None,
    remove: list[str] | None = None,
    add: dict[str, int] | None = None,
    condition: str | None = None,
    condition_values: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Return an Update entry; attribute names are always aliased, so reserved words are safe.

    `condition` refers to attributes as `#name` (aliased automatically when they are also set) or via
    its own `#c_...` aliases that the caller passes in `condition_values` as `{"#c_x": "x"}` pairs.
    """
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    clauses: list[str] = []
    if set_values:
        parts = []
        for index, (name, value) in enumerate(set_values.items()):
            names[f"#s{index}"] = name
            values[f":s{index}"] = value
            parts.append(f"#s{index} = :s{index}")
        clauses.append("SET " + ", ".join(parts))
    if remove:
        parts = []
        for index, name in enumerate(remove):
            names[f"#r{index}"] = name
            parts.append(f"#r{index}")
        clauses.append("REMOVE " + ", ".join(parts))
    if add:
        parts = []
        for index, (name, amount) in enumerate(add.items()):
            names[f"#a{index}"] = name
            values[f":a{index}"] = amount
            parts.append(f"#a{index} :a{index}")
        clauses.append("ADD " + ", ".join(parts))
    entry: dict[str, Any] = {
        "Key": key,
        "UpdateExpression": " ".join(clauses),
        "ExpressionAttributeNames": names,
    }
    if condition:
        entry["ConditionExpression"] = condition
        for placeholder, value in (condition_values or {}).items():
            if placeholder.startswith("#"):
                names[placeholder] = value
            else:
                values[placeholder] = value
    if values:
        entry["ExpressionAttributeValues"] = values
    return {"Update": entry}


def update_ticket(
    ticket_id: str,
    expected_status: TicketStatus,
    set_values: dict[str, Any] | None = None,
    remove: list[str] | None = None,
    add: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Return an Update entry on a ticket that applies only while the ticket has `expected_status`."""
    return update(
        ticket_key(ticket_id),
        set_values=set_values,
        remove=remove,
        add=add,
        condition="#c_status = :c_status",
        condition_values={"#c_status": "status", ":c_status": expected_status.value},
    )


def status_change_values(status: TicketStatus, at_iso: str, sort_time: str | None = None) -> dict[str, Any]:
    """Return the attributes that move a ticket to `status`, StatusIndex keys included.

    StatusIndex sorts by `GSI1SK`: the deadline when the workflow has set one, else the time the ticket
    entered the status (for drafts, the time of the last message).
    """
    return {
        "status": status.value,
        "updated_at": at_iso,
        "GSI1PK": status_gsi_pk(status.value),
        "GSI1SK": sort_time or at_iso,
    }


def new_ticket_item(
    ticket_id: str,
    open_id: str,
    at_iso: str,
    location: Location | None = None,
    urgent: bool = False,
    emergency: bool = False,
) -> dict[str, Any]:
    """Return the item of a new draft ticket (status `collecting`) with no messages yet."""
    return {
        **ticket_key(ticket_id),
        "item_type": "ticket",
        "ticket_id": ticket_id,
        "open_id": open_id,
        # Staff classify the appeal type (咨询/求助/投诉/举报/建议); until then it is null.
        "appeal_type": None,
        "department": None,
        "created_at": at_iso,
        "submitted_at": None,
        "deadline": None,
        "last_message_at": at_iso,
        "location": location.model_dump() if location else None,
        "message_count": 0,
        "urgent": urgent,
        "emergency": emergency,
        "GSI2PK": citizen_gsi_pk(open_id),
        "GSI2SK": at_iso,
        **status_change_values(TicketStatus.COLLECTING, at_iso),
    }


def marker_item(
    dedup_hash: str,
    at: float,
    at_iso: str,
    outcome: str,
    pending_events: str,
    ticket_id: str | None = None,
    message_sk: str | None = None,
) -> dict[str, Any]:
    """Return the push marker: proof that this push's changes are committed, with what is left to publish.

    `pending_events` is the JSON of the media jobs, events and notices still to send. It is removed once
    they are out, so the OpenID in a notice stays in the marker only until publishing succeeds.
    """
    item: dict[str, Any] = {
        **marker_key(dedup_hash),
        "item_type": "push",
        "outcome": outcome,
        "created_at": at_iso,
        "pending_events": pending_events,
        "expires_at": int(at) + PUSH_MARKER_TTL_SECONDS,
    }
    if ticket_id:
        item["ticket_id"] = ticket_id
    if message_sk:
        item["message_sk"] = message_sk
    return item


# -- serialization ----------------------------------------------------------------------------------


def _dynamo_value(value: Any) -> Any:
    """Convert floats to Decimal recursively, because DynamoDB numbers are decimal."""
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {key: _dynamo_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_dynamo_value(item) for item in value]
    return value


def _entry_with_table(entry: dict[str, Any], table_name: str) -> dict[str, Any]:
    ((operation, body),) = entry.items()
    serialized: dict[str, Any] = {"TableName": table_name}
    for field, value in body.items():
        if field in {"Item", "Key", "ExpressionAttributeValues"}:
            serialized[field] = _dynamo_value(value)
        else:
            serialized[field] = value
    return {operation: serialized}


# -- the repository ---------------------------------------------------------------------------------


@dataclass
class TicketRepository:
    """Reads and transactional writes on the tickets table.

    `client` must be the Table resource's `meta.client`: it converts plain Python values to DynamoDB's
    typed JSON, so entries carry plain values (floats become Decimal here).
    """

    table: Any
    client: Any

    @property
    def table_name(self) -> str:
        return str(self.table.name)

    def commit(self, entries: list[dict[str, Any]], marker_index: int | None = 0) -> None:
        """Write `entries` as one transaction.

        Raises PushAlreadyWrittenError when the entry at `marker_index` (the push marker) failed its
        condition, ConcurrentTicketChangeError when another entry's condition failed or DynamoDB reports
        a conflicting transaction, and TicketStoreError for anything else.
        """
        if not entries:
            return
        if len(entries) > MAX_TRANSACTION_ENTRIES:
            raise TicketStoreError(
                f"transaction has {len(entries)} entries, DynamoDB allows {MAX_TRANSACTION_ENTRIES}"
            )
        items = [_entry_with_table(entry, self.table_name) for entry in entries]
        try:
            self.client.transact_write_items(TransactItems=items)
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code", "")
            if code != "TransactionCanceledException":
                raise TicketStoreError(f"DynamoDB transaction failed with {code}") from err
            reasons = [reason.get("Code", "None") for reason in err.response.get("CancellationReasons", [])]
            marker_failed = (
                marker_index is not None
                and len(reasons) > marker_index
                and reasons[marker_index] == "ConditionalCheckFailed"
            )
            if marker_failed:
                raise PushAlreadyWrittenError("push marker exists") from err
            if any(reason in {"ConditionalCheckFailed", "TransactionConflict"} for reason in reasons):
                logger.info("transaction cancelled by a concurrent change", extra={"reasons": reasons})
                raise ConcurrentTicketChangeError(f"transaction cancelled: {reasons}") from err
            raise TicketStoreError(f"DynamoDB cancelled the transaction: {reasons}") from err

    # -- reads --------------------------------------------------------------------------------------

    def get_marker(self, dedup_hash: str) -> dict[str, Any] | None:
        response = self.table.get_item(Key=marker_key(dedup_hash), ConsistentRead=True)
        item: dict[str, Any] | None = response.get("Item")
        return item

    def complete_marker(self, dedup_hash: str, at_iso: str) -> None:
        """Record that the push's events are published and drop the pending copy, which contains an OpenID."""
        self.table.update_item(
            Key=marker_key(dedup_hash),
            UpdateExpression="SET published_at = :at REMOVE pending_events",
            ExpressionAttributeValues={":at": at_iso},
        )

    def get_profile(self, open_id: str) -> CitizenProfile | None:
        response = self.table.get_item(Key=profile_key(open_id), ConsistentRead=True)
        item = response.get("Item")
        return CitizenProfile.from_item(item) if item else None

    def get_ticket(self, ticket_id: str) -> Ticket | None:
        response = self.table.get_item(Key=ticket_key(ticket_id), ConsistentRead=True)
        item = response.get("Item")
        return Ticket.from_item(item) if item else None

    def get_item(self, pk: str, sk: str) -> dict[str, Any] | None:
        item: dict[str, Any] | None = self.table.get_item(Key={"PK": pk, "SK": sk}, ConsistentRead=True).get(
            "Item"
        )
        return item

    def citizen_tickets(self, open_id: str, limit: int | None = None) -> list[Ticket]:
        """Return the citizen's tickets from CitizenIndex, newest first (the index is eventually consistent)."""
        return [Ticket.from_item(item) for item in self._citizen_ticket_items(open_id, limit)]

    def _citizen_ticket_items(self, open_id: str, limit: int | None = None) -> Iterator[dict[str, Any]]:
        arguments: dict[str, Any] = {
            "IndexName": CITIZEN_INDEX,
            "KeyConditionExpression": Key("GSI2PK").eq(citizen_gsi_pk(open_id)),
            "ScanIndexForward": False,
        }
        if limit:
            arguments["Limit"] = limit
        returned = 0
        while True:
            response = self.table.query(**arguments)
            for item in response.get("Items", []):
                yield item
                returned += 1
                if limit and returned >= limit:
                    return
            if "LastEvaluatedKey" not in response:
                return
            arguments["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def awaiting_ticket(self, open_id: str) -> Ticket | None:
        """Return the citizen's newest ticket that waits for the citizen (待补充), if any."""
        arguments: dict[str, Any] = {
            "IndexName": CITIZEN_INDEX,
            "KeyConditionExpression": Key("GSI2PK").eq(citizen_gsi_pk(open_id)),
            "FilterExpression": Attr("status").eq(TicketStatus.AWAITING_CITIZEN.value),
            "ScanIndexForward": False,
        }
        while True:
            response = self.table.query(**arguments)
            items = response.get("Items", [])
            if items:
                return Ticket.from_item(items[0])
            if "LastEvaluatedKey" not in response:
                return None
            arguments["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def history(self, ticket_id: str) -> list[dict[str, Any]]:
        """Return the ticket's history entries, oldest first."""
        return list(self._items_under(ticket_id, "HIST#"))

    def _items_under(self, ticket_id: str, sk_prefix: str | None = None) -> Iterator[dict[str, Any]]:
        condition: Any = Key("PK").eq(ticket_pk(ticket_id))
        if sk_prefix:
            condition = condition & Key("SK").begins_with(sk_prefix)
        arguments: dict[str, Any] = {"KeyConditionExpression": condition, "ConsistentRead": True}
        while True:
            response = self.table.query(**arguments)
            yield from response.get("Items", [])
            if "LastEvaluatedKey" not in response:
                return
            arguments["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def silent_drafts(self, last_message_before: str) -> Iterator[Ticket]:
        """Yield drafts (status collecting) whose last message is older than the ISO time given."""
        arguments: dict[str, Any] = {
            "IndexName": STATUS_INDEX,
            "KeyConditionExpression": Key("GSI1PK").eq(status_gsi_pk(TicketStatus.COLLECTING.value))
            & Key("GSI1SK").lt(last_message_before),
        }
        while True:
            response = self.table.query(**arguments)
            for item in response.get("Items", []):
                yield Ticket.from_item(item)
            if "LastEvaluatedKey" not in response:
                return
            arguments["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    # -- erasure on unsubscribe ---------------------------------------------------------------------

    def delete_draft(self, ticket_id: str) -> bool:
        """Delete a draft and everything under it (messages, history); False when it is no longer a draft.

        The ticket item goes first, on condition that it is still collecting, so a draft that the sweep
        submitted a moment ago is kept. When the ticket item is already gone (an earlier, interrupted
        run), the items under it are deleted again.
        """
        try:
            self.table.delete_item(
                Key=ticket_key(ticket_id),
                ConditionExpression="attribute_not_exists(PK) OR #status = :collecting",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={":collecting": TicketStatus.COLLECTING.value},
            )
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise TicketStoreError(f"deleting draft {ticket_id} failed") from err
        with self.table.batch_writer() as batch:
            for item in self._items_under(ticket_id):
                batch.delete_item(Key={"PK": item["PK"], "SK": item["SK"]})
        logger.info("draft deleted", extra={"ticket_id": ticket_id})
        return True

    def pseudonymize_ticket(self, ticket_id: str, open_id: str, pseudonym: str) -> bool:
        """Replace the OpenID on a kept ticket, CitizenIndex key included; False when already replaced."""
        try:
            self.table.update_item(
                Key=ticket_key(ticket_id),
                UpdateExpression="SET open_id = :pseudonym, GSI2PK = :gsi, open_id_pseudonymized = :true",
                ConditionExpression="open_id = :open_id",
                ExpressionAttributeValues={
                    ":pseudonym": pseudonym,
                    ":gsi": citizen_gsi_pk(pseudonym),
                    ":true": True,
                    ":open_id": open_id,
                },
            )
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise TicketStoreError(f"pseudonymizing ticket {ticket_id} failed") from err
        return True
