"""Listing tickets for staff with filters and opaque page tokens.

The most selective index serves each request: CitizenIndex for `citizen`, DepartmentIndex for
`department`, StatusIndex for `status` (and, for overdue tickets, the statuses whose clock runs,
sorted by deadline); without any of them the table is scanned for ticket items. The remaining
filters are applied to each page. A page token is base64 of JSON naming the query and DynamoDB's
LastEvaluatedKey, so a client cannot tell it from any other opaque string but can pass it back.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from boto3.dynamodb.conditions import Attr, Key

from intake import clock, deadlines
from intake.keys import (
    CITIZEN_INDEX,
    DEPARTMENT_INDEX,
    STATUS_INDEX,
    TICKET_SK,
    citizen_gsi_pk,
    department_gsi_pk,
    status_gsi_pk,
    ticket_pk,
)
from intake.ticket_status import TicketStatus

# Pages of DynamoDB results one request may read before it returns what it has with a token, so a
# sparse filter over a large table cannot run into the function's timeout.
MAX_PAGES_PER_REQUEST = 20

_INDEX_KEYS = {
    STATUS_INDEX: ("GSI1PK", "GSI1SK"),
    CITIZEN_INDEX: ("GSI2PK", "GSI2SK"),
    DEPARTMENT_INDEX: ("GSI3PK", "GSI3SK"),
}


class InvalidPageTokenError(ValueError):
    """The next_token is not one this API issued (HTTP 400)."""


@dataclass(frozen=True)
class TicketFilter:
    status: str | None = None
    appeal_type: str | None = None
    department: str | None = None
    overdue: bool | None = None
    citizen: str | None = None
    # UTC ISO 8601 bounds on created_at, inclusive.
    created_from: str | None = None
    created_to: str | None = None

    def matches(self, item: dict[str, Any], now: float) -> bool:
        if item.get("SK") != TICKET_SK:
            return False
        for name, wanted in (
            ("status", self.status),
            ("appeal_type", self.appeal_type),
            ("department", self.department),
            ("open_id", self.citizen),
        ):
            if wanted is not None and item.get(name) != wanted:
                return False
        created_at = str(item.get("created_at", ""))
        if self.created_from is not None and created_at < self.created_from:
            return False
        if self.created_to is not None and created_at > self.created_to:
            return False
        return self.overdue is None or is_overdue(item, now) == self.overdue


def is_overdue(item: dict[str, Any], now: float) -> bool:
    deadline = item.get("deadline")
    paused_at = item.get("paused_at")
    return deadlines.is_overdue(
        str(item.get("status", "")),
        deadlines.parse_iso(str(deadline)) if deadline else None,
        deadlines.parse_iso(str(paused_at)) if paused_at else None,
        now,
    )


def encode_token(query_index: int, last_key: dict[str, Any]) -> str:
    document = json.dumps({"q": query_index, "k": last_key}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(document.encode("utf-8")).decode("ascii")


def decode_token(token: str) -> tuple[int, dict[str, Any]]:
    try:
        document = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
        query_index, last_key = document["q"], document["k"]
    except (ValueError, UnicodeError, binascii.Error, KeyError, TypeError) as err:
        raise InvalidPageTokenError("next_token is not a token returned by GET /tickets") from err
    if not isinstance(query_index, int) or not isinstance(last_key, dict):
        raise InvalidPageTokenError("next_token is not a token returned by GET /tickets")
    if not all(isinstance(key, str) and isinstance(value, str) for key, value in last_key.items()):
        raise InvalidPageTokenError("next_token is not a token returned by GET /tickets")
    return query_index, last_key


def _plan(filters: TicketFilter, now: float) -> list[dict[str, Any]]:
    """Return the DynamoDB requests (Query or Scan arguments) that together hold every match."""
    if filters.citizen is not None:
        return [
            {
                "IndexName": CITIZEN_INDEX,
                "KeyConditionExpression": Key("GSI2PK").eq(citizen_gsi_pk(filters.citizen)),
            }
        ]
    if filters.department is not None:
        return [
            {
                "IndexName": DEPARTMENT_INDEX,
                "KeyConditionExpression": Key("GSI3PK").eq(department_gsi_pk(filters.department)),
            }
        ]
    statuses = [filters.status] if filters.status is not None else []
    if not statuses and filters.overdue:
        statuses = [*sorted(deadlines.CLOCK_STATUSES), TicketStatus.AWAITING_CITIZEN.value]
    if statuses:
        plan = []
        for status in statuses:
            condition: Any = Key("GSI1PK").eq(status_gsi_pk(status))
            if filters.overdue and status in deadlines.CLOCK_STATUSES:
                # StatusIndex sorts these statuses by deadline, so overdue tickets are a key range.
                condition = condition & Key("GSI1SK").lt(clock.iso_utc(now))
            plan.append({"IndexName": STATUS_INDEX, "KeyConditionExpression": condition})
        return plan
    return [{"FilterExpression": Attr("SK").eq(TICKET_SK), "scan": True}]


def _page_key(item: dict[str, Any], arguments: dict[str, Any]) -> dict[str, Any]:
    """Return the ExclusiveStartKey that resumes right after `item`."""
    names = ["PK", "SK", *_INDEX_KEYS.get(arguments.get("IndexName", ""), ())]
    return {name: item[name] for name in names}


class TicketSearch:
    """Runs filtered, paginated ticket listings on a boto3 DynamoDB Table resource."""

    def __init__(self, table: Any) -> None:
        self._table = table

    def find(
        self, filters: TicketFilter, limit: int, next_token: str | None, now: float
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Return up to `limit` matching ticket items and the token of the next page (None at the end).

        A page may hold fewer than `limit` items, even none, and still carry a token when the
        request read MAX_PAGES_PER_REQUEST pages of DynamoDB results.
        """
        plan = _plan(filters, now)
        query_index, start_key = decode_token(next_token) if next_token else (0, {})
        if query_index >= len(plan):
            raise InvalidPageTokenError("next_token does not belong to these filters")
        found: list[dict[str, Any]] = []
        pages = 0
        while query_index < len(plan):
            arguments = dict(plan[query_index])
            scan = arguments.pop("scan", False)
            if start_key:
                arguments["ExclusiveStartKey"] = start_key
            response = self._table.scan(**arguments) if scan else self._table.query(**arguments)
            pages += 1
            for item in response.get("Items", []):
                if filters.matches(item, now):
                    found.append(item)
                    if len(found) == limit:
                        return found, self._token_after(item, plan, query_index, response, arguments)
            start_key = response.get("LastEvaluatedKey", {})
            if not start_key:
                query_index += 1
            if pages >= MAX_PAGES_PER_REQUEST and query_index < len(plan):
                return found, encode_token(query_index, start_key)
        return found, None

    @staticmethod
    def _token_after(
        item: dict[str, Any],
        plan: list[dict[str, Any]],
        query_index: int,
        response: dict[str, Any],
        arguments: dict[str, Any],
    ) -> str | None:
        items = response.get("Items", [])
        last_of_page = items and items[-1] is item
        if last_of_page and "LastEvaluatedKey" not in response:
            return encode_token(query_index + 1, {}) if query_index + 1 < len(plan) else None
        return encode_token(query_index, _page_key(item, arguments))


def ticket_children(table: Any, ticket_id: str) -> list[dict[str, Any]]:
    """Return every item under the ticket's partition key except the ticket item, in sort key order."""
    arguments: dict[str, Any] = {
        "KeyConditionExpression": Key("PK").eq(ticket_pk(ticket_id)),
        "ConsistentRead": True,
    }
    items: list[dict[str, Any]] = []
    while True:
        response = table.query(**arguments)
        items += [item for item in response.get("Items", []) if item["SK"] != TICKET_SK]
        if "LastEvaluatedKey" not in response:
            return items
        arguments["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def tickets_created_between(
    table: Any,
    statuses: list[str],
    created_from: str | None,
    created_to: str | None,
    condition: Any = None,
) -> Iterator[dict[str, Any]]:
    """Yield the ticket items of `statuses` created between two UTC ISO bounds (inclusive, None = open).

    One paginated StatusIndex query per status; `created_at` and `condition` (a boto3 `Attr`
    condition) are applied as DynamoDB filters, so only matching items cross the network.
    NOTE: StatusIndex sorts by deadline, not by creation time, so a filter reads every ticket of the
    status once; a period-keyed index or pre-aggregated figures would be needed at a larger scale.
    """
    period: Any = None
    if created_from is not None and created_to is not None:
        period = Attr("created_at").between(created_from, created_to)
    elif created_from is not None:
        period = Attr("created_at").gte(created_from)
    elif created_to is not None:
        period = Attr("created_at").lte(created_to)
    filters = [part for part in (period, condition) if part is not None]
    for status in statuses:
        arguments: dict[str, Any] = {
            "IndexName": STATUS_INDEX,
            "KeyConditionExpression": Key("GSI1PK").eq(status_gsi_pk(status)),
        }
        if filters:
            combined = filters[0]
            for part in filters[1:]:
                combined = combined & part
            arguments["FilterExpression"] = combined
        while True:
            response = table.query(**arguments)
            yield from response.get("Items", [])
            if "LastEvaluatedKey" not in response:
                break
            arguments["ExclusiveStartKey"] = response["LastEvaluatedKey"]
