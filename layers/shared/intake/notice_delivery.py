"""Delivery of one CitizenNotice: sending by the allowed channel, WeChat errcodes and recording.

Each notice has a ledger item `PK=NOTICE#{notice_id}`, `SK=STATE` that makes delivery resumable
and a repeated delivery harmless:

- `state`: `sending` while parts remain, then `sent` or `undeliverable` (final, never sent again).
- `next_part`: index of the first customer-service part not yet confirmed by WeChat, so a retry
  continues after the parts already sent.
- `in_flight`: the part and channel of a send whose result is not recorded yet. It is set before each
  WeChat call and removed with the result. Finding it set means the previous attempt crashed or
  timed out between the send and the record. That part is sent again (template messages carry the
  notice's `client_msg_id`, so WeChat drops a repeat within 10 minutes), and the history entry of
  the repeat has `resent_after_unknown_result: true`.

Every send attempt writes a history entry on the notice's ticket (`notice_sent`, `notice_failed`,
`notice_undeliverable`) in the same DynamoDB transaction as the ledger change. Notices without a
ticket (welcome, self_service) are only logged.

Outcomes by WeChat errcode:
- 45015 / 45047 on a customer-service send: the window or its quota is used up; the profile is
  marked so and the rest of the notice goes by one template message.
- 43004 (not subscribed) / 40003 (invalid OpenID): recorded as undeliverable, no retry.
- 45009 (daily quota) / 45011 (minute quota): SendThrottledError; the instance pauses and the
  caller puts the notice back on the queue with a delay.
- -1 (busy), a token still rejected after the client's refresh, timeouts and HTTP 5xx:
  RetryLaterError; the caller lets SQS redeliver the notice with backoff.
- Any other errcode: recorded as failed and NoticeFailedError, which ends in the dead-letter queue
  after the queue's retries.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from intake import clock
from intake.access_token import AccessTokenUnavailableError
from intake.history import history_item
from intake.keys import notice_pk
from intake.notice_channel import (
    Channel,
    claim_cs_quota,
    close_cs_window,
    preferred_channel,
    read_profile,
    release_cs_quota,
)
from intake.notice_media import MediaTooLargeError, MediaUploader
from intake.notice_templates import NoticeTemplates, TemplateConfigError, build_template_message
from intake.records import CitizenNotice, NoticeMedia
from intake.send_rate import SendRateLimiter, SendThrottledError
from intake.text_split import split_text
from intake.wechat_api import (
    TOKEN_REJECTED_ERRCODES,
    WeChatApiClient,
    WeChatApiError,
    WeChatProtocolError,
    WeChatTransportError,
)

logger = Logger(child=True)

NOTICE_SK = "STATE"
# The ledger item is transient (table TTL attribute `expires_at`); 30 days outlasts every retry.
NOTICE_TTL_SECONDS = 30 * 24 * 3600

CUSTOM_SEND_PATH = "cgi-bin/message/custom/send"
TEMPLATE_SEND_PATH = "cgi-bin/message/template/send"

CS_WINDOW_CLOSED = 45015
CS_QUOTA_USED = 45047
NOT_SUBSCRIBED = 43004
INVALID_OPENID = 40003
DAILY_QUOTA = 45009
MINUTE_QUOTA = 45011
SYSTEM_BUSY = -1

UNDELIVERABLE_ERRCODES = frozenset({NOT_SUBSCRIBED, INVALID_OPENID})
# Seconds this instance stops sending after 45009; the daily quota resets at midnight (China
# Standard Time), so its notices are retried every 15 minutes (SQS's maximum message delay).
DAILY_QUOTA_PAUSE_SECONDS = 900.0
THROTTLE_ERRCODES = frozenset({DAILY_QUOTA, MINUTE_QUOTA})
RETRY_ERRCODES = frozenset({SYSTEM_BUSY}) | TOKEN_REJECTED_ERRCODES


class NoticeState(StrEnum):
    SENDING = "sending"
    SENT = "sent"
    UNDELIVERABLE = "undeliverable"


FINAL_STATES = frozenset({NoticeState.SENT, NoticeState.UNDELIVERABLE})


class RetryLaterError(Exception):
    """A transient failure (busy, timeout, HTTP 5xx, no token); redeliver the notice with backoff."""


class NoticeFailedError(Exception):
    """WeChat refused the notice for a reason a retry may not fix; it goes to the dead-letter queue."""

    def __init__(self, notice_id: str, errcode: int | None, reason: str) -> None:
        super().__init__(f"notice {notice_id} failed ({reason}, errcode {errcode}); see the ticket history")
        self.errcode = errcode
        self.reason = reason


@dataclass(frozen=True)
class Part:
    """One customer-service message of a notice: a text part or a media file."""

    index: int
    text: str | None = None
    media: NoticeMedia | None = None


def notice_parts(notice: CitizenNotice) -> list[Part]:
    """Return the customer-service messages of a notice in order: the text parts, then its media."""
    texts = split_text(notice.text)
    parts = [Part(index, text=text) for index, text in enumerate(texts)]
    parts += [Part(len(texts) + offset, media=media) for offset, media in enumerate(notice.media)]
    return parts


@dataclass
class _Attempt:
    """State of one delivery run of a notice, for the history details and the log."""

    notice: CitizenNotice
    parts_sent: int
    resent_after_unknown_result: bool = False

    def detail(self, channel: Channel, errcode: int | None, **extra: Any) -> dict[str, Any]:
        detail: dict[str, Any] = {
            "notice_id": self.notice.notice_id,
            "kind": str(self.notice.kind),
            "channel": str(channel),
            "errcode": errcode,
            **extra,
        }
        if self.resent_after_unknown_result:
            detail["resent_after_unknown_result"] = True
        return detail


class NoticeDelivery:
    """Sends notices through one WeChat client and records the results in the tickets table."""

    def __init__(
        self,
        table: Any,
        wechat: WeChatApiClient,
        uploader: MediaUploader,
        limiter: SendRateLimiter,
        templates: NoticeTemplates,
        minute_quota_pause_seconds: float = 60.0,
    ) -> None:
        self._table = table
        self._minute_quota_pause = minute_quota_pause_seconds
        self._wechat = wechat
        self._uploader = uploader
        self._limiter = limiter
        self._templates = templates

    # -- ledger -------------------------------------------------------------------------------------

    def _ledger_key(self, notice_id: str) -> dict[str, str]:
        return {"PK": notice_pk(notice_id), "SK": NOTICE_SK}

    def _begin(self, notice: CitizenNotice) -> dict[str, Any]:
        """Create the ledger item in state `sending`, or return the one an earlier attempt created."""
        now = clock.now()
        item: dict[str, Any] = {
            **self._ledger_key(notice.notice_id),
            "item_type": "notice",
            "notice_id": notice.notice_id,
            "kind": str(notice.kind),
            "state": str(NoticeState.SENDING),
            "next_part": 0,
            "started_at": Decimal(str(now)),
            "expires_at": int(now) + NOTICE_TTL_SECONDS,
        }
        if notice.ticket_id:
            item["ticket_id"] = notice.ticket_id
        try:
            self._table.put_item(Item=item, ConditionExpression="attribute_not_exists(PK)")
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            existing: dict[str, Any] = self._table.get_item(
                Key=self._ledger_key(notice.notice_id), ConsistentRead=True
            )["Item"]
            return existing
        return item

    def _mark_in_flight(self, notice: CitizenNotice, part: int | None, channel: Channel) -> None:
        self._table.update_item(
            Key=self._ledger_key(notice.notice_id),
            UpdateExpression="SET in_flight = :in_flight",
            ConditionExpression="#state = :sending",
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues={
                ":in_flight": {"part": part, "channel": str(channel), "at": Decimal(str(clock.now()))},
                ":sending": str(NoticeState.SENDING),
            },
        )

    def _ledger_update(
        self, notice_id: str, set_values: dict[str, Any], keep_in_flight: bool
    ) -> dict[str, Any]:
        """Build the transaction item that changes a ledger still in state `sending`."""
        names = {"#state": "state"}
        values: dict[str, Any] = {":sending": str(NoticeState.SENDING), ":now": Decimal(str(clock.now()))}
        assignments = ["updated_at = :now"]
        for position, (name, value) in enumerate(set_values.items()):
            names[f"#f{position}"] = name
            values[f":v{position}"] = value
            assignments.append(f"#f{position} = :v{position}")
        expression = "SET " + ", ".join(assignments)
        if not keep_in_flight:
            expression += " REMOVE in_flight"
        return {
            "Update": {
                "TableName": self._table.name,
                "Key": self._ledger_key(notice_id),
                "UpdateExpression": expression,
                "ConditionExpression": "#state = :sending",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
        }

    def _record(
        self,
        attempt: _Attempt,
        entry_type: str,
        detail: dict[str, Any],
        set_values: dict[str, Any],
        keep_in_flight: bool = False,
    ) -> None:
        """Apply one ledger change and write its history entry in one transaction, then log it."""
        notice = attempt.notice
        transaction = [self._ledger_update(notice.notice_id, set_values, keep_in_flight)]
        if notice.ticket_id:
            entry = history_item(
                ticket_id=notice.ticket_id, entry_type=entry_type, actor="system", detail=detail
            )
            put = {
                "TableName": self._table.name,
                "Item": entry,
                "ConditionExpression": "attribute_not_exists(PK)",
            }
            transaction.append({"Put": put})

        self._table.meta.client.transact_write_items(TransactItems=transaction)
        log = logger.warning if entry_type == "notice_failed" else logger.info
        log(
            entry_type.replace("_", " "),
            extra={
                "ticket_id": notice.ticket_id,
                **{key: value for key, value in detail.items() if key != "reason"},
            },
        )

    # -- outcomes -----------------------------------------------------------------------------------

    def _finish(
        self, attempt: _Attempt, state: NoticeState, entry_type: str, detail: dict[str, Any]
    ) -> dict[str, Any]:
        self._record(attempt, entry_type, detail, {"state": str(state), "channel": detail["channel"]})
        return {"notice_id": attempt.notice.notice_id, "state": str(state), "channel": detail["channel"]}

    def _undeliverable(
        self, attempt: _Attempt, channel: Channel, errcode: int | None, reason: str
    ) -> dict[str, Any]:
        detail = attempt.detail(channel, errcode, reason=reason)
        return self._finish(attempt, NoticeState.UNDELIVERABLE, "notice_undeliverable", detail)

    def _failed_attempt(
        self, attempt: _Attempt, channel: Channel, errcode: int | None, reason: str, in_doubt: bool = False
    ) -> None:
        """Record an attempt that did not reach the citizen; the notice stays in state `sending`."""
        detail = attempt.detail(channel, errcode, reason=reason)
        self._record(attempt, "notice_failed", detail, {"last_errcode": errcode}, keep_in_flight=in_doubt)

    def _handle_send_error(
        self, attempt: _Attempt, channel: Channel, err: Exception
    ) -> dict[str, Any] | None:
        """Record a failed send and raise what the caller must do; return the final outcome if there is one.

        45015 / 45047 are not handled here: only customer-service sends get them, and they fall back.
        """
        notice = attempt.notice
        if isinstance(err, WeChatApiError):
            errcode = err.errcode
            if errcode in UNDELIVERABLE_ERRCODES:
                return self._undeliverable(attempt, channel, errcode, "not_subscribed_or_unknown_openid")
            self._failed_attempt(attempt, channel, errcode, "wechat_error")
            if errcode in THROTTLE_ERRCODES:
                pause = DAILY_QUOTA_PAUSE_SECONDS if errcode == DAILY_QUOTA else self._minute_quota_pause
                self._limiter.pause(pause)
                raise SendThrottledError(pause, f"WeChat errcode {errcode}") from err
            if errcode in RETRY_ERRCODES:
                raise RetryLaterError(
                    f"WeChat errcode {errcode} for notice {notice.notice_id}; retry later"
                ) from err
            raise NoticeFailedError(notice.notice_id, errcode, "wechat_error") from err
        if isinstance(err, WeChatTransportError):
            # WeChat may have sent the message; `in_flight` stays set so the repeat is recorded as such.
            self._failed_attempt(attempt, channel, None, "timeout_or_server_error", in_doubt=True)
            raise RetryLaterError(f"notice {notice.notice_id}: {err}") from err
        if isinstance(err, AccessTokenUnavailableError):
            self._failed_attempt(attempt, channel, None, "access_token_unavailable")
            raise RetryLaterError(f"notice {notice.notice_id}: {err}") from err
        reason = "media_too_large" if isinstance(err, MediaTooLargeError) else "invalid_answer_or_request"
        self._failed_attempt(attempt, channel, None, reason)
        raise NoticeFailedError(notice.notice_id, None, reason) from err

    # -- sending ------------------------------------------------------------------------------------

    def _send_part(self, notice: CitizenNotice, part: Part) -> None:
        if part.text is not None:
            payload: dict[str, Any] = {
                "touser": notice.open_id,
                "msgtype": "text",
                "text": {"content": part.text},
            }
        else:
            assert part.media is not None
            self._limiter.acquire()
            # NOTE: a timeout here keeps the part's quota claimed, as for a send whose result is
            # unknown, although an upload never reaches the citizen.
            media_id = self._uploader.upload(part.media)
            kind = part.media.media_type
            payload = {"touser": notice.open_id, "msgtype": kind, kind: {"media_id": media_id}}
        self._limiter.acquire()
        self._mark_in_flight(notice, part.index, Channel.CUSTOMER_SERVICE)
        self._wechat.call_json("POST", CUSTOM_SEND_PATH, payload=payload)

    def _send_customer_service(
        self, attempt: _Attempt, parts: list[Part], start: int
    ) -> dict[str, Any] | None:
        """Send parts from `start` on while quota lasts; return the outcome, or None to fall back."""
        notice = attempt.notice
        channel = Channel.CUSTOMER_SERVICE
        for part in parts[start:]:
            window_start = claim_cs_quota(self._table, notice.open_id, clock.now())
            if window_start is None:
                return None
            try:
                self._send_part(notice, part)
            except SendThrottledError:
                release_cs_quota(self._table, notice.open_id, window_start)
                raise
            except (WeChatApiError, WeChatTransportError, WeChatProtocolError) as err:
                errcode = err.errcode if isinstance(err, WeChatApiError) else None
                if not isinstance(err, WeChatTransportError):
                    release_cs_quota(self._table, notice.open_id, window_start)
                if errcode in {CS_WINDOW_CLOSED, CS_QUOTA_USED}:
                    close_cs_window(self._table, notice.open_id, window_start, errcode)
                    self._failed_attempt(attempt, channel, errcode, "customer_service_window_used_up")
                    return None
                return self._handle_send_error(attempt, channel, err)
            except (AccessTokenUnavailableError, MediaTooLargeError) as err:
                release_cs_quota(self._table, notice.open_id, window_start)
                return self._handle_send_error(attempt, channel, err)
            last = part.index == len(parts) - 1
            detail = attempt.detail(channel, 0, part=part.index + 1, parts=len(parts))
            updates: dict[str, Any] = {"next_part": part.index + 1}
            if last:
                updates |= {"state": str(NoticeState.SENT), "channel": str(channel)}
            self._record(attempt, "notice_sent", detail, updates)
            attempt.parts_sent = part.index + 1
            attempt.resent_after_unknown_result = False
        return {"notice_id": notice.notice_id, "state": str(NoticeState.SENT), "channel": str(channel)}

    def _send_template(self, attempt: _Attempt) -> dict[str, Any]:
        notice = attempt.notice
        channel = Channel.TEMPLATE
        template_id = self._templates.for_kind(notice.kind).template_id
        if template_id is None:
            return self._undeliverable(attempt, channel, None, "no_template_for_kind_outside_window")
        try:
            body = build_template_message(self._templates, notice, template_id)
        except TemplateConfigError as err:
            self._failed_attempt(attempt, channel, None, "template_configuration")
            raise NoticeFailedError(notice.notice_id, None, "template_configuration") from err
        try:
            self._limiter.acquire()
            self._mark_in_flight(notice, None, channel)
            self._wechat.call_json("POST", TEMPLATE_SEND_PATH, payload=body)
        except (
            WeChatApiError,
            WeChatTransportError,
            WeChatProtocolError,
            AccessTokenUnavailableError,
        ) as err:
            outcome = self._handle_send_error(attempt, channel, err)
            assert outcome is not None
            return outcome
        detail = attempt.detail(channel, 0, customer_service_parts_sent=attempt.parts_sent)
        return self._finish(attempt, NoticeState.SENT, "notice_sent", detail)

    def deliver(self, notice: CitizenNotice) -> dict[str, Any]:
        """Deliver `notice` once; returns its final state or raises what the caller must do.

        Raises RetryLaterError, SendThrottledError or NoticeFailedError (see the module docstring).
        A notice whose ledger is already final is not sent again.
        """
        ledger = self._begin(notice)
        if ledger["state"] in FINAL_STATES:
            logger.info(
                "notice already delivered", extra={"notice_id": notice.notice_id, "state": ledger["state"]}
            )
            return {"notice_id": notice.notice_id, "state": ledger["state"], "channel": ledger.get("channel")}
        parts = notice_parts(notice)
        start = int(ledger.get("next_part", 0))
        attempt = _Attempt(notice, parts_sent=start)
        if "in_flight" in ledger:
            attempt.resent_after_unknown_result = True
            logger.warning(
                "previous attempt ended without a recorded result; sending that part again",
                extra={"notice_id": notice.notice_id, "in_flight": ledger["in_flight"]},
            )

        profile = read_profile(self._table, notice.open_id)
        if preferred_channel(profile, clock.now()) is Channel.NONE:
            reason = "no_profile" if profile is None else "not_subscribed"
            return self._undeliverable(attempt, Channel.NONE, None, reason)

        outcome = self._send_customer_service(attempt, parts, start)
        if outcome is not None:
            return outcome
        return self._send_template(attempt)
