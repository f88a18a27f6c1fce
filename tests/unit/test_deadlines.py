"""Deadlines in working days: acceptance, urgency, pause and extension."""

from __future__ import annotations

from datetime import datetime

import pytest

from intake import clock, deadlines
from intake.workflow_config import get_workflow_config
from intake.working_days import get_calendar


def at(moment: str) -> float:
    return datetime.fromisoformat(moment).timestamp()


def china(value: float) -> str:
    return clock.china_datetime(value).strftime("%Y-%m-%d %H:%M")


@pytest.mark.parametrize(
    ("appeal_type", "urgent", "days"),
    [
        ("consultation", False, 3),
        ("help", False, 3),
        ("complaint", False, 13),
        ("report", False, 13),
        ("suggestion", False, 13),
        ("complaint", True, 0),
    ],
)
def test_handling_working_days_defaults(appeal_type: str, urgent: bool, days: int) -> None:
    # WHEN / THEN
    assert deadlines.handling_working_days(appeal_type, urgent, get_workflow_config()) == days


@pytest.mark.parametrize(
    ("accepted", "working_days", "deadline"),
    [
        ("2026-09-30T10:00:00+08:00", 3, "2026-10-10 17:30"),  # skips 国庆, counts the make-up Saturday
        ("2026-09-30T18:00:00+08:00", 3, "2026-10-12 17:30"),  # after hours: the clock starts on 10-08
        ("2026-10-01T09:00:00+08:00", 0, "2026-10-08 17:30"),  # urgent on a holiday: first working day
        ("2026-03-02T09:00:00+08:00", 0, "2026-03-02 17:30"),  # urgent on a working day: the same day
        ("2026-02-13T10:00:00+08:00", 1, "2026-02-14 17:30"),  # make-up Saturday before 春节
        ("2026-02-13T10:00:00+08:00", 2, "2026-02-24 17:30"),  # then 春节 until 02-23
        ("2026-12-31T10:00:00+08:00", 1, "2027-01-04 17:30"),  # provisional 2027: 元旦 on Friday
    ],
)
def test_initial_deadline_cases(accepted: str, working_days: int, deadline: str) -> None:
    # WHEN / THEN
    assert china(deadlines.initial_deadline(at(accepted), working_days, get_calendar())) == deadline


def test_resumed_deadline_adds_paused_working_days() -> None:
    # GIVEN a deadline of Fri 2026-10-23 and a pause from Thu 10-08 10:00 to Mon 10-12 10:00
    deadline = at("2026-10-23T17:30:00+08:00")

    # WHEN the ticket resumes
    new_deadline, paused = deadlines.resumed_deadline(
        deadline, at("2026-10-08T10:00:00+08:00"), at("2026-10-12T10:00:00+08:00"), get_calendar()
    )

    # THEN 3 working days were held (10-09, make-up 10-10, 10-12) and the deadline moves by them
    assert paused == 3
    assert china(new_deadline) == "2026-10-28 17:30"


def test_resumed_deadline_same_day_pause_adds_nothing() -> None:
    # GIVEN a pause and resume within one office day
    deadline = at("2026-10-23T17:30:00+08:00")

    # WHEN the ticket resumes
    new_deadline, paused = deadlines.resumed_deadline(
        deadline, at("2026-10-13T09:00:00+08:00"), at("2026-10-13T16:00:00+08:00"), get_calendar()
    )

    # THEN nothing is added
    assert paused == 0
    assert new_deadline == deadline


def test_resumed_deadline_after_overdue_pause_stays_late() -> None:
    # GIVEN a pause that began after the deadline
    deadline = at("2026-10-23T17:30:00+08:00")

    # WHEN the ticket resumes a week later
    new_deadline, paused = deadlines.resumed_deadline(
        deadline, at("2026-10-26T09:00:00+08:00"), at("2026-11-02T09:00:00+08:00"), get_calendar()
    )

    # THEN the deadline does not move
    assert paused == 0
    assert new_deadline == deadline


def test_extended_deadline_skips_weekend() -> None:
    # WHEN Fri 2026-10-23 is extended by 5 working days
    result = deadlines.extended_deadline(at("2026-10-23T17:30:00+08:00"), 5, get_calendar())

    # THEN it lands on Fri 10-30
    assert china(result) == "2026-10-30 17:30"


@pytest.mark.parametrize(
    ("status", "paused_at", "now", "overdue"),
    [
        ("dispatched", None, "2026-10-23T17:31:00+08:00", True),
        ("dispatched", None, "2026-10-23T17:30:00+08:00", False),
        ("awaiting_citizen", "2026-10-22T10:00:00+08:00", "2026-11-30T10:00:00+08:00", False),
        ("awaiting_citizen", "2026-10-26T10:00:00+08:00", "2026-11-30T10:00:00+08:00", True),
        ("replied", None, "2026-11-30T10:00:00+08:00", False),
        ("closed", None, "2026-11-30T10:00:00+08:00", False),
    ],
)
def test_is_overdue_cases(status: str, paused_at: str | None, now: str, overdue: bool) -> None:
    # GIVEN a deadline of Fri 2026-10-23 17:30
    deadline = at("2026-10-23T17:30:00+08:00")

    # WHEN / THEN
    assert deadlines.is_overdue(status, deadline, at(paused_at) if paused_at else None, at(now)) is overdue
