"""The per-instance token bucket that paces WeChat send calls."""

from __future__ import annotations

import pytest

from intake.send_rate import SendRateLimiter, SendThrottledError


class FakeTime:
    """A clock that only moves when the limiter sleeps or the test advances it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_send_rate_allows_burst_then_paces() -> None:
    time = FakeTime()
    limiter = SendRateLimiter(rate=10, clock=time.clock, sleep=time.sleep)

    for _ in range(10):
        limiter.acquire()
    limiter.acquire()

    assert time.slept == [pytest.approx(0.1)]


def test_send_rate_sustained_rate_matches_setting() -> None:
    time = FakeTime()
    limiter = SendRateLimiter(rate=50, clock=time.clock, sleep=time.sleep)
    start = time.now

    for _ in range(250):
        limiter.acquire()

    # 50 calls come from the initial burst, the other 200 at 50 per second.
    assert time.now - start == pytest.approx(4.0)


def test_send_rate_raises_when_wait_exceeds_limit() -> None:
    time = FakeTime()
    limiter = SendRateLimiter(rate=1, burst=1, clock=time.clock, sleep=time.sleep)
    limiter.acquire()

    with pytest.raises(SendThrottledError) as raised:
        limiter.acquire(max_wait=0.5)

    assert raised.value.retry_after == pytest.approx(1.0)
    assert time.slept == []


def test_send_rate_pause_refuses_sends_until_over() -> None:
    time = FakeTime()
    limiter = SendRateLimiter(rate=10, clock=time.clock, sleep=time.sleep)
    limiter.pause(60)

    with pytest.raises(SendThrottledError) as raised:
        limiter.acquire()
    time.now += 60
    limiter.acquire()

    assert raised.value.retry_after == pytest.approx(60)
    assert time.slept == []


def test_send_rate_rejects_non_positive_rate() -> None:
    with pytest.raises(ValueError, match="positive"):
        SendRateLimiter(rate=0)
