"""Open311 GeoReport v2 read views of the tickets, without personal data.

Services: every configured category (`group` 诉求分类) and every appeal type (`group` 诉求类型, code
`appeal_<type>`), so a ticket that staff classified without a category still has a service. A
ticket's service is its category when set, else its appeal type.

Published tickets: those staff accepted (`accepted_at` is set). Drafts, cancelled tickets, tickets
rejected or merged before acceptance, and submitted tickets not yet accepted are not public, because
staff have not reviewed their content. A published request carries no OpenID, no message text, no staff
reply and no media: `description` is the service name, `status_notes` the Chinese status label and,
for a closed request, the outcome (the rating label, or the main ticket of a merged duplicate).
Times are ISO 8601 in China Standard Time (+08:00).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal

from boto3.dynamodb.conditions import Attr
from pydantic import BaseModel, Field

from intake import clock, texts
from intake.ticket_search import tickets_created_between
from intake.ticket_status import TicketStatus
from intake.workflow_config import APPEAL_TYPES, WorkflowConfig

# GeoReport v2 returns at most this many requests per call.
MAX_REQUESTS = 1000
# Without start_date, requests.json covers this many days before end_date (the spec's default).
DEFAULT_WINDOW_DAYS = 90
APPEAL_SERVICE_PREFIX = "appeal_"

# A ticket is `closed` in Open311 once it is finished; replied tickets still wait for 办结.
CLOSED_STATUSES = frozenset(
    {TicketStatus.CLOSED, TicketStatus.RATED, TicketStatus.REJECTED, TicketStatus.MERGED}
)
OPEN_STATUSES = frozenset(
    {
        TicketStatus.SUBMITTED,
        TicketStatus.ACCEPTED,
        TicketStatus.DISPATCHED,
        TicketStatus.RETURNED,
        TicketStatus.AWAITING_CITIZEN,
        TicketStatus.REPLIED,
    }
)


class Service(BaseModel):
    service_code: str
    service_name: str
    description: str
    metadata: bool = False
    type: Literal["realtime"] = "realtime"
    keywords: str = Field(description="Comma-separated search words")
    group: str


class ServiceRequest(BaseModel):
    service_request_id: str
    status: Literal["open", "closed"]
    status_notes: str
    service_name: str | None = None
    service_code: str | None = None
    description: str | None = Field(default=None, description="The service name; never the citizen's words")
    agency_responsible: str | None = Field(default=None, description="Name of the handling department")
    requested_datetime: str
    updated_datetime: str | None = None
    expected_datetime: str | None = Field(default=None, description="The handling deadline")
    address: str | None = None
    lat: float | None = None
    long: float | None = None


def services(config: WorkflowConfig) -> list[Service]:
    """Return the service list: the categories, then the appeal types."""
    category_group = texts.text("open311.category_group")
    type_group = texts.text("open311.appeal_type_group")
    listed = [
        Service(
            service_code=category.code,
            service_name=category.name,
            description=category.name,
            keywords=category.name,
            group=category_group,
        )
        for category in config.categories
    ]
    for appeal_type in APPEAL_TYPES:
        label = texts.text(f"appeal_type.{appeal_type}")
        listed.append(
            Service(
                service_code=f"{APPEAL_SERVICE_PREFIX}{appeal_type}",
                service_name=label,
                description=label,
                keywords=label,
                group=type_group,
            )
        )
    return listed


def service_codes(config: WorkflowConfig) -> frozenset[str]:
    return frozenset(service.service_code for service in services(config))


def china_iso(value: str | None) -> str | None:
    """Return a stored UTC ISO time as ISO 8601 in China Standard Time, such as 2026-10-10T17:30:00+08:00."""
    if not value:
        return None
    return datetime.fromisoformat(str(value)).astimezone(clock.CHINA_TZ).isoformat(timespec="seconds")


def is_published(item: dict[str, Any]) -> bool:
    return bool(item.get("accepted_at")) and item.get("status") in OPEN_STATUSES | CLOSED_STATUSES


def _service_of(item: dict[str, Any], config: WorkflowConfig) -> tuple[str | None, str | None]:
    category = item.get("category")
    if category and config.category_name(str(category)):
        return str(category), config.category_name(str(category))
    appeal_type = item.get("appeal_type")
    if appeal_type in APPEAL_TYPES:
        return f"{APPEAL_SERVICE_PREFIX}{appeal_type}", texts.text(f"appeal_type.{appeal_type}")
    return None, None


def _status_notes(item: dict[str, Any]) -> str:
    status = str(item["status"])
    label = texts.status_label(status)
    rating = item.get("rating") or {}
    if status == TicketStatus.MERGED and item.get("merged_into"):
        return texts.text("open311.notes_merged", status=label, main_ticket_id=item["merged_into"])
    if status in CLOSED_STATUSES and rating.get("score"):
        return texts.text(
            "open311.notes_rated", status=label, rating=texts.text(f"rating.{int(rating['score'])}")
        )
    return label


def service_request(item: dict[str, Any], config: WorkflowConfig) -> ServiceRequest:
    """Return the public view of one ticket item (only for items where `is_published` holds)."""
    code, name = _service_of(item, config)
    department = item.get("department")
    location = item.get("location") or {}
    return ServiceRequest(
        service_request_id=str(item["ticket_id"]),
        status="closed" if item["status"] in CLOSED_STATUSES else "open",
        status_notes=_status_notes(item),
        service_name=name,
        service_code=code,
        description=name,
        agency_responsible=config.department_name(str(department)) if department else None,
        requested_datetime=china_iso(str(item["created_at"])) or "",
        updated_datetime=china_iso(item.get("updated_at")),
        expected_datetime=china_iso(item.get("deadline")),
        address=location.get("label") or None,
        lat=float(location["latitude"]) if location.get("latitude") is not None else None,
        long=float(location["longitude"]) if location.get("longitude") is not None else None,
    )


def _service_condition(codes: list[str]) -> Any:
    condition: Any = None
    for code in codes:
        if code.startswith(APPEAL_SERVICE_PREFIX):
            part = Attr("appeal_type").eq(code.removeprefix(APPEAL_SERVICE_PREFIX))
        else:
            part = Attr("category").eq(code)
        condition = part if condition is None else condition | part
    return condition


def find_requests(
    table: Any,
    config: WorkflowConfig,
    created_from: str | None,
    created_to: str | None,
    status: Literal["open", "closed"] | None,
    codes: list[str],
    limit: int,
) -> list[ServiceRequest]:
    """Return published requests created in the period, newest first, at most `limit`.

    The code of an appeal type also matches the tickets of that type that have a category.
    """
    statuses: Iterable[TicketStatus] = (
        OPEN_STATUSES
        if status == "open"
        else CLOSED_STATUSES
        if status == "closed"
        else OPEN_STATUSES | CLOSED_STATUSES
    )
    condition = Attr("accepted_at").exists()
    if codes:
        condition = condition & _service_condition(codes)
    items = [
        item
        for item in tickets_created_between(
            table, sorted(str(value) for value in statuses), created_from, created_to, condition
        )
        if is_published(item)
    ]
    items.sort(key=lambda item: str(item["created_at"]), reverse=True)
    return [service_request(item, config) for item in items[:limit]]
