"""message-ingest: POST /wechat. Verifies, decrypts and parses each WeChat push and queues it.

WeChat waits at most 5 s and retries three times on any answer other than `success`, so this
function only verifies, parses and queues (the rules and statuses are in `intake.webhook`):
- a push that passes every check is sent as ONE `InboundRecord` to the inbound FIFO queue
  (group = OpenID, deduplication id = hash of the push's dedup id), then answered `success`;
- a MsgType or Event this backend does not know (WeChat adds them without notice; the V3 test
  vector's `debug_demo` is one) is logged, queued like any other push as an `UnknownMessage` record,
  and answered `success`. ticket-write records it and does nothing else, so nothing a citizen sends
  is silently dropped here, and the queue keeps the one ordered stream per citizen;
- an authentic push whose fields do not validate is answered `success` without being queued
  (a retry would fail the same way) and logged as an error with the names of the bad fields;
- bad input is answered 4xx with an empty body, never 5xx;
- HTTP 500 with an empty body only when the record could not be queued (or the credentials could
  not be read), so that WeChat's retry delivers the push again.

Cold start, measured on the development machine (2 cores, Python 3.13, median of 9 fresh
interpreters): importing this module takes about 1.27 s, of which boto3 is about 1.1 s; the first
push then imports `cryptography`'s cipher, xmltodict and the record models for about 20 ms more,
because boto3 has already loaded the standard-library modules they share. The handler reads the
REST proxy event itself instead of using Powertools' APIGatewayRestResolver: importing
`aws_lambda_powertools.event_handler` after this module adds about 145 ms for a single route that
needs none of its features, so it stays off this path.
"""

from __future__ import annotations

from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from intake.credentials import get_wechat_credentials
from intake.inbound_queue import QueueSendError, send_inbound_record
from intake.settings import get_settings
from intake.webhook import SUCCESS, HttpRequest, HttpResponse, Rejection, accept_push

logger = Logger()
metrics = Metrics()
sqs = boto3.client("sqs")

# Refusals that point at our own configuration (key, AppID, account) rather than at a stranger.
_CONFIGURATION_REASONS = frozenset({"decrypt_failed", "app_id_mismatch", "wrong_recipient"})


def _count(name: str) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)


def handle(event: dict[str, Any]) -> HttpResponse:
    _count("PushReceived")
    request = HttpRequest.from_api_gateway(event)
    try:
        outcome = accept_push(request, get_wechat_credentials(), get_settings())
    except Rejection as rejection:
        log = logger.error if rejection.reason in _CONFIGURATION_REASONS else logger.warning
        log(
            "push refused",
            extra={"reason": rejection.reason, "status": rejection.status, **rejection.context},
        )
        _count("PushRefused")
        return HttpResponse(rejection.status)

    if outcome.record is None:
        logger.error("push acknowledged but not queued", extra={"reason": outcome.reason, **outcome.context})
        _count("PushUnparseable")
        return HttpResponse(200, SUCCESS)

    try:
        send_inbound_record(sqs, get_settings().inbound_queue_url, outcome.record)
    except QueueSendError as err:
        logger.error(
            "push not queued", extra={"reason": "queue_send_failed", "error": str(err), **outcome.context}
        )
        _count("PushQueueFailed")
        return HttpResponse(500)

    if outcome.reason == "unknown_type":
        logger.info("unknown push type queued", extra={"reason": outcome.reason, **outcome.context})
        _count("PushUnknownType")
    else:
        logger.info("push queued", extra={"reason": outcome.reason, **outcome.context})
    _count("PushQueued")
    return HttpResponse(200, SUCCESS)


@metrics.log_metrics
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        response = handle(event)
    except Exception:
        # Credentials unreadable, a bug: answer 500 so that WeChat retries, and never show why.
        logger.exception("push failed")
        _count("PushFailed")
        response = HttpResponse(500)
    return response.to_api_gateway()
