"""The citizen profile item `PK=CITIZEN#{open_id}`, `SK=PROFILE`.

ticket-write creates and updates it; reply-push reads `subscribed`, `last_interaction_at` and
`cs_quota_used` and counts `cs_quota_used` up. The profile is deleted when the citizen unsubscribes,
so a missing profile means "not subscribed".
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from intake.keys import CITIZEN_SK, citizen_pk

LocationSource = Literal["message", "location_event", "photo_exif"]


class Location(BaseModel):
    """A position in GCJ-02 coordinates (what WeChat reports in mainland China)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    label: str = ""
    source: LocationSource
    # Unix seconds when WeChat reported the position (CreateTime of the push).
    reported_at: int = Field(ge=0)


class CitizenProfile(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    open_id: str
    subscribed: bool = True
    # Unix seconds of the citizen's last interaction, which opens WeChat's 48-hour service window.
    last_interaction_at: int | None = None
    # Customer-service messages sent since last_interaction_at (WeChat allows 5).
    cs_quota_used: int = 0
    open_draft_ticket_id: str | None = None
    pending_rating_ticket_id: str | None = None
    # The ticket answered from the knowledge base that 「人工」 hands to staff (intake.auto_answer).
    auto_answer_ticket_id: str | None = None
    # The ticket the citizen last supplemented; messages within the collecting window join it too.
    last_supplement_ticket_id: str | None = None
    last_location: Location | None = None
    # Unix seconds (CreateTime) of the last content message.
    last_message_at: int | None = None

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> CitizenProfile:
        return cls.model_validate(item)


def profile_key(open_id: str) -> dict[str, str]:
    return {"PK": citizen_pk(open_id), "SK": CITIZEN_SK}
