"""Self-service replies in WeChat: the citizen's ticket list, one ticket's timeline, rating choices.

Pure functions that render texts from stored tickets and history entries; ticket-write loads the data
and sends the result as a `self_service` notice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from intake import clock, texts
from intake.ticket_repository import Ticket

# How many tickets the progress query lists, newest first.
TICKET_LIST_LIMIT = 5
# How many status changes one ticket's timeline shows, newest last.
TIMELINE_LIMIT = 10
RATING_CHOICES = ("1", "2", "3")
RATING_DISSATISFIED = 3


def display_time(at_iso: str | None) -> str:
    """Return a stored UTC ISO time as China Standard Time `YYYY-MM-DD HH:MM`, the way citizens read it."""
    if not at_iso:
        return ""
    at = datetime.fromisoformat(at_iso).timestamp()
    return clock.china_datetime(at).strftime("%Y-%m-%d %H:%M")


def rating_choice(text: str) -> int | None:
    """Return 1, 2 or 3 when the text is exactly one rating choice (spaces ignored), else None."""
    stripped = text.strip()
    return int(stripped) if stripped in RATING_CHOICES else None


def rating_label(score: int) -> str:
    return texts.text(f"rating.{score}")


def ticket_list_text(tickets: list[Ticket]) -> str:
    """Render the progress query's answer: one line per ticket with number, status and last update."""
    if not tickets:
        return texts.text("citizen.no_tickets")
    lines = [texts.text("citizen.ticket_list_header")]
    lines += [
        texts.text(
            "citizen.ticket_list_line",
            ticket_id=ticket.ticket_id,
            status=texts.status_label(ticket.status),
            updated_at=display_time(ticket.updated_at),
        )
        for ticket in tickets[:TICKET_LIST_LIMIT]
    ]
    return "\n".join(lines)


def ticket_detail_text(ticket: Ticket, history: list[dict[str, Any]]) -> str:
    """Render one ticket's status and its timeline of status changes (from history entries)."""
    lines = [
        texts.text(
            "citizen.ticket_detail_header",
            ticket_id=ticket.ticket_id,
            status=texts.status_label(ticket.status),
        )
    ]
    changes = [entry for entry in history if entry.get("after_status")]
    lines += [
        texts.text(
            "citizen.timeline_line",
            at=display_time(entry.get("at")),
            status=texts.status_label(str(entry["after_status"])),
        )
        for entry in changes[-TIMELINE_LIMIT:]
    ]
    # The staff's latest words: an answer sent outside WeChat's 48-hour window arrived only as a
    # template message, so the lookup is where the citizen can read it whole.
    staff_words = {
        "action:reply": "citizen.ticket_detail_reply",
        "action:request_info": "citizen.ticket_detail_request",
    }
    latest = next((entry for entry in reversed(history) if entry.get("entry_type") in staff_words), None)
    if latest is not None and (latest.get("detail") or {}).get("text"):
        lines.append(texts.text(staff_words[str(latest["entry_type"])], text=latest["detail"]["text"]))
    return "\n".join(lines)


def ticket_not_found_text(ticket_id: str) -> str:
    return texts.text("citizen.ticket_not_found", ticket_id=ticket_id)
