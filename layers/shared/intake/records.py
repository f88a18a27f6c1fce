"""Records that travel between functions over SQS and EventBridge.

These models are the contracts between the functions:
- `InboundRecord`: message-ingest -> inbound FIFO queue -> ticket-write.
- `MediaJob`: ticket-write -> media queue -> media-store.
- `CitizenNotice`: any producer -> EventBridge (detail-type `CitizenNoticeRequested`) -> outbound queue
  -> reply-push.
- `TicketEvent`: every ticket change, published on the EventBridge bus for reply-push, the workflow
  and the city's 12345 platform.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from intake.messages import Message, parse_fields

EVENT_SOURCE_TICKETS = "intake.tickets"
EVENT_SOURCE_STAFF = "intake.staff"
DETAIL_TYPE_NOTICE = "CitizenNoticeRequested"
DETAIL_TYPE_TICKET_CHANGED = "TicketChanged"


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InboundRecord(_Record):
    """One verified, decrypted and parsed push, as queued by the webhook."""

    schema_version: int = Field(default=1, ge=1, le=1)
    dedup_id: str = Field(min_length=1, max_length=2048)
    open_id: str = Field(min_length=1, max_length=128)
    msg_type: str = Field(min_length=1, max_length=32)
    event: str | None = None
    create_time: int = Field(ge=0)
    msg_id: str | None = None
    received_at: float = Field(ge=0, description="Unix time when the webhook accepted the push")
    # The push's fields under WeChat's names, exactly as validated by intake.messages.
    fields: dict[str, Any]

    @classmethod
    def from_message(cls, message: Message, received_at: float) -> InboundRecord:
        return cls(
            dedup_id=message.dedup_id(),
            open_id=message.open_id,
            msg_type=message.msg_type,
            event=getattr(message, "event", None),
            create_time=message.create_time,
            msg_id=getattr(message, "msg_id", None),
            received_at=received_at,
            fields=message.model_dump(by_alias=True, exclude_none=True),
        )

    def message(self) -> Message:
        """Return the typed message model; raises pydantic.ValidationError when the fields are malformed."""
        return parse_fields(self.fields)


class MediaJob(_Record):
    """A media file to copy from WeChat's temporary store into S3 before its media_id expires (3 days)."""

    # Both ids become parts of the S3 key (intake.media_storage.media_key), so they are key-safe.
    ticket_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    # Only a message item may receive a media map, never the ticket item or a history entry.
    message_sk: str = Field(
        pattern=r"^MSG#[0-9]{10}#[0-9a-f]{1,64}$",
        description="Sort key of the message item that receives the media record",
    )
    msg_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    msg_type: str = Field(pattern=r"^(image|voice|video|shortvideo|thumb)$")
    media_id: str
    media_id_16k: str | None = None
    thumb_media_id: str | None = None
    voice_format: str | None = None
    recognition: str | None = None
    create_time: int = Field(ge=0, description="CreateTime of the push; media expires 3 days later")


class NoticeKind(StrEnum):
    ACKNOWLEDGEMENT = "acknowledgement"
    STATUS = "status"
    STAFF_ANSWER = "staff_answer"
    REQUEST_INFO = "request_info"
    RATING_INVITATION = "rating_invitation"
    SELF_SERVICE = "self_service"
    EMERGENCY = "emergency"
    WELCOME = "welcome"


class NoticeMedia(_Record):
    """A file from the media bucket to send with a staff answer."""

    s3_key: str
    media_type: str = Field(pattern=r"^(image|voice)$")


class CitizenNotice(_Record):
    """A message to one citizen. `notice_id` is stable across redeliveries and is the idempotency key."""

    notice_id: str = Field(min_length=1, max_length=256)
    kind: NoticeKind
    open_id: str = Field(min_length=1, max_length=128)
    ticket_id: str | None = None
    # Status notices name the new status so the template fallback can fill its fields.
    status: str | None = None
    # The Simplified Chinese text for a customer-service message, rendered by the producer from intake.texts.
    text: str = Field(min_length=1)
    # Values for the template-message fallback, keyed by the names in the template configuration.
    template_values: dict[str, str] = Field(default_factory=dict)
    media: list[NoticeMedia] = Field(default_factory=list)
    created_at: float = Field(ge=0)


class TicketEvent(_Record):
    """Detail of a `TicketChanged` event: one change of one ticket."""

    ticket_id: str
    change: str = Field(description="created, message_added, status_changed, media_stored, media_lost, ...")
    status: str
    previous_status: str | None = None
    actor: str | None = None
    at: float = Field(ge=0)
    detail: dict[str, Any] = Field(default_factory=dict)
