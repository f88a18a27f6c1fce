"""Files that staff attach to an answer: photos and voice notes of the ticket, already in the media bucket.

The `reply` action may name S3 keys (for example the citizen's own photo, or the cleaned copy that
media-store made of it). Each key must lie under the ticket's folder of the media bucket,
`media/{yyyy}/{mm}/{dd}/{ticket_id}/{file}` (intake.media_storage), and be a type that WeChat takes
as a customer-service message: JPG, PNG or GIF as an image, AMR or MP3 as a voice message.
reply-push uploads each one to WeChat and sends it after the answer's text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from botocore.exceptions import ClientError

from intake.media_storage import MEDIA_PREFIX
from intake.records import NoticeMedia

# File extension -> customer-service message type (WeChat's temporary-media types).
MEDIA_TYPE_BY_EXTENSION = {
    "jpg": "image",
    "jpeg": "image",
    "png": "image",
    "gif": "image",
    "amr": "voice",
    "mp3": "voice",
}
# An answer's text takes at least one of the 5 customer-service messages of the citizen's window.
MAX_ANSWER_MEDIA = 3
# media / yyyy / mm / dd / ticket_id / file
_KEY_PARTS = 6
_TICKET_PART = 4


class InvalidAnswerMediaError(ValueError):
    """A key in the answer's `media` is not a usable file of this ticket (HTTP 400)."""

    def __init__(self, s3_key: str, reason: str) -> None:
        self.s3_key = s3_key
        self.reason = reason
        super().__init__(f"media {s3_key!r} cannot be sent with the answer: {reason}")


def notice_media(keys: Sequence[str]) -> list[NoticeMedia]:
    """Return the notice media for `keys`, typed by extension; raises InvalidAnswerMediaError."""
    media = []
    for key in keys:
        if not key.startswith(MEDIA_PREFIX) or ".." in key:
            raise InvalidAnswerMediaError(key, f"not a key under {MEDIA_PREFIX}")
        extension = key.rsplit(".", 1)[-1].lower() if "." in key.rsplit("/", 1)[-1] else ""
        media_type = MEDIA_TYPE_BY_EXTENSION.get(extension)
        if media_type is None:
            allowed = ", ".join(sorted(MEDIA_TYPE_BY_EXTENSION))
            raise InvalidAnswerMediaError(key, f"extension {extension!r} is not one of {allowed}")
        media.append(NoticeMedia(s3_key=key, media_type=media_type))
    return media


def check_answer_media(s3: Any, bucket: str, ticket_id: str, keys: Sequence[str]) -> list[NoticeMedia]:
    """Return the notice media for `keys` after checking that each is an object of this ticket in S3.

    Raises InvalidAnswerMediaError for a key outside the ticket's folder, of another type, or missing.
    """
    seen: set[str] = set()
    for key in keys:
        if key in seen:
            raise InvalidAnswerMediaError(key, "named twice")
        seen.add(key)
    media = notice_media(keys)
    for item in media:
        parts = item.s3_key.split("/")
        if len(parts) != _KEY_PARTS or parts[_TICKET_PART] != ticket_id:
            raise InvalidAnswerMediaError(item.s3_key, f"not a file of ticket {ticket_id}")
        try:
            s3.head_object(Bucket=bucket, Key=item.s3_key)
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") not in {"404", "NoSuchKey", "NotFound"}:
                raise
            raise InvalidAnswerMediaError(item.s3_key, "no such object in the media bucket") from err
    return media
