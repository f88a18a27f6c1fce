"""Pacing of WeChat send calls within one function instance: a token bucket plus a throttle pause.

The bucket caps the calls per second of one instance (`WECHAT_SEND_RATE_PER_SECOND`, default 50).
The event source mapping's maximum concurrency in template.yaml caps the number of instances, so
the product of both bounds the account's send rate. When WeChat itself reports a quota
(45009 daily, 45011 per minute), `pause` stops every further send of this instance for a while, so
the rest of the batch is put back on the queue without spending calls that would fail too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class SendThrottledError(RuntimeError):
    """No send is allowed now; put the notice back on the queue and try after `retry_after` seconds."""

    def __init__(self, retry_after: float, reason: str) -> None:
        super().__init__(f"sending is throttled ({reason}); retry after {retry_after:.1f} s")
        self.retry_after = retry_after
        self.reason = reason


class SendRateLimiter:
    """Thread-safe token bucket: `rate` tokens per second, at most `burst` saved up."""

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"send rate must be positive, got {rate}")
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.burst
        self._updated = clock()
        self._paused_until = 0.0
        self._lock = threading.Lock()

    def _refill(self, now: float) -> None:
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    def acquire(self, max_wait: float = 2.0) -> None:
        """Take one token, sleeping up to `max_wait` seconds for it.

        Raises SendThrottledError when the instance is paused or the wait would be longer.
        """
        with self._lock:
            now = self._clock()
            if now < self._paused_until:
                raise SendThrottledError(self._paused_until - now, "paused after a WeChat quota error")
            self._refill(now)
            wait = (1.0 - self._tokens) / self.rate if self._tokens < 1.0 else 0.0
            if wait > max_wait:
                raise SendThrottledError(wait, "local send rate reached")
            # Take the token now (the balance may go negative) so that concurrent callers queue up
            # behind this one instead of all waking at the same moment.
            self._tokens -= 1.0
        if wait > 0:
            self._sleep(wait)

    def pause(self, seconds: float) -> None:
        """Refuse every send for `seconds`, for example after WeChat's 45011 minute quota error."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)
