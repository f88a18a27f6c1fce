"""Channel choice and the conditional claim of the 5-message customer-service quota."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from devstack.resources import Stack
from intake.citizen_profile import CitizenProfile
from intake.notice_channel import (
    CS_QUOTA,
    Channel,
    claim_cs_quota,
    close_cs_window,
    preferred_channel,
    release_cs_quota,
)

NOW = 1_796_351_400.0
HOUR = 3600


@pytest.fixture
def table(stack: Stack) -> Any:
    return boto3.resource("dynamodb").Table(stack.ref("TicketsTable"))


def put_profile(table: Any, open_id: str, **attributes: Any) -> None:
    table.put_item(Item={"PK": f"CITIZEN#{open_id}", "SK": "PROFILE", "open_id": open_id, **attributes})


def quota_used(table: Any, open_id: str) -> int:
    return int(table.get_item(Key={"PK": f"CITIZEN#{open_id}", "SK": "PROFILE"})["Item"]["cs_quota_used"])


@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        (None, Channel.NONE),
        (CitizenProfile(open_id="o", subscribed=False, last_interaction_at=int(NOW)), Channel.NONE),
        (CitizenProfile(open_id="o", last_interaction_at=int(NOW - HOUR)), Channel.CUSTOMER_SERVICE),
        (CitizenProfile(open_id="o", last_interaction_at=int(NOW - HOUR), cs_quota_used=5), Channel.TEMPLATE),
        (CitizenProfile(open_id="o", last_interaction_at=int(NOW - 48 * HOUR)), Channel.TEMPLATE),
        (CitizenProfile(open_id="o", last_interaction_at=None), Channel.TEMPLATE),
    ],
    ids=["no-profile", "unsubscribed", "window-open", "quota-used", "window-closed", "never-wrote"],
)
def test_notice_channel_preferred_channel(profile: CitizenProfile | None, expected: Channel) -> None:
    assert preferred_channel(profile, NOW) is expected


def test_notice_channel_claims_at_most_quota(table: Any) -> None:
    put_profile(table, "oClaim", subscribed=True, last_interaction_at=int(NOW - HOUR), cs_quota_used=0)

    claims = [claim_cs_quota(table, "oClaim", NOW) for _ in range(CS_QUOTA + 1)]

    assert all(claim is not None for claim in claims[:CS_QUOTA])
    assert claims[CS_QUOTA] is None
    assert quota_used(table, "oClaim") == CS_QUOTA


def test_notice_channel_claim_fails_outside_window(table: Any) -> None:
    put_profile(table, "oLate", subscribed=True, last_interaction_at=int(NOW - 49 * HOUR), cs_quota_used=0)

    claim = claim_cs_quota(table, "oLate", NOW)

    assert claim is None
    assert quota_used(table, "oLate") == 0


def test_notice_channel_claim_fails_without_profile(table: Any) -> None:
    assert claim_cs_quota(table, "oNobody", NOW) is None


def test_notice_channel_release_returns_one_unit(table: Any) -> None:
    put_profile(table, "oRelease", subscribed=True, last_interaction_at=int(NOW - HOUR), cs_quota_used=0)
    window = claim_cs_quota(table, "oRelease", NOW)
    assert window is not None

    release_cs_quota(table, "oRelease", window)

    assert quota_used(table, "oRelease") == 0


def test_notice_channel_close_leaves_newer_window_alone(table: Any) -> None:
    put_profile(table, "oNewer", subscribed=True, last_interaction_at=int(NOW - HOUR), cs_quota_used=0)
    window = claim_cs_quota(table, "oNewer", NOW)
    assert window is not None
    # the citizen writes again: ticket-write moves the window and resets the counter
    put_profile(table, "oNewer", subscribed=True, last_interaction_at=int(NOW), cs_quota_used=0)

    close_cs_window(table, "oNewer", window, 45015)

    assert quota_used(table, "oNewer") == 0


def test_notice_channel_close_uses_up_current_window(table: Any) -> None:
    put_profile(table, "oClose", subscribed=True, last_interaction_at=int(NOW - HOUR), cs_quota_used=0)
    window = claim_cs_quota(table, "oClose", NOW)
    assert window is not None

    close_cs_window(table, "oClose", window, 45047)

    assert quota_used(table, "oClose") == CS_QUOTA
    assert claim_cs_quota(table, "oClose", NOW) is None
