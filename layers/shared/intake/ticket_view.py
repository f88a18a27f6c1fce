"""The JSON shape of tickets in the staff API, built from the ticket, message and history items."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from intake import texts
from intake.ticket_search import is_overdue
from intake.workflow_config import WorkflowConfig


def plain(value: Any) -> Any:
    """Return a DynamoDB value with Decimal turned into int or float and sets into sorted lists."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, set | frozenset):
        return sorted(plain(item) for item in value)
    return value


class _View(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Location(_View):
    latitude: float
    longitude: float
    label: str | None = None
    source: str | None = None
    scale: int | None = None
    reported_at: int | None = None
    datum: str | None = Field(
        default=None,
        description="Coordinate system when it is not WeChat's GCJ-02: WGS-84 for a photo's EXIF position",
    )


class Media(_View):
    """A message's media: `content_type`, `size` and `sha256` describe the original file as WeChat
    delivered it, which is kept as evidence; `s3_key` and `url` give the copy staff open."""

    status: str | None = Field(default=None, description="pending, stored, lost or rejected")
    content_type: str | None = Field(default=None, description="MIME type of the original file")
    size: int | None = Field(default=None, description="Size of the original file in bytes")
    sha256: str | None = Field(default=None, description="SHA-256 of the original file, hex")
    s3_key: str | None = Field(
        default=None,
        description="Key of the copy staff open: a photo without EXIF metadata or an MP3 of a voice note; "
        "a reply's `media` may name it",
    )
    url: str | None = Field(
        default=None, description="Presigned S3 GET URL of that copy, valid for 300 seconds"
    )


class Message(_View):
    msg_id: str
    msg_type: str
    created_at: str
    content: str | None = None
    media: Media | None = None
    location: Location | None = None
    link: dict[str, Any] | None = None
    recognition: str | None = None


class HistoryEntry(_View):
    at: str
    entry_type: str
    actor: str
    before_status: str | None = None
    after_status: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


class TicketSummary(_View):
    ticket_id: str
    status: str
    status_label: str
    citizen: str | None = Field(default=None, description="The citizen's OpenID")
    appeal_type: str | None = None
    category: str | None = None
    urgent: bool = False
    department: str | None = None
    department_name: str | None = None
    deadline: str | None = Field(default=None, description="UTC ISO 8601; 17:30 China time of a working day")
    overdue: bool
    created_at: str
    updated_at: str | None = None
    location: Location | None = None


class Ticket(TicketSummary):
    messages: list[Message]
    history: list[HistoryEntry]
    merged_into: str | None = None
    merged_tickets: list[str] = Field(default_factory=list)
    extension_request: dict[str, Any] | None = None
    extensions: list[dict[str, Any]] = Field(default_factory=list)
    reply_text: str | None = None
    auto_answer: dict[str, Any] | None = Field(
        default=None,
        description="The knowledge-base answer given at once: entry_id, entry_version, question, score, "
        "answer, answered_at",
    )
    handed_off_at: str | None = Field(default=None, description="When the citizen asked for a person (人工)")
    rejected_reason: str | None = None
    return_reason_code: str | None = None
    rating: dict[str, Any] | None = None
    version: int = 0


def ticket_summary(item: dict[str, Any], config: WorkflowConfig, now: float) -> TicketSummary:
    department = item.get("department")
    return TicketSummary(
        ticket_id=str(item["ticket_id"]),
        status=str(item["status"]),
        status_label=texts.status_label(str(item["status"])),
        citizen=None if item.get("open_id_pseudonymized") else item.get("open_id"),
        appeal_type=item.get("appeal_type"),
        category=item.get("category"),
        urgent=bool(item.get("urgent", False)),
        department=department,
        department_name=config.department_name(str(department)) if department else None,
        deadline=item.get("deadline"),
        overdue=is_overdue(item, now),
        created_at=str(item.get("created_at", "")),
        updated_at=item.get("updated_at"),
        location=plain(item["location"]) if item.get("location") else None,
    )


def _message(item: dict[str, Any], media_url: Callable[[str], str | None]) -> Message:
    media = None
    if item.get("media"):
        stored = plain(item["media"])
        # Staff open the copy media-store made for them; the original (a photo may carry the citizen's
        # GPS position in its EXIF) stays evidence only. No staff copy means no link.
        staff_key = stored.get("staff_s3_key") if "staff_s3_key" in stored else stored.get("s3_key")
        fields = {
            name: value for name, value in stored.items() if name in Media.model_fields and name != "s3_key"
        }
        media = Media(**fields, s3_key=staff_key, url=media_url(staff_key) if staff_key else None)
    return Message(
        msg_id=str(item.get("msg_id", "")),
        msg_type=str(item.get("msg_type", "")),
        created_at=str(item.get("created_at", "")),
        content=item.get("content"),
        media=media,
        location=plain(item["location"]) if item.get("location") else None,
        link=item.get("link"),
        recognition=item.get("recognition"),
    )


def _history_entry(item: dict[str, Any]) -> HistoryEntry:
    return HistoryEntry(
        at=str(item["at"]),
        entry_type=str(item["entry_type"]),
        actor=str(item["actor"]),
        before_status=item.get("before_status"),
        after_status=item.get("after_status"),
        detail=plain(item.get("detail") or {}),
    )


def ticket_detail(
    item: dict[str, Any],
    children: list[dict[str, Any]],
    config: WorkflowConfig,
    now: float,
    media_url: Callable[[str], str | None],
) -> Ticket:
    """Return the full ticket; `children` are the items under its partition key (messages, history)."""
    summary = ticket_summary(item, config, now)
    messages = [_message(child, media_url) for child in children if str(child["SK"]).startswith("MSG#")]
    history = [_history_entry(child) for child in children if str(child["SK"]).startswith("HIST#")]
    return Ticket(
        **summary.model_dump(),
        messages=messages,
        history=history,
        merged_into=item.get("merged_into"),
        merged_tickets=plain(item.get("merged_tickets", set())),
        extension_request=plain(item.get("extension_request")),
        extensions=plain(item.get("extensions", [])),
        reply_text=item.get("reply_text"),
        auto_answer=plain(item.get("auto_answer")),
        handed_off_at=item.get("handed_off_at"),
        rejected_reason=item.get("rejected_reason"),
        return_reason_code=item.get("return_reason_code"),
        rating=plain(item.get("rating")),
        version=int(item.get("version", 0)),
    )
