"""Ticket statuses of the 12345 handling process; the allowed transitions live in intake.workflow."""

from __future__ import annotations

from enum import StrEnum


class TicketStatus(StrEnum):
    COLLECTING = "collecting"  # draft: the citizen is still sending messages
    SUBMITTED = "submitted"  # 待受理
    ACCEPTED = "accepted"  # 已受理
    DISPATCHED = "dispatched"  # 已派单
    RETURNED = "returned"  # 退单: a department sent it back to the dispatcher
    AWAITING_CITIZEN = "awaiting_citizen"  # 待补充: the deadline is paused
    REPLIED = "replied"  # 已答复
    CLOSED = "closed"  # 已办结
    RATED = "rated"  # 已评价
    REJECTED = "rejected"  # 不予受理
    MERGED = "merged"  # duplicate of another ticket
    CANCELLED = "cancelled"  # the citizen cancelled the draft


OPEN_STATUSES = frozenset(
    {
        TicketStatus.SUBMITTED,
        TicketStatus.ACCEPTED,
        TicketStatus.DISPATCHED,
        TicketStatus.RETURNED,
        TicketStatus.AWAITING_CITIZEN,
        TicketStatus.REPLIED,
    }
)
