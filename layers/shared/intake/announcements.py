"""Announcements (公告): staff write a text once and publish it to every follower by WeChat mass send.

A service account (服务号) may mass-send 4 times per calendar month, counted in China time. One
DynamoDB transaction claims the announcement (status `draft` or `failed` to `sending`) and takes a
slot of the monthly counter `PK=MASS_SEND_QUOTA#{YYYYMM}`, `SK=COUNTER`. So of two staff members
publishing at once only one sends, and a fifth send in a month is rejected before WeChat is called.
WeChat's response decides what happens to the reserved slot:

- sent (errcode 0, or 45065: WeChat already has a send with this `clientmsgid`, and its answer names
  that send's `msg_id`): the slot stays used and the announcement is `published`;
- refused with an errcode (for example 45028, no quota left at WeChat): nothing reached the
  followers, so the slot is given back (45028 instead marks the month as used up) and the
  announcement is `failed`, to publish again later;
- no answer (timeout, HTTP 5xx): WeChat may have sent it, so the slot stays used, the announcement
  is `failed` and records the slot's month in `held_slot_month`. Publishing again in that month
  reuses the held slot instead of taking a second one, and sends the same `clientmsgid` (the
  announcement id), which WeChat answers with 45065 instead of sending twice. A retry in a later
  month takes a slot of that month (the held one stays counted: the first attempt may have gone out);
- no access token (token-refresh has not stored one): nothing was sent, the slot is given back.

A retry that reuses a held slot and is refused keeps the slot and `held_slot_month`: the earlier
attempt without an answer may still have reached the followers.

`published` means WeChat accepted the send job, not that every follower received it: WeChat reports
the job's result later in a MASSSENDJOBFINISH event push.
NOTE: this backend does not record MASSSENDJOBFINISH yet, so the final result of a send (how many
followers got it) is only visible in the WeChat admin console.

A publish that died between the claim and the record (the function timed out or crashed) leaves the
announcement in `sending` with its slot taken. Once it has been `sending` for STALE_SENDING_SECONDS,
far longer than the staff API's timeout, publishing again takes it over without a second slot and
sends the same `clientmsgid`, so WeChat never sends it twice.

Every attempt appends a record (msg_id, errcode, errmsg, at, who) to the announcement's `sends`.
Items: `PK=ANNOUNCEMENT`, `SK=ANN#{announcement_id}`; the id starts with the creation time, so a
query on the partition lists the newest first.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from aws_lambda_powertools import Logger
from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field

from intake import clock
from intake.access_token import AccessTokenUnavailableError
from intake.wechat_api import WeChatApiError, WeChatProtocolError, WeChatTransportError

logger = Logger(child=True)

ANNOUNCEMENT_PK = "ANNOUNCEMENT"
QUOTA_SK = "COUNTER"
MASS_SEND_PATH = "cgi-bin/message/mass/sendall"
# WeChat's limit for service accounts: mass sends per calendar month.
MONTHLY_MASS_SEND_QUOTA = 4
# WeChat's errcodes: no mass-send quota left this month; a send with this clientmsgid already exists.
NO_QUOTA_ERRCODE = 45028
CLIENT_MSG_ID_EXISTS_ERRCODE = 45065
# A text mass send may carry at most 2048 bytes of UTF-8, title and link included.
MAX_TEXT_BYTES = 2048

# One http(s) URL with a host: no whitespace (which would let a second URL or text follow) and no
# control characters (C0, DEL, C1), which WeChat would show as they are.
LINK_PATTERN = r"^https?://[^\s/?#\x00-\x1f\x7f-\x9f][^\s\x00-\x1f\x7f-\x9f]*$"

AnnouncementStatus = Literal["draft", "sending", "published", "failed"]
PUBLISHABLE = ("draft", "failed")
# After this long in `sending` the publish that claimed it has certainly ended (the staff API's
# timeout is seconds), so a new publish may take the announcement over.
STALE_SENDING_SECONDS = 300


class NewAnnouncement(BaseModel):
    """The body of `POST /announcements`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    title: str = Field(min_length=1, max_length=64)
    text: str = Field(min_length=1, max_length=1000)
    link: str | None = Field(
        default=None,
        max_length=512,
        pattern=LINK_PATTERN,
        description="One http(s) URL, without spaces or control characters",
    )
    actor: str = Field(min_length=1, max_length=128, description="Staff member who writes it")


class SendRecord(BaseModel):
    """One publishing attempt and WeChat's response; errcode null means no response arrived."""

    msg_id: str | None
    errcode: int | None
    errmsg: str
    at: str
    actor: str
    caller: str


class Announcement(BaseModel):
    announcement_id: str
    title: str
    text: str
    link: str | None
    status: AnnouncementStatus = Field(
        description=(
            "`published`: WeChat accepted the mass-send job; its final result (how many followers got it) "
            "arrives later as a MASSSENDJOBFINISH event, which this backend does not record yet"
        )
    )
    created_at: str
    created_by: str
    updated_at: str | None = None
    published_at: str | None = None
    msg_id: str | None = None
    # YYYYMM of the monthly slot an attempt without an answer still holds; a retry that month reuses it.
    held_slot_month: str | None = Field(
        default=None,
        description="YYYYMM of the monthly slot an unanswered send still holds; a retry that month reuses it",
    )
    sends: list[SendRecord] = Field(default_factory=list)

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Announcement:
        return cls.model_validate({key: value for key, value in item.items() if key in cls.model_fields})


class AnnouncementNotFoundError(LookupError):
    def __init__(self, announcement_id: str) -> None:
        self.announcement_id = announcement_id
        super().__init__(f"announcement {announcement_id!r} does not exist")


class AnnouncementNotPublishableError(Exception):
    """The announcement is being sent or already published (HTTP 409)."""

    def __init__(self, announcement_id: str, status: str) -> None:
        self.announcement_id = announcement_id
        self.status = status
        super().__init__(f"announcement {announcement_id!r} is {status}; only draft or failed ones publish")


class MassSendQuotaUsedError(Exception):
    """This month's mass sends are used up (HTTP 409); the next month starts with a full quota."""

    def __init__(self, month: str, limit: int) -> None:
        self.month = month
        self.limit = limit
        super().__init__(f"the {limit} mass sends of month {month} are used; publish again next month")


class AnnouncementTooLongError(ValueError):
    """Title, text and link together exceed what one text mass send carries (HTTP 400)."""

    def __init__(self, size: int) -> None:
        self.size = size
        super().__init__(f"announcement is {size} bytes in UTF-8, a text mass send takes {MAX_TEXT_BYTES}")


def _stale_sending_claim(announcement: Announcement, at: float) -> float | None:
    """Return when a `sending` announcement was claimed, if that is STALE_SENDING_SECONDS ago or more."""
    if announcement.status != "sending" or announcement.updated_at is None:
        return None
    claimed_at = datetime.fromisoformat(announcement.updated_at).timestamp()
    return claimed_at if at - claimed_at >= STALE_SENDING_SECONDS else None


def announcement_sk(announcement_id: str) -> str:
    return f"ANN#{announcement_id}"


def quota_pk(month: str) -> str:
    return f"MASS_SEND_QUOTA#{month}"


def china_month(at: float) -> str:
    """Return the calendar month of Unix time `at` in China time as YYYYMM (WeChat's quota period)."""
    return clock.china_datetime(at).strftime("%Y%m")


def message_text(title: str, text: str, link: str | None) -> str:
    """Return the text that followers read: the title in 【】, the text, then the link."""
    parts = [f"【{title}】", text]
    if link:
        parts.append(link)
    return "\n".join(parts)


def mass_send_payload(announcement: Announcement) -> dict[str, Any]:
    """Return the body of `message/mass/sendall` for every follower, deduplicated by the announcement id."""
    return {
        "filter": {"is_to_all": True},
        "msgtype": "text",
        "text": {"content": message_text(announcement.title, announcement.text, announcement.link)},
        "send_ignore_reprint": 0,
        "clientmsgid": announcement.announcement_id,
    }


@dataclass(frozen=True)
class SendOutcome:
    """WeChat's answer; `uncertain` when it gave none, so the send may or may not have happened."""

    msg_id: str | None
    errcode: int | None
    errmsg: str
    uncertain: bool = False

    @property
    def sent(self) -> bool:
        return self.errcode in (0, CLIENT_MSG_ID_EXISTS_ERRCODE)


# Calls WeChat with a JSON body and returns its answer (intake.wechat_api.WeChatApiClient.call_json).
CallJson = Callable[..., dict[str, Any]]


def send_to_all(call_json: CallJson, announcement: Announcement) -> SendOutcome:
    """Mass-send the announcement and return the outcome; WeChat, transport and token errors become outcomes."""
    try:
        answer = call_json("POST", MASS_SEND_PATH, payload=mass_send_payload(announcement))
    except WeChatApiError as err:
        # 45065 names the msg_id of the earlier send with this clientmsgid.
        earlier = err.answer.get("msg_id") if err.errcode == CLIENT_MSG_ID_EXISTS_ERRCODE else None
        return SendOutcome(
            msg_id=str(earlier) if earlier is not None else None, errcode=err.errcode, errmsg=err.errmsg
        )
    except (WeChatTransportError, WeChatProtocolError) as err:
        logger.warning(
            "mass send failed: no valid response from WeChat, the send may have happened",
            extra={"announcement_id": announcement.announcement_id, "error": type(err).__name__},
        )
        return SendOutcome(msg_id=None, errcode=None, errmsg=type(err).__name__, uncertain=True)
    except AccessTokenUnavailableError:
        logger.warning(
            "mass send not attempted: no access token; check token-refresh",
            extra={"announcement_id": announcement.announcement_id},
        )
        return SendOutcome(msg_id=None, errcode=None, errmsg="access token unavailable")
    msg_id = answer.get("msg_id")
    return SendOutcome(msg_id=str(msg_id) if msg_id is not None else None, errcode=0, errmsg="ok")


class AnnouncementStore:
    """Announcements and the monthly mass-send counter in the tickets table."""

    def __init__(self, table: Any, monthly_quota: int = MONTHLY_MASS_SEND_QUOTA) -> None:
        self._table = table
        self._client = table.meta.client
        self._monthly_quota = monthly_quota

    def create(self, request: NewAnnouncement, at: float) -> Announcement:
        size = len(message_text(request.title, request.text, request.link).encode("utf-8"))
        if size > MAX_TEXT_BYTES:
            raise AnnouncementTooLongError(size)
        stamp = clock.china_datetime(at).strftime("%Y%m%d%H%M%S")
        announcement = Announcement(
            announcement_id=f"A{stamp}-{secrets.token_hex(3)}",
            title=request.title,
            text=request.text,
            link=request.link,
            status="draft",
            created_at=clock.iso_utc(at),
            created_by=request.actor,
        )
        item = {
            "PK": ANNOUNCEMENT_PK,
            "SK": announcement_sk(announcement.announcement_id),
            "item_type": "announcement",
            **announcement.model_dump(),
        }
        self._table.put_item(Item=item, ConditionExpression="attribute_not_exists(PK)")
        logger.info("announcement created", extra={"announcement_id": announcement.announcement_id})
        return announcement

    def get(self, announcement_id: str) -> Announcement:
        key = {"PK": ANNOUNCEMENT_PK, "SK": announcement_sk(announcement_id)}
        item = self._table.get_item(Key=key, ConsistentRead=True).get("Item")
        if item is None:
            raise AnnouncementNotFoundError(announcement_id)
        return Announcement.from_item(item)

    def newest(self, limit: int) -> list[Announcement]:
        response = self._table.query(
            KeyConditionExpression=Key("PK").eq(ANNOUNCEMENT_PK) & Key("SK").begins_with("ANN#"),
            ScanIndexForward=False,
            Limit=limit,
        )
        return [Announcement.from_item(item) for item in response.get("Items", [])]

    # -- publishing ---------------------------------------------------------------------------------

    def publish(
        self, announcement_id: str, call_json: CallJson, actor: str, caller: str, at: float
    ) -> Announcement:
        """Reserve this month's slot, send to every follower and record the outcome (rules above).

        Raises AnnouncementNotFoundError, AnnouncementNotPublishableError and MassSendQuotaUsedError,
        all before WeChat is called.
        """
        announcement = self.get(announcement_id)
        claimed_at = _stale_sending_claim(announcement, at)
        # Whether this attempt uses a slot that an earlier attempt, which may have gone out, took.
        reuses_slot = True
        if claimed_at is not None:
            # The slot taken by the publish that died is still held; this attempt uses it.
            month = china_month(claimed_at)
            self._take_over(announcement, at)
        elif announcement.status == "failed" and announcement.held_slot_month == china_month(at):
            month = announcement.held_slot_month
            self._reclaim(announcement, month, at)
        elif announcement.status in PUBLISHABLE:
            month = china_month(at)
            self._claim(announcement, month, at)
            reuses_slot = False
        else:
            raise AnnouncementNotPublishableError(announcement_id, announcement.status)
        outcome = send_to_all(call_json, announcement)
        record = SendRecord(
            msg_id=outcome.msg_id,
            errcode=outcome.errcode,
            errmsg=outcome.errmsg,
            at=clock.iso_utc(at),
            actor=actor,
            caller=caller,
        )
        refused = not outcome.sent and not outcome.uncertain
        # After a refusal the slot is still held when an earlier attempt may have gone out.
        holds_slot = outcome.uncertain or (refused and reuses_slot)
        if refused and (not reuses_slot or outcome.errcode == NO_QUOTA_ERRCODE):
            self._release_slot(month, exhausted=outcome.errcode == NO_QUOTA_ERRCODE)
        updated = self._record(announcement, record, outcome, month if holds_slot else None)
        logger.info(
            "announcement publish attempted",
            extra={
                "announcement_id": announcement_id,
                "status": updated.status,
                "errcode": outcome.errcode,
                "msg_id": outcome.msg_id,
                "held_slot_month": updated.held_slot_month,
            },
        )
        return updated

    def _reclaim(self, announcement: Announcement, month: str, at: float) -> None:
        """Move a `failed` announcement that holds `month`'s slot to `sending`, without a second slot."""
        try:
            self._table.update_item(
                Key={"PK": ANNOUNCEMENT_PK, "SK": announcement_sk(announcement.announcement_id)},
                UpdateExpression="SET #status = :sending, updated_at = :at",
                ConditionExpression="#status = :failed AND held_slot_month = :month",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":sending": "sending",
                    ":failed": "failed",
                    ":month": month,
                    ":at": clock.iso_utc(at),
                },
            )
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            current = self.get(announcement.announcement_id)
            raise AnnouncementNotPublishableError(announcement.announcement_id, current.status) from err
        logger.info(
            "announcement retry reuses its held slot",
            extra={"announcement_id": announcement.announcement_id, "month": month},
        )

    def _claim(self, announcement: Announcement, month: str, at: float) -> None:
        """Move the announcement to `sending` and take one slot of the month, in one transaction."""
        table_name = self._table.name
        claim = {
            "Update": {
                "TableName": table_name,
                "Key": {"PK": ANNOUNCEMENT_PK, "SK": announcement_sk(announcement.announcement_id)},
                "UpdateExpression": "SET #status = :sending, updated_at = :at",
                "ConditionExpression": "#status = :before",
                "ExpressionAttributeNames": {"#status": "status"},
                "ExpressionAttributeValues": {
                    ":sending": "sending",
                    ":before": announcement.status,
                    ":at": clock.iso_utc(at),
                },
            }
        }
        slot = {
            "Update": {
                "TableName": table_name,
                "Key": {"PK": quota_pk(month), "SK": QUOTA_SK},
                "UpdateExpression": "SET item_type = :type ADD used :one",
                "ConditionExpression": "attribute_not_exists(used) OR used < :limit",
                "ExpressionAttributeValues": {
                    ":type": "mass_send_quota",
                    ":one": 1,
                    ":limit": self._monthly_quota,
                },
            }
        }
        try:
            self._client.transact_write_items(TransactItems=[claim, slot])
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise
            reasons = [reason.get("Code") for reason in err.response.get("CancellationReasons", [])]
            if len(reasons) > 1 and reasons[1] == "ConditionalCheckFailed":
                logger.info("mass-send quota used up", extra={"month": month})
                raise MassSendQuotaUsedError(month, self._monthly_quota) from err
            current = self.get(announcement.announcement_id)
            raise AnnouncementNotPublishableError(announcement.announcement_id, current.status) from err

    def _take_over(self, announcement: Announcement, at: float) -> None:
        """Claim a stale `sending` announcement, unless another publish took it over first."""
        try:
            self._table.update_item(
                Key={"PK": ANNOUNCEMENT_PK, "SK": announcement_sk(announcement.announcement_id)},
                UpdateExpression="SET updated_at = :at",
                ConditionExpression="#status = :sending AND updated_at = :seen",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":at": clock.iso_utc(at),
                    ":sending": "sending",
                    ":seen": announcement.updated_at,
                },
            )
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            current = self.get(announcement.announcement_id)
            raise AnnouncementNotPublishableError(announcement.announcement_id, current.status) from err
        logger.warning(
            "stale announcement send taken over",
            extra={"announcement_id": announcement.announcement_id, "claimed_at": announcement.updated_at},
        )

    def _release_slot(self, month: str, exhausted: bool) -> None:
        """Give the reserved slot back after a refusal; WeChat's 45028 means the month is used up."""
        key = {"PK": quota_pk(month), "SK": QUOTA_SK}
        if exhausted:
            self._table.update_item(
                Key=key,
                UpdateExpression="SET used = :limit",
                ExpressionAttributeValues={":limit": self._monthly_quota},
            )
            return
        self._table.update_item(
            Key=key,
            UpdateExpression="ADD used :minus_one",
            ConditionExpression="used > :zero",
            ExpressionAttributeValues={":minus_one": -1, ":zero": 0},
        )

    def _record(
        self,
        announcement: Announcement,
        record: SendRecord,
        outcome: SendOutcome,
        held_slot_month: str | None,
    ) -> Announcement:
        status: AnnouncementStatus = "published" if outcome.sent else "failed"
        values: dict[str, Any] = {
            ":status": status,
            ":sends": [record.model_dump()],
            ":empty": [],
            ":at": record.at,
            ":sending": "sending",
        }
        expression = (
            "SET #status = :status, updated_at = :at, "
            "sends = list_append(if_not_exists(sends, :empty), :sends)"
        )
        if outcome.sent:
            expression += ", published_at = :at"
        if outcome.sent and outcome.msg_id is not None:
            expression += ", msg_id = :msg_id"
            values[":msg_id"] = outcome.msg_id
        if held_slot_month is not None:
            expression += ", held_slot_month = :month"
            values[":month"] = held_slot_month
        else:
            expression += " REMOVE held_slot_month"
        response = self._table.update_item(
            Key={"PK": ANNOUNCEMENT_PK, "SK": announcement_sk(announcement.announcement_id)},
            UpdateExpression=expression,
            ConditionExpression="#status = :sending",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
        )
        return Announcement.from_item(response["Attributes"])
