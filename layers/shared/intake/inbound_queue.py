"""Sending one `InboundRecord` to the inbound FIFO queue.

`MessageGroupId` is the OpenID, so one citizen's pushes are processed in order, and
`MessageDeduplicationId` is `hashed_dedup_id(record.dedup_id)`, so WeChat's retries of one push
(same MsgId, or same CreateTime and Event) collapse into one message for five minutes.
The body is ASCII-only JSON: SQS refuses some Unicode code points, and escapes cost nothing here.
"""

from __future__ import annotations

import json
from typing import Any

from intake.messages import hashed_dedup_id
from intake.records import InboundRecord


class QueueSendError(RuntimeError):
    """SQS did not take the record; the webhook answers 500 so that WeChat delivers the push again."""


def record_body(record: InboundRecord) -> str:
    return json.dumps(record.model_dump(mode="json"), ensure_ascii=True, separators=(",", ":"))


def send_inbound_record(sqs_client: Any, queue_url: str, record: InboundRecord) -> str:
    """Queue `record` in the citizen's message group and return its deduplication id.

    The group id is the OpenID, which SQS FIFO needs to keep one citizen's order; the deduplication id
    is a hash, so the OpenID is not repeated there.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    if not queue_url:
        raise QueueSendError("INBOUND_QUEUE_URL is not set")
    dedup_hash = hashed_dedup_id(record.dedup_id)
    try:
        sqs_client.send_message(
            QueueUrl=queue_url,
            MessageBody=record_body(record),
            MessageGroupId=record.open_id,
            MessageDeduplicationId=dedup_hash,
        )
    except (BotoCoreError, ClientError) as err:
        code = err.response.get("Error", {}).get("Code", "") if isinstance(err, ClientError) else ""
        raise QueueSendError(f"SendMessage failed: {type(err).__name__} {code}".strip()) from err
    return dedup_hash
