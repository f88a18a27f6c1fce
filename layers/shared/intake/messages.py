"""Pydantic models of the messages and events that WeChat pushes to the webhook.

Field aliases are WeChat's XML element names, so `Message.model_validate(xml_fields)` works on the
dict that the XML parser returns and `model_dump(by_alias=True)` gives the same names back.
A MsgType or Event that this module does not know becomes `UnknownMessage`, never an error,
because WeChat adds new events without notice.
"""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Message(BaseModel):
    """Fields common to every push."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)

    to_user_name: str = Field(alias="ToUserName", min_length=1, max_length=64)
    from_user_name: str = Field(alias="FromUserName", min_length=1, max_length=128)
    create_time: int = Field(alias="CreateTime", ge=0, le=2**32)
    msg_type: str = Field(alias="MsgType", min_length=1, max_length=32)

    # Whether this push carries content for a ticket (text, media, location, link).
    is_content: ClassVar[bool] = False

    @property
    def open_id(self) -> str:
        return self.from_user_name

    def dedup_id(self) -> str:
        """Return the id under which WeChat's retries of this push collapse into one."""
        return f"{self.from_user_name}:{self.create_time}:{self.msg_type}"


class ContentMessage(Message):
    """An ordinary message sent by the citizen; `MsgId` is a 64-bit integer kept as a string."""

    msg_id: str = Field(alias="MsgId", pattern=r"^[0-9]{1,20}$")
    is_content: ClassVar[bool] = True

    @field_validator("msg_id", mode="before")
    @classmethod
    def _msg_id_as_string(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value

    def dedup_id(self) -> str:
        return f"{self.from_user_name}:{self.msg_id}"


class TextMessage(ContentMessage):
    content: str = Field(alias="Content", default="", max_length=20000)


class ImageMessage(ContentMessage):
    pic_url: str = Field(alias="PicUrl", default="", max_length=2048)
    media_id: str = Field(alias="MediaId", min_length=1, max_length=256)


class VoiceMessage(ContentMessage):
    media_id: str = Field(alias="MediaId", min_length=1, max_length=256)
    format: str = Field(alias="Format", default="amr", max_length=16)
    # A 16 kHz copy of the same voice note; newer pushes carry it, older ones do not.
    media_id_16k: str | None = Field(alias="MediaId16K", default=None, max_length=256)
    # WeChat's own speech recognition, often empty or absent.
    recognition: str | None = Field(alias="Recognition", default=None, max_length=4000)


class VideoMessage(ContentMessage):
    media_id: str = Field(alias="MediaId", min_length=1, max_length=256)
    thumb_media_id: str | None = Field(alias="ThumbMediaId", default=None, max_length=256)


class ShortVideoMessage(VideoMessage):
    pass


class LocationMessage(ContentMessage):
    # WeChat calls latitude Location_X and longitude Location_Y (GCJ-02 coordinates in mainland China).
    latitude: float = Field(alias="Location_X", ge=-90, le=90)
    longitude: float = Field(alias="Location_Y", ge=-180, le=180)
    scale: int | None = Field(alias="Scale", default=None)
    label: str = Field(alias="Label", default="", max_length=1024)


class LinkMessage(ContentMessage):
    title: str = Field(alias="Title", default="", max_length=1024)
    description: str = Field(alias="Description", default="", max_length=4096)
    url: str = Field(alias="Url", default="", max_length=4096)


class EventMessage(Message):
    """A push with MsgType `event`; events have no MsgId."""

    event: str = Field(alias="Event", min_length=1, max_length=64)
    event_key: str | None = Field(alias="EventKey", default=None, max_length=1024)

    def dedup_id(self) -> str:
        key = f":{self.event_key}" if self.event_key else ""
        return f"{self.from_user_name}:{self.create_time}:{self.event}{key}"


class SubscribeEvent(EventMessage):
    ticket: str | None = Field(alias="Ticket", default=None, max_length=1024)

    @property
    def scene(self) -> str | None:
        """The parametric QR scene that brought the citizen in, without WeChat's `qrscene_` prefix."""
        if self.event_key and self.event_key.startswith("qrscene_"):
            return self.event_key.removeprefix("qrscene_")
        return None


class UnsubscribeEvent(EventMessage):
    pass


class ScanEvent(EventMessage):
    ticket: str | None = Field(alias="Ticket", default=None, max_length=1024)


class LocationEvent(EventMessage):
    latitude: float = Field(alias="Latitude", ge=-90, le=90)
    longitude: float = Field(alias="Longitude", ge=-180, le=180)
    precision: float | None = Field(alias="Precision", default=None)


class ClickEvent(EventMessage):
    pass


class ViewEvent(EventMessage):
    menu_id: str | None = Field(alias="MenuId", default=None, max_length=64)


class TemplateSendJobFinishEvent(EventMessage):
    # WeChat spells this element MsgID (capital D) in this event only.
    template_msg_id: str = Field(alias="MsgID", pattern=r"^[0-9]{1,20}$")
    status: str = Field(alias="Status", max_length=128)

    @field_validator("template_msg_id", mode="before")
    @classmethod
    def _msg_id_as_string(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value


class UnknownMessage(Message):
    """A MsgType or Event this backend does not handle; acknowledged and recorded, never processed."""

    event: str | None = Field(alias="Event", default=None, max_length=64)
    msg_id: str | None = Field(alias="MsgId", default=None, max_length=32)

    def dedup_id(self) -> str:
        if self.msg_id:
            return f"{self.from_user_name}:{self.msg_id}"
        return f"{self.from_user_name}:{self.create_time}:{self.msg_type}:{self.event or ''}"


MESSAGE_TYPES: dict[str, type[Message]] = {
    "text": TextMessage,
    "image": ImageMessage,
    "voice": VoiceMessage,
    "video": VideoMessage,
    "shortvideo": ShortVideoMessage,
    "location": LocationMessage,
    "link": LinkMessage,
}

# WeChat sends subscribe/unsubscribe in lower case and the others in upper case; lookup ignores case.
EVENT_TYPES: dict[str, type[EventMessage]] = {
    "subscribe": SubscribeEvent,
    "unsubscribe": UnsubscribeEvent,
    "scan": ScanEvent,
    "location": LocationEvent,
    "click": ClickEvent,
    "view": ViewEvent,
    "templatesendjobfinish": TemplateSendJobFinishEvent,
}

MEDIA_MESSAGE_TYPES = frozenset({"image", "voice", "video", "shortvideo"})


def message_class(fields: dict[str, Any]) -> type[Message]:
    """Return the model class for a push's fields, `UnknownMessage` when the type is not handled."""
    msg_type = fields.get("MsgType")
    if msg_type == "event":
        event = fields.get("Event")
        if isinstance(event, str):
            return EVENT_TYPES.get(event.lower(), UnknownMessage)
        return UnknownMessage
    if isinstance(msg_type, str):
        return MESSAGE_TYPES.get(msg_type, UnknownMessage)
    return UnknownMessage


def parse_fields(fields: dict[str, Any]) -> Message:
    """Validate a push's fields into its model; raises pydantic.ValidationError on malformed values."""
    return message_class(fields).model_validate(fields)


def hashed_dedup_id(dedup_id: str) -> str:
    """Return the SQS MessageDeduplicationId for a dedup id.

    The id is hex SHA-256, so no OpenID sits in the queue's metadata.
    """
    return hashlib.sha256(dedup_id.encode("utf-8")).hexdigest()
