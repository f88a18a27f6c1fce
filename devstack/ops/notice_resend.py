"""Publish a failed citizen notice again (`python -m devstack.ops resend-notice --notice-id ...`).

A notice's text and OpenID are kept only in its event, so a notice that reply-push gave up on is
resent from its copy in the outbound dead-letter queue. Its ledger item `NOTICE#{notice_id}` /
`STATE` (`intake.notice_delivery`) records whether it may be resent:

- `sent` or `undeliverable`: final, never resent (the citizen has it, or has unsubscribed).
- `sending`: some attempt failed. reply-push continues after the parts WeChat already confirmed.
- no ledger item: reply-push never started it. The item expires 30 days after the first attempt.

The notice is published on the ticket bus as `CitizenNoticeRequested` with the same `notice_id`, and
its copies are deleted from the dead-letter queue only after the publish succeeded.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from devstack.ops.stack_outputs import StackTarget

logger = logging.getLogger(__name__)

FINAL_STATES = frozenset({"sent", "undeliverable"})
# Seconds the messages read while searching stay hidden; the ones that do not match are released at once.
SEARCH_VISIBILITY_SECONDS = 30


class NoticeNotResendableError(Exception):
    """The notice was delivered already, or its content is no longer anywhere to resend it from."""


@dataclass
class ResendResult:
    notice_id: str
    ticket_id: str | None
    ledger_state: str | None
    dead_letter_copies: int


@dataclass
class _Found:
    notice: Any
    receipt_handles: list[str]


def read_ledger(table: Any, notice_id: str) -> dict[str, Any] | None:
    from intake.keys import notice_pk
    from intake.notice_delivery import NOTICE_SK

    item: dict[str, Any] | None = table.get_item(
        Key={"PK": notice_pk(notice_id), "SK": NOTICE_SK}, ConsistentRead=True
    ).get("Item")
    return item


def _release(sqs: Any, queue_url: str, receipt_handles: list[str]) -> None:
    for receipt_handle in receipt_handles:
        sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=0)


def find_in_dead_letter_queue(
    sqs: Any, queue_url: str, notice_id: str, wait_seconds: int = 1
) -> _Found | None:
    """Search the outbound dead-letter queue for the notice's events.

    Every message read stays hidden until the search ends, so each is read once; then the others are
    made visible again. The matching copies stay hidden for SEARCH_VISIBILITY_SECONDS.
    """
    from intake.records import CitizenNotice

    found: _Found | None = None
    others: list[str] = []
    try:
        while True:
            messages = sqs.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=SEARCH_VISIBILITY_SECONDS,
                WaitTimeSeconds=wait_seconds,
            ).get("Messages", [])
            if not messages:
                break
            for message in messages:
                try:
                    detail = json.loads(message["Body"]).get("detail", {})
                except (json.JSONDecodeError, AttributeError):
                    detail = {}
                if not isinstance(detail, dict) or detail.get("notice_id") != notice_id:
                    others.append(message["ReceiptHandle"])
                    continue
                try:
                    notice = CitizenNotice.model_validate(detail)
                except ValidationError as err:
                    others.append(message["ReceiptHandle"])
                    raise NoticeNotResendableError(
                        f"the dead-lettered event of notice {notice_id} is not a valid CitizenNotice "
                        f"({err.error_count()} errors); it cannot be resent"
                    ) from None
                found = found or _Found(notice, [])
                found.receipt_handles.append(message["ReceiptHandle"])
    finally:
        _release(sqs, queue_url, others)
    return found


def resend_notice(target: StackTarget, notice_id: str, wait_seconds: int = 1) -> ResendResult:
    """Publish the notice `notice_id` again; raises NoticeNotResendableError when it must not or cannot be."""
    from intake.event_bus import EventPublisher

    table = target.resource("dynamodb").Table(target.output("TicketsTableName"))
    ledger = read_ledger(table, notice_id)
    state = str(ledger["state"]) if ledger else None
    if state in FINAL_STATES:
        raise NoticeNotResendableError(f"notice {notice_id} is already {state}; it is not sent again")

    sqs = target.client("sqs")
    dead_letter_url = target.output("OutboundDeadLetterQueueUrl")
    found = find_in_dead_letter_queue(sqs, dead_letter_url, notice_id, wait_seconds)
    if found is None:
        origin = "its ledger is in state sending" if ledger else "it has no ledger item"
        raise NoticeNotResendableError(
            f"notice {notice_id} is not in the outbound dead-letter queue and {origin}; its text is stored "
            "nowhere else. If it is on the outbound queue, reply-push is still retrying it"
        )

    try:
        EventPublisher(target.client("events"), target.output("TicketEventBusName")).publish(
            [], [found.notice]
        )
    except Exception:
        _release(sqs, dead_letter_url, found.receipt_handles)
        raise
    for receipt_handle in found.receipt_handles:
        sqs.delete_message(QueueUrl=dead_letter_url, ReceiptHandle=receipt_handle)
    result = ResendResult(
        notice_id=notice_id,
        ticket_id=found.notice.ticket_id,
        ledger_state=state,
        dead_letter_copies=len(found.receipt_handles),
    )
    logger.info(
        "notice %s (ticket %s, ledger state %s) published again; %d dead-letter copies deleted",
        notice_id,
        result.ticket_id or "none",
        state or "none",
        result.dead_letter_copies,
    )
    return result
