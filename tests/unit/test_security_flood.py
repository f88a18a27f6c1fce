"""A citizen flooding the channel: 300 messages within a minute must make one ticket and one acknowledgement.

The pushes go through ticket-write's real handler as SQS FIFO batches of 10 in the order WeChat sent
them (one message group per citizen), against the template's resources in moto.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from devstack.resources import Stack
from intake import clock
from tests.unit.test_ticket_write import ACCOUNT_OPEN_ID, BASE_TIME, TicketWriteDriver, open_id_of

FLOOD_SIZE = 300
FLOOD_SECONDS = 60
BATCH_SIZE = 10


@pytest.fixture
def driver(
    stack: Stack,
    load_function: Callable[..., ModuleType],
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> TicketWriteDriver:
    now = {"at": float(BASE_TIME)}
    monkeypatch.setattr(clock, "now", lambda: now["at"])
    driver = TicketWriteDriver(stack, load_function("TicketWriteFunction"), lambda_context)
    driver.clock = now  # type: ignore[attr-defined]
    return driver


@pytest.mark.slow
def test_flood_one_ticket_one_acknowledgement(driver: TicketWriteDriver) -> None:
    # GIVEN 300 text messages from one citizen within one minute, in WeChat's order
    open_id = open_id_of(300)
    pushes = [
        driver.text(
            open_id, f"路面塌陷，补充说明第{index}条", BASE_TIME + index * FLOOD_SECONDS // FLOOD_SIZE
        )
        for index in range(FLOOD_SIZE)
    ]
    assert all(push.fields["ToUserName"] == ACCOUNT_OPEN_ID for push in pushes)

    # WHEN ticket-write receives them in FIFO batches of 10, with the clock following the pushes
    failures: list[str] = []
    for start in range(0, FLOOD_SIZE, BATCH_SIZE):
        batch = pushes[start : start + BATCH_SIZE]
        driver.clock["at"] = float(batch[-1].create_time)  # type: ignore[attr-defined]
        failures += driver.send(*batch)

    # THEN every message is stored, all in one ticket
    tickets = driver.tickets()
    notices = driver.notices()
    assert failures == []
    assert len(tickets) == 1
    ticket_id = tickets[0]["ticket_id"]
    assert len(driver.messages(ticket_id)) == FLOOD_SIZE
    assert len(driver.items_of_type("message")) == FLOOD_SIZE
    # AND the citizen received exactly one acknowledgement, for the ticket it opened
    acknowledgements = [notice for notice in notices if notice["kind"] == "acknowledgement"]
    assert len(acknowledgements) == 1
    assert acknowledgements[0]["ticket_id"] == ticket_id
    assert all(notice["open_id"] == open_id for notice in notices)
