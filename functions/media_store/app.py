"""media-store: copies a message's photo, voice note or video from WeChat into S3.

One `MediaJob` per SQS record. WeChat keeps temporary media for 3 days, so the outcomes are:
- stored: the file (and its variants) is in S3 and the message's `media` map says where;
- lost: WeChat no longer has the file (errcode 40007, or the push is older than 3 days); staff see it
  on the message, in the history and through a `TicketChanged` event (change `media_lost`);
- rejected: WeChat returned bytes of the wrong type or over the size cap. Retrying would fetch the
  same bytes, so the attempt is recorded on the message for staff (change `media_rejected`) instead
  of filling the dead-letter queue;
- retried: timeouts, HTTP 5xx and errcode -1 fail the record, with exponential backoff through the
  message's visibility timeout, until the queue's redrive policy moves it to the dead-letter queue;
- dead-lettered: any other errcode (for example 40164, IP not on the allow-list) and malformed jobs
  fail the record with an error log until redrive moves it to the dead-letter queue.
"""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from intake import clock
from intake.access_token import AccessTokenProvider
from intake.event_bus import EventPublisher
from intake.media_download import InspectingReader, MediaRejectedError
from intake.media_storage import FINAL_STATUSES, MediaRecords, StoredObject, media_key, upload_stream
from intake.media_types import accepted_for
from intake.photo_exif import PhotoProcessingError, read_gps_position, write_clean_copy
from intake.records import MediaJob, TicketEvent
from intake.settings import get_settings
from intake.voice_transcode import MP3_CONTENT_TYPE, TranscodeError, transcode_to_mp3
from intake.wechat_api import WeChatApiClient, WeChatApiError, WeChatProtocolError, WeChatTransportError

logger = Logger()
metrics = Metrics()
# Failed records are reported, never raised for the whole batch, so that each keeps the visibility
# timeout its retry set.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

settings = get_settings()
s3 = boto3.client("s3")
sqs = boto3.client("sqs")
records = MediaRecords(boto3.resource("dynamodb").Table(settings.table_name))
publisher = EventPublisher(boto3.client("events"), settings.event_bus_name)

# WeChat deletes temporary media 3 days after the push.
MEDIA_LIFETIME_SECONDS = 3 * 86400
INVALID_MEDIA_ID_ERRCODE = 40007
# Retry backoff through the visibility timeout: 1, 4, 16, 64 minutes, then the redrive policy applies.
RETRY_BASE_SECONDS = 60
RETRY_FACTOR = 4
MAX_VISIBILITY_SECONDS = 12 * 3600  # the SQS maximum

_wechat: WeChatApiClient | None = None


class MediaStoreError(Exception):
    """A job that cannot succeed by retrying soon; the record fails so redrive moves it to the DLQ."""


def wechat() -> WeChatApiClient:
    """Return the WeChat client, created on first use because it reads the WeChat secret."""
    global _wechat  # noqa: PLW0603 - one client per container, like the boto3 clients above
    if _wechat is None:
        _wechat = WeChatApiClient(settings.wechat_api_base, AccessTokenProvider.from_environment())
    return _wechat


# -- one file ---------------------------------------------------------------------------------------


def download_to_s3(
    job: MediaJob, media_id: str, kind: str, variant: str, copy_to: Path | None
) -> StoredObject:
    """Stream one WeChat media file to S3, checked by `kind`'s types and cap; optionally copy it locally.

    `variant` goes before the extension in the key (`thumb` gives `{msg_id}.thumb.jpg`).
    """
    accepted, max_bytes = accepted_for(kind)
    with wechat().open_media(media_id) as response, _open_copy(copy_to) as copy:
        reader = InspectingReader(response, accepted, max_bytes, copy_to=copy)
        # The first read checks the type, so nothing reaches S3 before the check has passed.
        reader.read(0)
        assert reader.media_type is not None
        suffix = f"{variant}.{reader.media_type.extension}" if variant else reader.media_type.extension
        key = media_key(job.create_time, job.ticket_id, job.msg_id, suffix)
        upload_stream(
            s3, settings.media_bucket, key, reader, reader.media_type.content_type, settings.media_kms_key_id
        )
    logger.info("media file stored", extra={"msg_id": job.msg_id, "s3_key": key, "size": reader.size})
    return StoredObject(key, reader.media_type.content_type, reader.size, reader.sha256)


def upload_local(job: MediaJob, path: Path, suffix: str, content_type: str) -> StoredObject:
    """Upload a variant made in /tmp (clean JPEG, MP3) next to the original."""
    key = media_key(job.create_time, job.ticket_id, job.msg_id, suffix)
    with path.open("rb") as handle:
        sha256 = hashlib.file_digest(handle, "sha256").hexdigest()
        handle.seek(0)
        upload_stream(s3, settings.media_bucket, key, handle, content_type, settings.media_kms_key_id)
    return StoredObject(key, content_type, path.stat().st_size, sha256)


def _open_copy(path: Path | None) -> contextlib.AbstractContextManager[BinaryIO | None]:
    return path.open("wb") if path is not None else contextlib.nullcontext()


# -- per message type -------------------------------------------------------------------------------


def store_image(job: MediaJob, workdir: Path) -> dict[str, Any]:
    """Store the original photo (evidence), a copy without EXIF for staff, and the GPS hint."""
    original_path = workdir / "original"
    original = download_to_s3(job, job.media_id, job.msg_type, "", original_path)
    media: dict[str, Any] = {**original.as_item(), "variants": {}, "staff_s3_key": None}
    try:
        position = read_gps_position(original_path)
        clean_path = workdir / "clean.jpg"
        write_clean_copy(original_path, clean_path)
    except PhotoProcessingError as err:
        # Without a clean copy staff get no link: the original may carry the citizen's GPS position.
        logger.warning("photo copy without EXIF failed", extra={"msg_id": job.msg_id, "error": str(err)})
        media["clean_error"] = str(err)
        return media
    clean = upload_local(job, clean_path, "clean.jpg", "image/jpeg")
    media["variants"]["clean"] = clean.as_item()
    media["staff_s3_key"] = clean.s3_key
    if position is not None:
        media["exif_location"] = {"latitude": position.latitude, "longitude": position.longitude}
        set_photo_location(job, position.latitude, position.longitude)
    return media


def set_photo_location(job: MediaJob, latitude: float, longitude: float) -> None:
    # NOTE: EXIF positions are WGS-84 while WeChat's are GCJ-02 (offset by a few hundred metres in
    # mainland China); `datum` marks the difference and no conversion is applied.
    location = {
        "latitude": latitude,
        "longitude": longitude,
        "label": "",
        "source": "photo_exif",
        "datum": "WGS-84",
        "reported_at": job.create_time,
    }
    if records.set_location_hint(job.ticket_id, location):
        logger.info(
            "ticket location set from photo EXIF", extra={"ticket_id": job.ticket_id, "msg_id": job.msg_id}
        )


def store_voice(job: MediaJob, workdir: Path) -> dict[str, Any]:
    """Store the voice note (the 16 kHz copy when WeChat sent one) and an MP3 that browsers play."""
    original_path = workdir / "original"
    # The 16 kHz copy is the better recording, so it becomes the stored original when WeChat sent one.
    media_id, source = (job.media_id_16k, "MediaId16K") if job.media_id_16k else (job.media_id, "MediaId")
    try:
        original = download_to_s3(job, media_id, "voice", "", original_path)
    except WeChatApiError as err:
        if source != "MediaId16K" or err.errcode != INVALID_MEDIA_ID_ERRCODE:
            raise
        logger.info("16 kHz voice copy is gone, storing the 8 kHz original", extra={"msg_id": job.msg_id})
        original, source = download_to_s3(job, job.media_id, "voice", "", original_path), "MediaId"
    media: dict[str, Any] = {**original.as_item(), "variants": {}, "staff_s3_key": original.s3_key}
    media["source_media"] = source
    if job.recognition:
        media["recognition"] = job.recognition
    mp3_path = workdir / "voice.mp3"
    try:
        transcode_to_mp3(original_path, mp3_path)
    except TranscodeError as err:
        logger.warning(
            "voice transcoding failed, keeping the original", extra={"msg_id": job.msg_id, "error": str(err)}
        )
        media["transcode_error"] = str(err)
        return media
    mp3 = upload_local(job, mp3_path, "mp3", MP3_CONTENT_TYPE)
    media["variants"]["mp3"] = mp3.as_item()
    media["staff_s3_key"] = mp3.s3_key
    return media


def store_video(job: MediaJob, workdir: Path) -> dict[str, Any]:
    """Store the video (followed through `video_url` when WeChat sends a link) and its thumbnail."""
    original = download_to_s3(job, job.media_id, job.msg_type, "", None)
    media: dict[str, Any] = {**original.as_item(), "variants": {}, "staff_s3_key": original.s3_key}
    if job.thumb_media_id:
        try:
            thumb = download_to_s3(job, job.thumb_media_id, "thumb", "thumb", None)
        except (WeChatApiError, MediaRejectedError) as err:
            # A thumbnail is a convenience, not evidence: its loss does not fail the video.
            if isinstance(err, WeChatApiError) and err.retryable:
                raise
            logger.warning("video thumbnail not stored", extra={"msg_id": job.msg_id, "error": str(err)})
            media["thumb_error"] = str(err)
        else:
            media["variants"]["thumb"] = thumb.as_item()
    return media


STORE_BY_TYPE = {"image": store_image, "thumb": store_image, "voice": store_voice}


# -- outcomes ---------------------------------------------------------------------------------------


def finish(job: MediaJob, media: dict[str, Any], change: str) -> None:
    """Record the final media map with a history entry, then publish the TicketChanged event."""
    media = {**media, "msg_id": job.msg_id, "finished_at": clock.iso_utc(clock.now())}
    if not records.finish(job.ticket_id, job.message_sk, media, entry_type=change):
        logger.info("media already finished by another delivery", extra={"msg_id": job.msg_id})
        return
    event = TicketEvent(
        ticket_id=job.ticket_id,
        change=change,
        status=records.ticket_status(job.ticket_id),
        actor="system",
        at=clock.now(),
        detail={key: media[key] for key in ("msg_id", "status", "reason", "s3_key") if key in media},
    )
    publisher.publish([event], [])
    metrics.add_metric(name=f"Media{media['status'].capitalize()}", unit=MetricUnit.Count, value=1)


def record_lost(job: MediaJob, reason: str, errcode: int | None = None) -> None:
    logger.warning("media lost", extra={"ticket_id": job.ticket_id, "msg_id": job.msg_id, "reason": reason})
    finish(job, {"status": "lost", "reason": reason, "errcode": errcode}, "media_lost")


def record_rejected(job: MediaJob, err: MediaRejectedError) -> None:
    logger.error(
        "media rejected",
        extra={"ticket_id": job.ticket_id, "msg_id": job.msg_id, "reason": err.reason, "detail": err.detail},
    )
    finish(job, {"status": "rejected", "reason": err.reason, "detail": err.detail}, "media_rejected")


def delay_retry(record: SQSRecord, reason: str) -> None:
    """Stretch the record's visibility timeout so that retries back off exponentially."""
    attempt = max(1, int(record.attributes.approximate_receive_count or 1))
    delay = min(RETRY_BASE_SECONDS * RETRY_FACTOR ** (attempt - 1), MAX_VISIBILITY_SECONDS)
    logger.warning(
        "media download failed, retrying later", extra={"attempt": attempt, "delay": delay, "reason": reason}
    )
    if not settings.media_queue_url:
        return
    try:
        sqs.change_message_visibility(
            QueueUrl=settings.media_queue_url, ReceiptHandle=record.receipt_handle, VisibilityTimeout=delay
        )
    except (ClientError, BotoCoreError) as err:
        logger.warning(
            "visibility change failed; the queue's timeout applies", extra={"error": type(err).__name__}
        )


# -- record handler ---------------------------------------------------------------------------------


def parse_job(record: SQSRecord) -> MediaJob:
    try:
        return MediaJob.model_validate_json(record.body)
    except ValidationError as err:
        fields = sorted({".".join(str(part) for part in error["loc"]) for error in err.errors()})
        logger.error("malformed media job", extra={"message_id": record.message_id, "invalid_fields": fields})
        raise MediaStoreError(f"SQS message {record.message_id} is not a valid MediaJob ({fields})") from err


def store(job: MediaJob) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="media-") as workdir:
        return STORE_BY_TYPE.get(job.msg_type, store_video)(job, Path(workdir))


def record_handler(record: SQSRecord) -> None:
    logger.remove_keys(["ticket_id", "msg_id"])
    job = parse_job(record)
    logger.append_keys(ticket_id=job.ticket_id, msg_id=job.msg_id)
    status = records.media_status(job.ticket_id, job.message_sk)
    if status in FINAL_STATUSES:
        logger.info("media already handled", extra={"status": status})
        return
    if clock.now() - job.create_time > MEDIA_LIFETIME_SECONDS:
        record_lost(job, "expired")
        return
    try:
        media = store(job)
    except MediaRejectedError as err:
        record_rejected(job, err)
        return
    except WeChatTransportError as err:
        delay_retry(record, str(err))
        raise
    except WeChatApiError as err:
        if err.errcode == INVALID_MEDIA_ID_ERRCODE:
            record_lost(job, "invalid_media_id", err.errcode)
            return
        if err.retryable:
            delay_retry(record, f"errcode {err.errcode}")
            raise
        logger.error(
            "WeChat refused the media download", extra={"errcode": err.errcode, "errmsg": err.errmsg}
        )
        raise MediaStoreError(
            f"cgi-bin/media/get returned errcode {err.errcode}; see the log for the hint"
        ) from err
    except WeChatProtocolError as err:
        logger.error("unusable answer from WeChat", extra={"error": str(err)})
        raise MediaStoreError(str(err)) from err
    finish(job, {**media, "status": "stored"}, "media_stored")


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    # Each failed record is retried later or, after the queue's 5th receive, dead-lettered.
    failed = len(response.get("batchItemFailures", []))
    if failed:
        metrics.add_metric(name="MediaFailed", unit=MetricUnit.Count, value=failed)
    return response
