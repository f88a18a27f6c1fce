"""Faults during the run: WeChat API errors and slowness, and SIGKILLed function workers.

AWS faults come from `devstack.fault_proxy` (configured through `LocalStackConfig.aws_fault_plan`).
This module adds the other two kinds while the pushes are delivered:

- `WeChatFaults` queues faults on the emulator (`EmulatorState.add_fault`) at random intervals:
  errcode -1 (system busy), 45015 (window closed), 40001 (token invalid), HTTP 5xx, and slow responses.
  A slow `media/get` is longer than the functions' 5 s read timeout; a slow customer-service send
  stays inside it, because WeChat has no idempotency key for customer-service messages and a send
  whose answer never arrives is sent again by design (`intake.notice_delivery`, `in_flight`).
- `WorkerKiller` SIGKILLs a worker of ticket-write, media-store or reply-push while it handles an
  SQS batch, as when a Lambda execution environment dies.
"""

from __future__ import annotations

import logging
import math
import os
import random
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass

from devstack.runner import LocalStack
from devstack.wechat_emulator import Fault

KILL_TARGETS = ("TicketWriteFunction", "MediaStoreFunction", "ReplyPushFunction")


@dataclass(frozen=True)
class WeChatFaultKind:
    name: str
    api: str
    errcode: int | None = None
    http_status: int | None = None
    latency_ms: int = 0


WECHAT_FAULTS = (
    WeChatFaultKind("errcode -1 system busy", "message/custom/send", errcode=-1),
    WeChatFaultKind("errcode 45015 window closed", "message/custom/send", errcode=45015),
    WeChatFaultKind("errcode 40001 token invalid", "message/custom/send", errcode=40001),
    WeChatFaultKind("errcode 40001 token invalid", "media/get", errcode=40001),
    WeChatFaultKind("errcode -1 system busy", "media/get", errcode=-1),
    WeChatFaultKind("HTTP 503", "media/get", http_status=503),
    WeChatFaultKind("HTTP 500", "message/custom/send", http_status=500),
    WeChatFaultKind("slow 6 s (beyond the 5 s read timeout)", "media/get", latency_ms=6000),
    WeChatFaultKind("slow 1.5 s", "message/custom/send", latency_ms=1500),
)

logger = logging.getLogger(__name__)


class WeChatFaults:
    """A thread that queues one random WeChat fault every `interval` seconds on average."""

    def __init__(self, stack: LocalStack, seed: int, interval: float = 1.0) -> None:
        assert stack.emulator is not None
        self._state = stack.emulator.state
        self._random = random.Random(seed)  # noqa: S311 - a seeded test scenario
        self._interval = interval
        self._stop = threading.Event()
        self._faults: list[tuple[WeChatFaultKind, Fault, int]] = []
        self._thread = threading.Thread(target=self._run, name="wechat-faults", daemon=True)

    def start(self) -> WeChatFaults:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self._random.uniform(0.2, 2 * self._interval)):
            kind = self._random.choice(WECHAT_FAULTS)
            times = self._random.randint(1, 3)
            fault = Fault(
                api=kind.api,
                errcode=kind.errcode,
                http_status=kind.http_status,
                latency_ms=kind.latency_ms,
                times=times,
            )
            self._state.add_fault(fault)
            self._faults.append((kind, fault, times))

    def stop(self) -> dict[str, int]:
        """Stop, drop the faults not taken yet, and return how many calls failed, by `api: kind`."""
        self._stop.set()
        self._thread.join()
        taken: Counter[str] = Counter()
        with self._state.lock:
            pending = {id(fault): fault.times for fault in self._state.faults}
            self._state.faults.clear()
        for kind, fault, initial in self._faults:
            taken[f"{kind.api}: {kind.name}"] += initial - pending.get(id(fault), 0)
        return {name: count for name, count in sorted(taken.items()) if count}


class WorkerKiller:
    """A thread that SIGKILLs `kills` busy workers of the SQS functions, spread over the run."""

    def __init__(self, stack: LocalStack, seed: int, kills: int, interval: float = 4.0) -> None:
        self._stack = stack
        self._random = random.Random(seed + 1)  # noqa: S311 - a seeded test scenario
        self._kills = kills
        self._interval = interval
        self._stop = threading.Event()
        self.killed: Counter[str] = Counter()
        self._thread = threading.Thread(target=self._run, name="worker-killer", daemon=True)

    def start(self) -> WorkerKiller:
        self._thread.start()
        return self

    def _kill_one(self) -> bool:
        """SIGKILL a busy worker of a function below its share of the kills; False when none is busy."""
        share = math.ceil(self._kills / len(KILL_TARGETS))
        candidates = [function for function in KILL_TARGETS if self.killed[function] < share]
        self._random.shuffle(candidates)
        for function in candidates:
            pids = self._stack.pools[function].busy_pids()
            if not pids:
                continue
            pid = self._random.choice(pids)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            logger.info("killed a %s worker in the middle of a batch (pid %d)", function, pid)
            self.killed[function] += 1
            return True
        return False

    def _run(self) -> None:
        while sum(self.killed.values()) < self._kills and not self._stop.wait(
            self._random.uniform(0.5, 2 * self._interval)
        ):
            # Poll for a busy worker for up to 20 s; each function gets an equal share of the kills.
            deadline = time.monotonic() + 20
            while not self._kill_one() and time.monotonic() < deadline and not self._stop.wait(0.02):
                pass

    def stop(self) -> dict[str, int]:
        self._stop.set()
        self._thread.join()
        return dict(self.killed)
