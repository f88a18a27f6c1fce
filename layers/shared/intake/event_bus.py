"""Publishing ticket changes and citizen notices on the EventBridge bus."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from intake.records import (
    DETAIL_TYPE_NOTICE,
    DETAIL_TYPE_TICKET_CHANGED,
    EVENT_SOURCE_TICKETS,
    CitizenNotice,
    TicketEvent,
)

logger = Logger(child=True)

# PutEvents accepts at most 10 entries per call.
_MAX_ENTRIES_PER_CALL = 10


class EventPublishError(RuntimeError):
    """EventBridge rejected at least one entry; the caller retries the whole unit of work."""


class EventPublisher:
    """Sends `TicketEvent` and `CitizenNotice` details to the bus named in the settings."""

    def __init__(self, events_client: Any, bus_name: str, source: str = EVENT_SOURCE_TICKETS) -> None:
        self._client = events_client
        self._bus_name = bus_name
        self._source = source

    def _entry(self, detail_type: str, detail_json: str) -> dict[str, str]:
        return {
            "EventBusName": self._bus_name,
            "Source": self._source,
            "DetailType": detail_type,
            "Detail": detail_json,
        }

    def publish(self, ticket_events: list[TicketEvent], notices: list[CitizenNotice]) -> None:
        entries = [
            self._entry(DETAIL_TYPE_TICKET_CHANGED, event.model_dump_json()) for event in ticket_events
        ]
        entries += [self._entry(DETAIL_TYPE_NOTICE, notice.model_dump_json()) for notice in notices]
        for start in range(0, len(entries), _MAX_ENTRIES_PER_CALL):
            batch = entries[start : start + _MAX_ENTRIES_PER_CALL]
            response = self._client.put_events(Entries=batch)
            failed = int(response.get("FailedEntryCount", 0))
            if failed:
                codes = sorted(
                    {entry.get("ErrorCode", "") for entry in response["Entries"] if "ErrorCode" in entry}
                )
                logger.error("event publish failed", extra={"failed_entries": failed, "error_codes": codes})
                raise EventPublishError(f"EventBridge rejected {failed} of {len(batch)} entries: {codes}")
        if entries:
            logger.debug(
                "events published", extra={"ticket_events": len(ticket_events), "notices": len(notices)}
            )
