"""Working days of mainland China: weekends, public holidays and make-up working days (调休).

The dates are data in `calendar_cn.json`. A working day is Monday to Friday unless it is a public
holiday, plus every make-up working day (a weekend day that the State Council turns into a working
day). Times are China Standard Time: a ticket's clock counts whole working days that end at the
office closing time, 17:30.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import cache
from pathlib import Path

from aws_lambda_powertools import Logger

from intake.clock import CHINA_TZ

logger = Logger(child=True)

CALENDAR_FILE = Path(__file__).with_name("calendar_cn.json")

# Deadlines fall at the end of the office day; work received after it counts from the next working day.
OFFICE_DAY_END = time(17, 30)


@dataclass
class WorkingCalendar:
    """Working-day arithmetic over the holidays and make-up working days of the covered years."""

    holidays: frozenset[date]
    make_up_working_days: frozenset[date]
    covered_years: frozenset[int]
    provisional_years: frozenset[int] = frozenset()
    _warned_years: set[int] = field(default_factory=set, repr=False)

    def is_working_day(self, day: date) -> bool:
        if day.year not in self.covered_years and day.year not in self._warned_years:
            # NOTE: outside the covered years every Monday to Friday counts; add the year to calendar_cn.json.
            self._warned_years.add(day.year)
            logger.warning(
                "year not in the working-day calendar, counting Monday to Friday",
                extra={"year": day.year, "calendar_file": CALENDAR_FILE.name},
            )
        if day in self.make_up_working_days:
            return True
        return day.weekday() < 5 and day not in self.holidays

    def next_working_day(self, day: date) -> date:
        """Return the first working day strictly after `day`."""
        candidate = day + timedelta(days=1)
        while not self.is_working_day(candidate):
            candidate += timedelta(days=1)
        return candidate

    def add_working_days(self, day: date, count: int) -> date:
        """Return the `count`-th working day after `day`.

        With 0, return `day` itself when it is a working day, else the next working day.
        """
        if count < 0:
            raise ValueError(f"working day count must be 0 or more, got {count}")
        current = day if self.is_working_day(day) else self.next_working_day(day)
        if not self.is_working_day(day) and count > 0:
            count -= 1
        for _ in range(count):
            current = self.next_working_day(current)
        return current

    def working_days_between(self, start: date, end: date) -> int:
        """Count the working days after `start` up to and including `end` (0 when `end` <= `start`)."""
        count = 0
        day = start + timedelta(days=1)
        while day <= end:
            if self.is_working_day(day):
                count += 1
            day += timedelta(days=1)
        return count

    def clock_start_day(self, at: float) -> date:
        """Return the working day whose office hours contain Unix time `at`, or the next one after it.

        Something received on a working day before 17:30 counts from that day; received later, or on
        a weekend or holiday, it counts from the next working day.
        """
        moment = datetime.fromtimestamp(at, tz=CHINA_TZ)
        day = moment.date()
        if self.is_working_day(day) and moment.time() < OFFICE_DAY_END:
            return day
        return self.next_working_day(day)

    def working_days_elapsed(self, start: float, end: float) -> int:
        """Count the working days the clock ran between Unix times `start` and `end`."""
        return self.working_days_between(self.clock_start_day(start), self.clock_start_day(end))


def office_day_end(day: date) -> float:
    """Return the Unix time of 17:30 China Standard Time on `day`."""
    return datetime.combine(day, OFFICE_DAY_END, tzinfo=CHINA_TZ).timestamp()


def _dates(groups: list[dict[str, object]]) -> set[date]:
    found: set[date] = set()
    for group in groups:
        dates = group["dates"]
        if not isinstance(dates, list):
            raise ValueError(f"{CALENDAR_FILE.name}: 'dates' of {group.get('name')!r} must be a list")
        found.update(date.fromisoformat(str(value)) for value in dates)
    return found


def parse_calendar(document: dict[str, object]) -> WorkingCalendar:
    """Build a calendar from the JSON document layout of calendar_cn.json."""
    years = document["years"]
    if not isinstance(years, dict):
        raise ValueError(f"{CALENDAR_FILE.name}: 'years' must be an object keyed by year")
    holidays: set[date] = set()
    make_up: set[date] = set()
    provisional: set[int] = set()
    for year, section in years.items():
        holidays |= _dates(section["holidays"])
        make_up |= _dates(section["make_up_working_days"])
        if section.get("status") == "provisional":
            provisional.add(int(year))
    overlap = holidays & make_up
    if overlap:
        raise ValueError(f"{CALENDAR_FILE.name}: dates both holiday and working day: {sorted(overlap)}")
    return WorkingCalendar(
        holidays=frozenset(holidays),
        make_up_working_days=frozenset(make_up),
        covered_years=frozenset(int(year) for year in years),
        provisional_years=frozenset(provisional),
    )


@cache
def get_calendar() -> WorkingCalendar:
    """Return the calendar of calendar_cn.json, read once per process."""
    with CALENDAR_FILE.open(encoding="utf-8") as handle:
        return parse_calendar(json.load(handle))
