"""Media jobs: ticket-write asks media-store to copy a photo, voice note or video from WeChat into S3."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from intake.messages import ImageMessage, Message, VideoMessage, VoiceMessage
from intake.records import MediaJob

logger = Logger(child=True)


class MediaJobSendError(RuntimeError):
    """The media queue did not accept a job; the inbound record fails and is retried."""


def media_job_for(message: Message, ticket_id: str, message_sk: str) -> MediaJob | None:
    """Return the job that stores this message's media, or None when the message carries none."""
    if not isinstance(message, ImageMessage | VoiceMessage | VideoMessage):
        return None
    job: dict[str, Any] = {
        "ticket_id": ticket_id,
        "message_sk": message_sk,
        "msg_id": message.msg_id,
        "msg_type": message.msg_type,
        "media_id": message.media_id,
        "create_time": message.create_time,
    }
    if isinstance(message, VoiceMessage):
        job |= {
            "media_id_16k": message.media_id_16k,
            "voice_format": message.format,
            "recognition": message.recognition,
        }
    if isinstance(message, VideoMessage):
        job["thumb_media_id"] = message.thumb_media_id
    return MediaJob.model_validate(job)


class MediaJobSender:
    """Sends `MediaJob` records to the media queue (a standard queue; media-store is idempotent)."""

    def __init__(self, sqs_client: Any, queue_url: str) -> None:
        self._sqs = sqs_client
        self._queue_url = queue_url

    def send(self, job: MediaJob) -> None:
        if not self._queue_url:
            raise MediaJobSendError("MEDIA_QUEUE_URL is not set; point it at the media queue")
        try:
            self._sqs.send_message(QueueUrl=self._queue_url, MessageBody=job.model_dump_json())
        except (ClientError, BotoCoreError) as err:
            logger.error(
                "media job send failed",
                extra={"ticket_id": job.ticket_id, "msg_id": job.msg_id, "error": type(err).__name__},
            )
            raise MediaJobSendError(f"media queue rejected the job for message {job.msg_id}") from err
        logger.info("media job sent", extra={"ticket_id": job.ticket_id, "msg_id": job.msg_id})
