"""Where citizen media lives in S3 and how the message item records it.

Object keys are `media/{yyyy}/{mm}/{dd}/{ticket_id}/{msg_id}.{ext}`, dated by the push's CreateTime in
China Standard Time; variants add a suffix before the extension (`.clean.jpg`, `.mp3`,
`.thumb.jpg`). Every object is written with SSE-KMS under the template's DataKey. Staff reach the
objects only through short-lived presigned URLs (`presigned_media_url`).

The message item's `media` map ends in one of three statuses: `stored` (the file is in S3),
`lost` (WeChat no longer has it) or `rejected` (WeChat returned something that is not an accepted
file). Each status change is written together with its history entry in one transaction.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any, BinaryIO

from aws_lambda_powertools import Logger
from botocore.config import Config
from botocore.exceptions import ClientError

from intake import clock
from intake.history import history_item
from intake.keys import TICKET_SK, ticket_pk

logger = Logger(child=True)

MEDIA_PREFIX = "media/"
# Final statuses: a job that finds one of these on its message has nothing left to do.
FINAL_STATUSES = frozenset({"stored", "lost", "rejected"})
# Presigned URLs are for opening a file in the staff console, not for sharing.
MAX_PRESIGNED_SECONDS = 3600

_KEY_PART = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class MessageNotFoundError(Exception):
    """The message item that a MediaJob names does not exist (yet); the job is retried."""


@dataclass(frozen=True)
class StoredObject:
    s3_key: str
    content_type: str
    size: int
    sha256: str

    def as_item(self) -> dict[str, Any]:
        return asdict(self)


def media_key(create_time: int, ticket_id: str, msg_id: str, suffix: str) -> str:
    """Return the S3 key of a message's file; `suffix` is the extension with any variant (`clean.jpg`)."""
    for name, value in (("ticket_id", ticket_id), ("msg_id", msg_id)):
        if not _KEY_PART.match(value):
            raise ValueError(f"{name} {value!r} is not usable in an S3 key; expected letters, digits, _ or -")
    day = clock.china_datetime(create_time)
    return f"{MEDIA_PREFIX}{day:%Y/%m/%d}/{ticket_id}/{msg_id}.{suffix}"


def upload_stream(
    s3: Any, bucket: str, key: str, stream: BinaryIO | Any, content_type: str, kms_key_id: str
) -> None:
    """Stream `stream` to S3 with SSE-KMS; s3transfer reads it in parts and never holds it whole."""
    s3.upload_fileobj(
        stream,
        bucket,
        key,
        ExtraArgs={
            "ContentType": content_type,
            "ServerSideEncryption": "aws:kms",
            "SSEKMSKeyId": kms_key_id,
        },
    )


def presigned_media_url(
    s3_key: str, expires_in: int = 300, s3_client: Any | None = None, bucket: str | None = None
) -> str:
    """Return a GET URL for one media object, valid for `expires_in` seconds (at most one hour).

    SSE-KMS objects need Signature Version 4, so the default client is configured for it.
    """
    if not s3_key.startswith(MEDIA_PREFIX) or ".." in s3_key:
        raise ValueError(f"s3_key {s3_key!r} is not a media object key; expected one under {MEDIA_PREFIX}")
    if not 1 <= expires_in <= MAX_PRESIGNED_SECONDS:
        raise ValueError(
            f"expires_in must be between 1 and {MAX_PRESIGNED_SECONDS} seconds, got {expires_in}"
        )
    if s3_client is None:
        import boto3

        s3_client = boto3.client("s3", config=Config(signature_version="s3v4"))
    if bucket is None:
        from intake.settings import get_settings

        bucket = get_settings().media_bucket
    url: str = s3_client.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": s3_key}, ExpiresIn=expires_in
    )
    return url


class MediaRecords:
    """Reads and writes the `media` map of message items and the matching history entries."""

    def __init__(self, table: Any) -> None:
        self._table = table

    def _message_key(self, ticket_id: str, message_sk: str) -> dict[str, str]:
        return {"PK": ticket_pk(ticket_id), "SK": message_sk}

    def media_status(self, ticket_id: str, message_sk: str) -> str | None:
        """Return the message's media status, or None when the message has no media map."""
        item = self._table.get_item(
            Key=self._message_key(ticket_id, message_sk),
            ConsistentRead=True,
            ProjectionExpression="PK, media",
        ).get("Item")
        if item is None:
            raise MessageNotFoundError(f"message {message_sk} of ticket {ticket_id} not found; retry later")
        media = item.get("media") or {}
        status = media.get("status")
        return str(status) if status is not None else None

    def ticket_status(self, ticket_id: str) -> str:
        item = self._table.get_item(
            Key={"PK": ticket_pk(ticket_id), "SK": TICKET_SK}, ProjectionExpression="#status",
            ExpressionAttributeNames={"#status": "status"},
        ).get("Item")  # fmt: skip
        return str(item["status"]) if item and "status" in item else "unknown"

    def finish(self, ticket_id: str, message_sk: str, media: dict[str, Any], entry_type: str) -> bool:
        """Write the message's final `media` map and its history entry in one transaction.

        Returns False when another delivery of the same job has already finished the message.
        """
        history = history_item(ticket_id, entry_type, "system", detail=_history_detail(media))
        client = self._table.meta.client
        try:
            client.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": self._table.name,
                            "Key": self._message_key(ticket_id, message_sk),
                            "UpdateExpression": "SET media = :media",
                            "ConditionExpression": (
                                "attribute_exists(PK) AND (attribute_not_exists(media) "
                                "OR NOT media.#status IN (:stored, :lost, :rejected))"
                            ),
                            "ExpressionAttributeNames": {"#status": "status"},
                            "ExpressionAttributeValues": {
                                ":media": _dynamo(media),
                                ":stored": "stored",
                                ":lost": "lost",
                                ":rejected": "rejected",
                            },
                        }
                    },
                    {
                        "Put": {
                            "TableName": self._table.name,
                            "Item": _dynamo(history),
                            "ConditionExpression": "attribute_not_exists(PK)",
                        }
                    },
                ]
            )
        except ClientError as err:
            if err.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            if self.media_status(ticket_id, message_sk) in FINAL_STATUSES:
                return False
            raise
        return True

    def set_location_hint(self, ticket_id: str, location: dict[str, Any]) -> bool:
        """Give the ticket `location` only when it has none; returns whether it was set."""
        try:
            self._table.update_item(
                Key={"PK": ticket_pk(ticket_id), "SK": TICKET_SK},
                UpdateExpression="SET #location = :location",
                # A new ticket stores `location` as NULL, which counts as "no location yet".
                ConditionExpression=(
                    "attribute_exists(PK) AND (attribute_not_exists(#location) OR attribute_type(#location, :null))"
                ),
                ExpressionAttributeNames={"#location": "location"},
                ExpressionAttributeValues={":location": _dynamo(location), ":null": "NULL"},
            )
        except ClientError as err:
            if err.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            return False
        return True


def _history_detail(media: dict[str, Any]) -> dict[str, Any]:
    keys = ("status", "reason", "errcode", "s3_key", "sha256", "size", "msg_id")
    return {key: media[key] for key in keys if key in media}


def _dynamo(value: Any) -> Any:
    """Convert floats to Decimal and drop None values, as DynamoDB's document types require."""
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {key: _dynamo(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_dynamo(item) for item in value]
    return value
