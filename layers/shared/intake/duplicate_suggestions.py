"""Open tickets that may report the same matter as a given ticket, for staff deciding on a merge.

Candidates are open tickets (`intake.ticket_status.OPEN_STATUSES`, so never merged ones) other than the
ticket itself, created within `days` days before or after it and:

- of the same category when the ticket has one, else of the same appeal type when it has one, else
  of any classification (a ticket that waits for acceptance is compared with everything open);
- within `radius_m` metres, by the haversine formula on the stored GCJ-02 coordinates. GCJ-02 shifts
  nearby points by almost the same offset, so distances of a few kilometres stay close to the true
  ones (an estimate: the shift varies slowly with position). When the ticket itself
  has no location, distance is not a criterion and `distance_m` is null; a candidate without a
  location is left out when the ticket has one.

They are ranked by the Jaccard similarity of the character bigrams of the first text (or voice
recognition) of each ticket, then by distance, and at most `limit` are returned. The
`MAX_TEXT_COMPARISONS` nearest candidates are read for text; the others rank with score 0.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from boto3.dynamodb.conditions import Attr, Key
from pydantic import BaseModel, Field

from intake import clock, deadlines
from intake.keys import ticket_pk
from intake.ticket_search import tickets_created_between
from intake.ticket_status import OPEN_STATUSES

DEFAULT_RADIUS_M = 500
DEFAULT_DAYS = 30
MAX_SUGGESTIONS = 5
# Candidates whose messages are read to compare texts; one Query each.
MAX_TEXT_COMPARISONS = 50
EARTH_RADIUS_M = 6_371_008.8


class SimilarTicket(BaseModel):
    ticket_id: str
    status: str
    appeal_type: str | None = None
    category: str | None = None
    created_at: str
    score: float = Field(description="Jaccard similarity of the first texts' character bigrams, 0 to 1")
    distance_m: float | None = Field(description="Metres between the two locations; null without a location")


@dataclass(frozen=True)
class SimilarityCriteria:
    radius_m: float = DEFAULT_RADIUS_M
    days: int = DEFAULT_DAYS
    limit: int = MAX_SUGGESTIONS


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Return the great-circle distance in metres between two points given in degrees."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi = phi2 - phi1
    dlambda = math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlambda / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def bigrams(text: str) -> set[str]:
    """Return the character bigrams of a text without spaces and punctuation (NFKC-normalized)."""
    letters = "".join(
        char
        for char in unicodedata.normalize("NFKC", text).lower()
        if not unicodedata.category(char).startswith(("P", "Z", "C", "S"))
    )
    if len(letters) == 1:
        return {letters}
    return {letters[index : index + 2] for index in range(len(letters) - 1)}


def jaccard(first: set[str], second: set[str]) -> float:
    if not first or not second:
        return 0.0
    return len(first & second) / len(first | second)


def first_text(table: Any, ticket_id: str) -> str:
    """Return the first text or voice recognition among the ticket's messages, or an empty string."""
    arguments: dict[str, Any] = {
        "KeyConditionExpression": Key("PK").eq(ticket_pk(ticket_id)) & Key("SK").begins_with("MSG#"),
    }
    while True:
        response = table.query(**arguments)
        for item in response.get("Items", []):
            text = item.get("content") or item.get("recognition")
            if text:
                return str(text)
        if "LastEvaluatedKey" not in response:
            return ""
        arguments["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def _coordinates(item: dict[str, Any]) -> tuple[float, float] | None:
    location = item.get("location") or {}
    if location.get("latitude") is None or location.get("longitude") is None:
        return None
    return float(location["latitude"]), float(location["longitude"])


def _classification_condition(ticket: dict[str, Any]) -> Any:
    if ticket.get("category"):
        return Attr("category").eq(ticket["category"])
    if ticket.get("appeal_type"):
        return Attr("appeal_type").eq(ticket["appeal_type"])
    return None


def _shift_iso(at_iso: str, days: int) -> str:
    return clock.iso_utc(deadlines.parse_iso(at_iso) + days * 86400)


def _candidates(table: Any, ticket: dict[str, Any], days: int) -> Iterable[dict[str, Any]]:
    created = str(ticket["created_at"])
    for item in tickets_created_between(
        table,
        sorted(status.value for status in OPEN_STATUSES),
        _shift_iso(created, -days),
        _shift_iso(created, days),
        _classification_condition(ticket),
    ):
        if item.get("ticket_id") != ticket["ticket_id"] and not item.get("merged_into"):
            yield item


def similar_open_tickets(
    table: Any, ticket: dict[str, Any], criteria: SimilarityCriteria
) -> list[SimilarTicket]:
    """Return up to `criteria.limit` open tickets that may duplicate `ticket`, best match first."""
    origin = _coordinates(ticket)
    nearby: list[tuple[dict[str, Any], float | None]] = []
    for item in _candidates(table, ticket, criteria.days):
        distance = None
        if origin is not None:
            point = _coordinates(item)
            if point is None:
                continue
            distance = haversine_m(*origin, *point)
            if distance > criteria.radius_m:
                continue
        nearby.append((item, distance))
    if not nearby:
        return []
    nearby.sort(key=lambda pair: (pair[1] is None, pair[1] or 0.0, str(pair[0]["ticket_id"])))
    own = bigrams(first_text(table, str(ticket["ticket_id"])))
    ranked = []
    for index, (item, distance) in enumerate(nearby):
        score = 0.0
        if index < MAX_TEXT_COMPARISONS:
            score = jaccard(own, bigrams(first_text(table, str(item["ticket_id"]))))
        ranked.append(
            SimilarTicket(
                ticket_id=str(item["ticket_id"]),
                status=str(item["status"]),
                appeal_type=item.get("appeal_type"),
                category=item.get("category"),
                created_at=str(item["created_at"]),
                score=round(score, 3),
                distance_m=round(distance, 1) if distance is not None else None,
            )
        )
    ranked.sort(key=lambda entry: (-entry.score, entry.distance_m if entry.distance_m is not None else 0.0))
    return ranked[: criteria.limit]
