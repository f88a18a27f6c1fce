"""Assessment figures (考核数据) over the tickets created in a period: counts, timeliness, satisfaction.

Which tickets count: every ticket created between `created_from` and `created_to` (inclusive) that left
the draft stage, so every status except `collecting` and `cancelled`. The figures:

- `by_status`, `by_appeal_type`, `by_department`: counts; a ticket not yet classified counts under
  `unclassified`, one not yet dispatched under `undispatched`.
- `on_time`: a ticket counts as on time when its last reply recorded `replied_on_time = true`, and as
  late when that reply recorded `false` or when it is still open and past its deadline now
  (`intake.deadlines.is_overdue`). Tickets with neither are not judged yet. `rate` is
  on_time / (on_time + late), null when nothing is judged.
- `hours_to_accept` and `hours_to_close`: mean hours from `submitted_at` to `accepted_at` and to
  `closed_at`, over the tickets that carry both timestamps. A reopened ticket loses `closed_at`
  until it closes again.
- `satisfaction`: among tickets that carry a `rating`, the count and share of scores 1 (满意),
  2 (基本满意) and 3 (不满意). A 3 reopens the ticket and stays recorded on it until the citizen rates
  it again.
- `repeats`: `repeat_tickets` counts, for every citizen with n > 1 tickets in the period, the n - 1
  later ones; `repeat_citizens` counts those citizens (a pseudonymized OpenID groups as one citizen);
  `merged_duplicates` counts the period's tickets in status `merged`.
- `auto_answered`: tickets answered from the knowledge base that nobody handed over to staff
  (`auto_answer` without `handed_off_at`). They count in `total` and the breakdowns by status, appeal
  type and department, but not in `on_time`, `hours_to_close` or `repeats`: no department handled
  them, and a citizen who asks several questions is not repeating a complaint.

Reading: with `department`, one DepartmentIndex query reads the period as a range of its sort key
(`created_at`). Otherwise one StatusIndex query per counted status applies the period as a filter
(`intake.ticket_search.tickets_created_between`). No request scans the table.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from boto3.dynamodb.conditions import Attr, Key
from pydantic import BaseModel, Field

from intake import deadlines
from intake.keys import DEPARTMENT_INDEX, TICKET_SK, department_gsi_pk
from intake.ticket_search import is_overdue, tickets_created_between
from intake.ticket_status import TicketStatus
from intake.workflow import awaits_auto_close

# Statuses of tickets that count: everything a citizen submitted.
COUNTED_STATUSES = tuple(
    status.value for status in TicketStatus if status not in {TicketStatus.COLLECTING, TicketStatus.CANCELLED}
)
UNCLASSIFIED = "unclassified"
UNDISPATCHED = "undispatched"
RATING_SCORES = (1, 2, 3)


@dataclass(frozen=True)
class StatsFilter:
    # UTC ISO 8601 bounds on created_at, inclusive.
    created_from: str | None = None
    created_to: str | None = None
    department: str | None = None
    appeal_type: str | None = None


class OnTime(BaseModel):
    on_time: int
    late: int
    rate: float | None = Field(description="on_time / (on_time + late); null when nothing is judged yet")


class MeanHours(BaseModel):
    tickets: int = Field(description="Tickets that carry both timestamps")
    mean_hours: float | None


class Satisfaction(BaseModel):
    rated: int
    counts: dict[str, int] = Field(description="Ratings by score: 1 满意, 2 基本满意, 3 不满意")
    shares: dict[str, float | None] = Field(description="Share of each score among rated tickets")


class Repeats(BaseModel):
    repeat_tickets: int = Field(description="For each citizen with n > 1 tickets in the period, n - 1")
    repeat_citizens: int = Field(description="Citizens with more than one ticket in the period")
    merged_duplicates: int = Field(description="Tickets of the period merged into another ticket")


class TicketStats(BaseModel):
    total: int
    by_status: dict[str, int]
    by_appeal_type: dict[str, int]
    by_department: dict[str, int]
    on_time: OnTime
    hours_to_accept: MeanHours
    hours_to_close: MeanHours
    satisfaction: Satisfaction
    repeats: Repeats
    auto_answered: int = Field(
        description="Tickets answered from the knowledge base and not handed over to staff; counted in "
        "total and the breakdowns, left out of on_time, hours_to_close and repeats"
    )


def _department_tickets(table: Any, filters: StatsFilter) -> Iterator[dict[str, Any]]:
    condition: Any = Key("GSI3PK").eq(department_gsi_pk(str(filters.department)))
    if filters.created_from is not None and filters.created_to is not None:
        condition = condition & Key("GSI3SK").between(filters.created_from, filters.created_to)
    elif filters.created_from is not None:
        condition = condition & Key("GSI3SK").gte(filters.created_from)
    elif filters.created_to is not None:
        condition = condition & Key("GSI3SK").lte(filters.created_to)
    arguments: dict[str, Any] = {"IndexName": DEPARTMENT_INDEX, "KeyConditionExpression": condition}
    if filters.appeal_type is not None:
        arguments["FilterExpression"] = Attr("appeal_type").eq(filters.appeal_type)
    while True:
        response = table.query(**arguments)
        yield from response.get("Items", [])
        if "LastEvaluatedKey" not in response:
            return
        arguments["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def period_tickets(table: Any, filters: StatsFilter) -> Iterator[dict[str, Any]]:
    """Yield the counted ticket items of the period, read through the indexes."""
    if filters.department is not None:
        items: Iterable[dict[str, Any]] = _department_tickets(table, filters)
    else:
        condition = Attr("appeal_type").eq(filters.appeal_type) if filters.appeal_type else None
        items = tickets_created_between(
            table, list(COUNTED_STATUSES), filters.created_from, filters.created_to, condition
        )
    for item in items:
        if item.get("SK") == TICKET_SK and item.get("status") in COUNTED_STATUSES:
            yield item


def _hours_between(item: dict[str, Any], start: str, end: str) -> float | None:
    if not item.get(start) or not item.get(end):
        return None
    return (deadlines.parse_iso(str(item[end])) - deadlines.parse_iso(str(item[start]))) / 3600


def _mean(values: list[float]) -> MeanHours:
    return MeanHours(tickets=len(values), mean_hours=round(sum(values) / len(values), 2) if values else None)


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def compute_stats(items: Iterable[dict[str, Any]], now: float) -> TicketStats:
    """Return the figures of the given ticket items (see the module docstring for each definition)."""
    by_status: Counter[str] = Counter()
    by_type: Counter[str] = Counter()
    by_department: Counter[str] = Counter()
    by_citizen: Counter[str] = Counter()
    ratings: Counter[int] = Counter()
    on_time = late = merged = auto_answered = 0
    to_accept: list[float] = []
    to_close: list[float] = []

    for item in items:
        by_status[str(item["status"])] += 1
        by_type[str(item.get("appeal_type") or UNCLASSIFIED)] += 1
        by_department[str(item.get("department") or UNDISPATCHED)] += 1
        if item["status"] == TicketStatus.MERGED:
            merged += 1
        rating = item.get("rating") or {}
        if int(rating.get("score", 0)) in RATING_SCORES:
            ratings[int(rating["score"])] += 1
        hours = _hours_between(item, "submitted_at", "accepted_at")
        if hours is not None:
            to_accept.append(hours)
        if awaits_auto_close(item):
            auto_answered += 1
            continue

        if item.get("open_id"):
            by_citizen[str(item["open_id"])] += 1
        replied_on_time = item.get("replied_on_time")
        if replied_on_time is True:
            on_time += 1
        elif replied_on_time is False or is_overdue(item, now):
            late += 1
        hours = _hours_between(item, "submitted_at", "closed_at")
        if hours is not None:
            to_close.append(hours)

    rated = sum(ratings.values())
    return TicketStats(
        total=sum(by_status.values()),
        by_status=dict(sorted(by_status.items())),
        by_appeal_type=dict(sorted(by_type.items())),
        by_department=dict(sorted(by_department.items())),
        on_time=OnTime(on_time=on_time, late=late, rate=_share(on_time, on_time + late)),
        hours_to_accept=_mean(to_accept),
        hours_to_close=_mean(to_close),
        satisfaction=Satisfaction(
            rated=rated,
            counts={str(score): ratings[score] for score in RATING_SCORES},
            shares={str(score): _share(ratings[score], rated) for score in RATING_SCORES},
        ),
        repeats=Repeats(
            repeat_tickets=sum(count - 1 for count in by_citizen.values() if count > 1),
            repeat_citizens=sum(1 for count in by_citizen.values() if count > 1),
            merged_duplicates=merged,
        ),
        auto_answered=auto_answered,
    )


def ticket_stats(table: Any, filters: StatsFilter, now: float) -> TicketStats:
    """Read the period's tickets through the indexes and return their figures."""
    return compute_stats(period_tickets(table, filters), now)
