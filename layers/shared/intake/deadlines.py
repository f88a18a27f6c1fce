"""Handling deadlines in working days: set on acceptance, paused while awaiting the citizen, extended.

A deadline is 17:30 China Standard Time on the Nth working day after the day the clock starts
(`WorkingCalendar.clock_start_day`): acceptance on a working day before 17:30 starts the clock that
day, later acceptance starts it on the next working day. N comes from workflow_config.json per appeal
type; an urgent ticket gets `urgent_working_days` (0: the same working day). Deadlines are stored as
UTC ISO 8601 text (`intake.clock.iso_utc`) so that they sort as text in the status index.
"""

from __future__ import annotations

from datetime import datetime

from intake import clock
from intake.ticket_status import TicketStatus
from intake.workflow_config import WorkflowConfig
from intake.working_days import WorkingCalendar, office_day_end

# Statuses in which the handling clock runs (awaiting_citizen holds it; see `is_overdue`).
CLOCK_STATUSES = frozenset({TicketStatus.ACCEPTED, TicketStatus.DISPATCHED, TicketStatus.RETURNED})


def parse_iso(value: str) -> float:
    """Return the Unix time of an ISO 8601 text such as `2026-10-10T09:30:00.000Z`."""
    return datetime.fromisoformat(value).timestamp()


def handling_working_days(appeal_type: str, urgent: bool, config: WorkflowConfig) -> int:
    """Return the working days allowed for an appeal type; raises KeyError for an unknown type."""
    if urgent:
        return config.urgent_working_days
    return config.deadline_working_days[appeal_type]


def initial_deadline(accepted_at: float, working_days: int, calendar: WorkingCalendar) -> float:
    """Return the deadline of a ticket accepted at Unix time `accepted_at`."""
    start_day = calendar.clock_start_day(accepted_at)
    return office_day_end(calendar.add_working_days(start_day, working_days))


def extended_deadline(deadline: float, working_days: int, calendar: WorkingCalendar) -> float:
    """Return `deadline` moved by `working_days` working days (deadlines always fall at 17:30)."""
    deadline_day = clock.china_datetime(deadline).date()
    return office_day_end(calendar.add_working_days(deadline_day, working_days))


def resumed_deadline(
    deadline: float, paused_at: float, resumed_at: float, calendar: WorkingCalendar
) -> tuple[float, int]:
    """Return the deadline after a pause and the working days added for it.

    The deadline moves by the working days the clock was held. A pause that began after the deadline
    had already passed adds nothing, so a late ticket stays late.
    """
    if paused_at >= deadline:
        return deadline, 0
    paused_days = calendar.working_days_elapsed(paused_at, resumed_at)
    return extended_deadline(deadline, paused_days, calendar), paused_days


def is_overdue(status: str, deadline: float | None, paused_at: float | None, now: float) -> bool:
    """Tell whether an open ticket has passed its deadline.

    A ticket awaiting the citizen is overdue only when it was already late when the clock stopped.
    Replied, closed and other finished tickets are never overdue here.
    """
    if deadline is None:
        return False
    if status == TicketStatus.AWAITING_CITIZEN:
        return paused_at is not None and paused_at > deadline
    if status in CLOCK_STATUSES:
        return now > deadline
    return False
