"""Time sources, injectable so that tests can pin the clock (for example to a test vector's timestamp)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone

CHINA_TZ = timezone(timedelta(hours=8), name="Asia/Shanghai")


def now() -> float:
    """Return the current Unix time in seconds; tests monkeypatch this function."""
    return time.time()


def iso_utc(at: float) -> str:
    """Return Unix time `at` as UTC ISO 8601 with milliseconds, which sorts as text."""
    return datetime.fromtimestamp(at, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def china_datetime(at: float) -> datetime:
    """Return Unix time `at` in China Standard Time (UTC+8, no daylight saving)."""
    return datetime.fromtimestamp(at, tz=CHINA_TZ)
