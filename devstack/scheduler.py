"""Schedule events: run a function on its `rate(...)` with a scheduled EventBridge event as input.

`cron(...)` expressions are not run on their own (a log line says so); `run_now` still runs them.
"""

from __future__ import annotations

import logging
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from devstack.function_pool import Invocation
from devstack.template import LOCAL_ACCOUNT_ID

_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}

logger = logging.getLogger(__name__)


def rate_seconds(expression: str) -> int | None:
    """Return the period of a `rate(N unit)` expression in seconds, None for `cron(...)`.

    Raises ValueError for anything else, or for a unit whose singular/plural form does not fit N,
    as EventBridge does (`rate(1 minutes)` and `rate(5 minute)` are invalid).
    """
    expression = expression.strip()
    if expression.startswith("cron("):
        return None
    match = _RATE.match(expression)
    if match is None:
        raise ValueError(f"invalid schedule expression {expression!r}; expected rate(N minutes) or cron(...)")
    count, unit = int(match.group(1)), match.group(2)
    if count < 1 or (count == 1) == unit.endswith("s"):
        raise ValueError(f"invalid schedule expression {expression!r}; use rate(1 minute) or rate(N minutes)")
    return count * _UNIT_SECONDS[unit.rstrip("s")]


@dataclass(frozen=True)
class Schedule:
    """One `Schedule` event of a function."""

    function: str
    event_name: str
    expression: str
    rule_name: str
    region: str

    @property
    def period_seconds(self) -> int | None:
        return rate_seconds(self.expression)

    def event(self) -> dict[str, Any]:
        """Build the event EventBridge sends to a scheduled target."""
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": LOCAL_ACCOUNT_ID,
            "time": datetime.now(tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": self.region,
            "resources": [f"arn:aws:events:{self.region}:{LOCAL_ACCOUNT_ID}:rule/{self.rule_name}"],
            "detail": {},
        }


def schedules(
    functions: dict[str, dict[str, dict[str, Any]]], stack_name: str, region: str
) -> list[Schedule]:
    """Return every enabled `Schedule` event; `functions` maps logical id to resolved events."""
    found = []
    for function, events in functions.items():
        for event_name, event in events.items():
            if event.get("Type") != "Schedule":
                continue
            properties = event["Properties"]
            if properties.get("Enabled") is False or properties.get("State") == "DISABLED":
                continue
            found.append(
                Schedule(
                    function=function,
                    event_name=event_name,
                    expression=str(properties["Schedule"]),
                    rule_name=f"{stack_name}-{function}{event_name}",
                    region=region,
                )
            )
    return found


class UnknownScheduleError(KeyError):
    """No schedule has the requested name."""


class Scheduler:
    """Runs each schedule on its period in a thread; `run_now` runs one at once and returns its result."""

    def __init__(
        self,
        entries: list[Schedule],
        invoke: Callable[[str, dict[str, Any]], Invocation],
        run_at_start: bool = False,
    ) -> None:
        self.entries = entries
        self._invoke = invoke
        self._run_at_start = run_at_start
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def find(self, name: str) -> Schedule:
        """Return the schedule named by function logical id, `Function.Event` or the event name."""
        for entry in self.entries:
            if name in (f"{entry.function}.{entry.event_name}", entry.event_name):
                return entry
        by_function = [entry for entry in self.entries if entry.function == name]
        if len(by_function) == 1:
            return by_function[0]
        names = ", ".join(f"{entry.function}.{entry.event_name}" for entry in self.entries) or "none"
        if by_function:
            raise UnknownScheduleError(f"{name} has several schedules; name one of: {names}")
        raise UnknownScheduleError(f"no schedule named {name!r}; schedules: {names}")

    def run_now(self, name: str) -> Invocation:
        entry = self.find(name)
        return self._invoke(entry.function, entry.event())

    def start(self, present: Callable[[str], bool]) -> Scheduler:
        """Start a timer thread for every rate schedule whose function `present` reports as written."""
        for entry in self.entries:
            period = entry.period_seconds
            if period is None:
                logger.info(
                    "%s.%s uses %s; cron schedules do not run locally, use POST /_local/schedule/%s",
                    entry.function,
                    entry.event_name,
                    entry.expression,
                    entry.function,
                )
                continue
            if not present(entry.function):
                logger.warning("%s has no handler file yet; its schedule is off", entry.function)
                continue
            thread = threading.Thread(
                target=self._loop,
                args=(entry, period),
                name=f"schedule-{entry.function}-{entry.event_name}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)
        return self

    def _loop(self, entry: Schedule, period: int) -> None:
        if self._run_at_start:
            self._invoke(entry.function, entry.event())
        while not self._stop.wait(period):
            self._invoke(entry.function, entry.event())

    def stop(self) -> None:
        self._stop.set()
