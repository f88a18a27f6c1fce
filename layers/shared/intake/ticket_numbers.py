"""Human-readable ticket numbers such as DG20261204-0001: prefix, China Standard Time date, daily sequence.

The ticket number is also the ticket id (`PK=TICKET#{ticket_id}`). Numbers come from an atomic
counter item per prefix and day, so concurrent writers never receive the same number. A number whose
ticket transaction then fails is not reused, so a day's sequence can have gaps.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from intake import clock
from intake.keys import COUNTER_SK, counter_pk

# The counter is needed while pushes of its day can still arrive: a push redriven from the dead-letter
# queue (kept 14 days) is numbered by its CreateTime, so the counter outlives that retention.
COUNTER_TTL_SECONDS = 30 * 86400


def china_day(at: float) -> str:
    """Return the China Standard Time date of Unix time `at` as YYYYMMDD."""
    return clock.china_datetime(at).strftime("%Y%m%d")


def format_ticket_number(prefix: str, day: str, sequence: int) -> str:
    """Return `{prefix}{day}-{sequence}` with the sequence zero-padded to four digits (more after 9999)."""
    return f"{prefix}{day}-{sequence:04d}"


@cache
def ticket_number_pattern(prefix: str) -> re.Pattern[str]:
    """Return the regular expression that matches a whole ticket number with this prefix."""
    return re.compile(rf"{re.escape(prefix)}\d{{8}}-\d{{4,}}")


def parse_ticket_number(text: str, prefix: str) -> str | None:
    """Return the ticket number when `text` is one ticket number alone (spaces and case ignored)."""
    candidate = text.strip().upper()
    if ticket_number_pattern(prefix).fullmatch(candidate):
        return candidate
    return None


class TicketNumberAllocator:
    """Allocates the next ticket number of the day with an atomic ADD on the counter item."""

    def __init__(self, table: Any, prefix: str) -> None:
        self._table = table
        self._prefix = prefix

    def allocate(self, at: float) -> str:
        """Return a new, never before returned ticket number for the China Standard Time day of `at`."""
        day = china_day(at)
        response = self._table.update_item(
            Key={"PK": counter_pk(self._prefix, day), "SK": COUNTER_SK},
            UpdateExpression=(
                "ADD #sequence :one SET item_type = :type, expires_at = if_not_exists(expires_at, :expires)"
            ),
            ExpressionAttributeNames={"#sequence": "sequence"},
            ExpressionAttributeValues={
                ":one": 1,
                ":type": "counter",
                ":expires": int(at) + COUNTER_TTL_SECONDS,
            },
            ReturnValues="UPDATED_NEW",
        )
        sequence = int(response["Attributes"]["sequence"])
        return format_ticket_number(self._prefix, day, sequence)
