"""reply-push: sends CitizenNotice events from the outbound queue to citizens over WeChat.

Each SQS body is the EventBridge envelope of a `CitizenNoticeRequested` event. A redelivered record
is not sent again (Powertools idempotency keyed by `notice_id`, plus the notice's ledger item in
intake.notice_delivery). The one exception is a part whose earlier send has no recorded result
because the function crashed or WeChat timed out: that part is sent again. Failures are handled so:

- Malformed body, envelope or notice: batch item failure and an error log line; after the queue's
  5 receives the record is in the dead-letter queue. Nothing is sent or stored.
- Throttled (local send rate, WeChat 45009 / 45011): a copy of the record is put back on the queue
  with a delay and the original is deleted, so throttling never counts towards the dead-letter queue.
- Transient (busy, timeout, HTTP 5xx): the record's visibility timeout is set to an exponential
  backoff and it is reported as failed, so SQS redelivers it then.
- Permanent (other errcodes): reported as failed; the queue's redrive moves it to the dead-letter queue.
"""

from __future__ import annotations

import math
import random
from typing import Any, Literal

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Field, ValidationError

from intake.access_token import AccessTokenProvider
from intake.notice_delivery import NoticeDelivery, RetryLaterError
from intake.notice_media import MediaUploader
from intake.notice_templates import load_templates
from intake.records import DETAIL_TYPE_NOTICE, CitizenNotice
from intake.send_rate import SendRateLimiter, SendThrottledError
from intake.settings import get_settings
from intake.text_split import UnencodableTextError, utf8_size
from intake.wechat_api import WeChatApiClient

# SQS accepts message delays and visibility timeouts up to 900 s and 12 h; backoff stays under 15 min.
MAX_DELAY_SECONDS = 900
# Idempotency records outlive the queue's redeliveries; the ledger item guards longer.
IDEMPOTENCY_SECONDS = 24 * 3600
OUTCOME_METRICS = {"sent": "NoticeSent", "undeliverable": "NoticeUndeliverable"}

settings = get_settings()
logger = Logger()
metrics = Metrics()
# With ReportBatchItemFailures, a batch whose records all failed is reported like any other
# instead of failing the invocation, so the visibility delays set by back_off still apply.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
sqs = boto3.client("sqs")
s3 = boto3.client("s3")
table = boto3.resource("dynamodb").Table(settings.table_name)
persistence_store = DynamoDBPersistenceLayer(table_name=settings.idempotency_table_name)
idempotency_config = IdempotencyConfig(
    event_key_jmespath="notice_id", expires_after_seconds=IDEMPOTENCY_SECONDS
)
wechat = WeChatApiClient(settings.wechat_api_base, AccessTokenProvider.from_environment())
delivery = NoticeDelivery(
    table=table,
    wechat=wechat,
    uploader=MediaUploader(wechat, s3, settings.media_bucket),
    limiter=SendRateLimiter(settings.wechat_send_rate_per_second),
    templates=load_templates(),
    minute_quota_pause_seconds=settings.wechat_minute_quota_pause_seconds,
)


class NoticeEnvelope(EventBridgeModel):
    """The EventBridge event that the CitizenNoticeRule puts on the outbound queue."""

    detail_type: Literal["CitizenNoticeRequested"] = Field(alias="detail-type")
    detail: CitizenNotice


class InvalidNoticeError(ValueError):
    """The SQS body is not a valid CitizenNoticeRequested event; the producer must be fixed."""


def parse_notice(record: SQSRecord) -> CitizenNotice:
    """Return the notice in the record's body; raises InvalidNoticeError and logs why."""
    try:
        notice = NoticeEnvelope.model_validate_json(record.body).detail
    except ValidationError as err:
        # include_input=False: the input can contain the OpenID and the message text.
        problems = [
            {"loc": ".".join(str(part) for part in error["loc"]), "type": error["type"]}
            for error in err.errors(include_input=False, include_url=False)
        ]
        logger.error(
            "invalid notice record",
            extra={"message_id": record.message_id, "expected": DETAIL_TYPE_NOTICE, "problems": problems},
        )
        raise InvalidNoticeError(
            f"SQS message {record.message_id} is not a valid {DETAIL_TYPE_NOTICE} event"
        ) from err
    try:
        utf8_size(notice.text)
    except UnencodableTextError as err:
        logger.error(
            "invalid notice text", extra={"message_id": record.message_id, "notice_id": notice.notice_id}
        )
        raise InvalidNoticeError(
            f"notice {notice.notice_id} has text that cannot be encoded as UTF-8"
        ) from err
    return notice


@idempotent_function(
    data_keyword_argument="notice", config=idempotency_config, persistence_store=persistence_store
)
def deliver_once(notice: CitizenNotice) -> dict[str, Any]:
    return delivery.deliver(notice)


def receive_count(record: SQSRecord) -> int:
    return int(record.attributes.approximate_receive_count or 1)


def put_back_later(record: SQSRecord, retry_after: float) -> None:
    """Queue a delayed copy of a throttled record; the original is then deleted as processed."""
    # Up to 10 % jitter spreads a storm's copies over time instead of returning them all at once.
    delay = min(MAX_DELAY_SECONDS, math.ceil(retry_after * random.uniform(1.0, 1.1)))  # noqa: S311
    sqs.send_message(QueueUrl=settings.outbound_queue_url, MessageBody=record.body, DelaySeconds=delay)
    metrics.add_metric(name="NoticeThrottled", unit=MetricUnit.Count, value=1)
    logger.info(
        "notice throttled, put back on the queue", extra={"message_id": record.message_id, "delay": delay}
    )


def back_off(record: SQSRecord) -> None:
    """Make SQS redeliver a failed record after an exponential, jittered delay."""
    ceiling = min(MAX_DELAY_SECONDS, settings.notice_retry_base_seconds * 2 ** (receive_count(record) - 1))
    delay = int(ceiling / 2 + random.uniform(0, ceiling / 2))  # noqa: S311 - jitter
    sqs.change_message_visibility(
        QueueUrl=settings.outbound_queue_url, ReceiptHandle=record.receipt_handle, VisibilityTimeout=delay
    )
    metrics.add_metric(name="NoticeRetry", unit=MetricUnit.Count, value=1)
    logger.info(
        "notice send failed transiently, retrying later",
        extra={"message_id": record.message_id, "receive_count": receive_count(record), "delay": delay},
    )


def record_handler(record: SQSRecord) -> None:
    notice = parse_notice(record)
    try:
        outcome = deliver_once(notice=notice)
    except SendThrottledError as err:
        put_back_later(record, err.retry_after)
        return
    except RetryLaterError:
        back_off(record)
        raise
    metrics.add_metric(
        name=OUTCOME_METRICS.get(outcome["state"], "NoticeOther"), unit=MetricUnit.Count, value=1
    )


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    idempotency_config.register_lambda_context(context)
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    # Each failed record is retried later or, after the queue's 5th receive, dead-lettered.
    failed = len(response.get("batchItemFailures", []))
    if failed:
        metrics.add_metric(name="NoticeFailed", unit=MetricUnit.Count, value=failed)
    return response
