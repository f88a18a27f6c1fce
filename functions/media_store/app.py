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

from typing import Any

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
from intake.media_collector import INVALID_MEDIA_ID_ERRCODE, MediaCollector
from intake.media_download import MediaRejectedError
from intake.media_storage import FINAL_STATUSES, MediaRecords
from intake.records import MediaJob, TicketEvent
from intake.settings import get_settings
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
# Retry backoff through the visibility timeout: 1, 4, 16, 64 minutes (settings.media_retry_base_seconds
# times 4 per attempt), then the redrive policy applies.
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


collector = MediaCollector(s3, settings.media_bucket, settings.media_kms_key_id, records, wechat)


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
    delay = min(settings.media_retry_base_seconds * RETRY_FACTOR ** (attempt - 1), MAX_VISIBILITY_SECONDS)
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
        media = collector.store(job)
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
            "WeChat rejected the media download", extra={"errcode": err.errcode, "errmsg": err.errmsg}
        )
        raise MediaStoreError(
            f"cgi-bin/media/get returned errcode {err.errcode}; see the log for the hint"
        ) from err
    except WeChatProtocolError as err:
        logger.error("invalid response from WeChat", extra={"error": str(err)})
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
