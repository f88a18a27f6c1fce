"""Choice between WeChat's customer-service and template messages for one notice.

WeChat accepts customer-service (客服) messages to a citizen only within 48 hours of the citizen's
last message, and at most 5 of them in that window (errcodes 45015 and 45047 otherwise). The
citizen profile item (`PK=CITIZEN#{open_id}`, `SK=PROFILE`) tracks both: ticket-write sets
`last_interaction_at` and resets `cs_quota_used` to 0 on every citizen message, and reply-push
claims one unit of `cs_quota_used` with a conditional update before each customer-service send.
Outside the window or quota, a notice goes by template message, which needs only the subscription.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from intake.citizen_profile import CitizenProfile, profile_key

logger = Logger(child=True)

CS_WINDOW_SECONDS = 48 * 3600
CS_QUOTA = 5


class Channel(StrEnum):
    CUSTOMER_SERVICE = "customer_service"
    TEMPLATE = "template"
    NONE = "none"


def cs_window_open(profile: CitizenProfile, now: float) -> bool:
    last = profile.last_interaction_at
    return last is not None and last > now - CS_WINDOW_SECONDS


def preferred_channel(profile: CitizenProfile | None, now: float) -> Channel:
    """Return the channel the profile allows now, before any quota is claimed.

    A missing profile means the citizen unsubscribed (ticket-write deletes it) or never wrote.
    """
    if profile is None or not profile.subscribed:
        return Channel.NONE
    if cs_window_open(profile, now) and profile.cs_quota_used < CS_QUOTA:
        return Channel.CUSTOMER_SERVICE
    return Channel.TEMPLATE


def _is_condition_failure(err: ClientError) -> bool:
    return err.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def read_profile(table: Any, open_id: str) -> CitizenProfile | None:
    """Return the citizen's profile, or None when there is none."""
    item = table.get_item(Key=profile_key(open_id), ConsistentRead=True).get("Item")
    return None if item is None else CitizenProfile.from_item(item)


def claim_cs_quota(table: Any, open_id: str, now: float) -> Decimal | None:
    """Claim one customer-service message for the citizen; return the window's start or None.

    The update succeeds only while the profile is subscribed, the 48-hour window is open and fewer
    than 5 messages have been claimed, so concurrent senders can never claim a sixth. The returned
    `last_interaction_at` identifies the window for `release_cs_quota` and `close_cs_window`.
    """
    try:
        response = table.update_item(
            Key=profile_key(open_id),
            UpdateExpression="SET cs_quota_used = if_not_exists(cs_quota_used, :zero) + :one",
            ConditionExpression=(
                "attribute_exists(PK) AND (attribute_not_exists(subscribed) OR subscribed = :true) "
                "AND last_interaction_at > :window_start "
                "AND (attribute_not_exists(cs_quota_used) OR cs_quota_used < :quota)"
            ),
            ExpressionAttributeValues={
                ":zero": 0,
                ":one": 1,
                ":true": True,
                ":quota": CS_QUOTA,
                ":window_start": Decimal(str(now - CS_WINDOW_SECONDS)),
            },
            ReturnValues="ALL_NEW",
        )
    except ClientError as err:
        if _is_condition_failure(err):
            return None
        raise
    # Kept as the stored Decimal so that the conditions below compare it exactly.
    window_start: Decimal = response["Attributes"]["last_interaction_at"]
    return window_start


def release_cs_quota(table: Any, open_id: str, window_start: Decimal) -> None:
    """Give back a claimed unit after WeChat returned an errcode, so the message was not sent.

    Nothing changes when the citizen has written since, because ticket-write has reset the counter.
    """
    try:
        table.update_item(
            Key=profile_key(open_id),
            UpdateExpression="SET cs_quota_used = cs_quota_used - :one",
            ConditionExpression="last_interaction_at = :window_start AND cs_quota_used > :zero",
            ExpressionAttributeValues={":one": 1, ":zero": 0, ":window_start": window_start},
        )
    except ClientError as err:
        if not _is_condition_failure(err):
            raise


def close_cs_window(table: Any, open_id: str, window_start: Decimal, errcode: int) -> None:
    """Mark the window as used up after WeChat returned 45015 (window closed) or 45047 (quota used).

    Sets `cs_quota_used` to the quota, so no further customer-service send is tried until the
    citizen writes again; a newer window that ticket-write opened in the meantime is left alone.
    """
    try:
        table.update_item(
            Key=profile_key(open_id),
            UpdateExpression="SET cs_quota_used = :quota",
            ConditionExpression="last_interaction_at = :window_start",
            ExpressionAttributeValues={":quota": CS_QUOTA, ":window_start": window_start},
        )
    except ClientError as err:
        if not _is_condition_failure(err):
            raise
        return
    logger.info("customer-service window marked closed", extra={"errcode": errcode})
