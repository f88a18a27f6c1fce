"""Ticket numbers: per-day sequence in China Standard Time, unique under concurrent allocation."""

from __future__ import annotations

import functools
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from moto.dynamodb.responses import DynamoHandler

from devstack.resources import Stack
from intake.ticket_numbers import TicketNumberAllocator, parse_ticket_number

# 2026-12-04 23:59:00 China Standard Time (15:59 UTC).
LATE_EVENING = 1_796_399_940


def allocator(stack: Stack) -> TicketNumberAllocator:
    table = stack.session.resource("dynamodb").Table(stack.ref("TicketsTable"))
    return TicketNumberAllocator(table, "DG")


def test_ticket_numbers_increment_per_china_day(stack: Stack) -> None:
    # GIVEN an allocator
    numbers = allocator(stack)

    # WHEN two numbers are taken before midnight in China and one after
    first = numbers.allocate(LATE_EVENING)
    second = numbers.allocate(LATE_EVENING + 30)
    next_day = numbers.allocate(LATE_EVENING + 90)

    # THEN the sequence counts up within the day and restarts on the next China day
    assert first == "DG20261204-0001"
    assert second == "DG20261204-0002"
    assert next_day == "DG20261205-0001"


@pytest.fixture
def atomic_update_item(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make moto's UpdateItem atomic per call, as DynamoDB's is; moto's in-process backend has no lock.

    Only single calls become atomic, so an allocator that read and then wrote the counter in two calls
    would still hand out duplicates here.
    """
    lock = threading.Lock()
    original = DynamoHandler.update_item

    # The lock covers the whole request, because moto builds the response from the shared item object.
    @functools.wraps(original)
    def locked(self: DynamoHandler, *args: Any, **kwargs: Any) -> Any:
        with lock:
            return original(self, *args, **kwargs)

    monkeypatch.setattr(DynamoHandler, "update_item", locked)


def test_ticket_numbers_unique_under_concurrency(stack: Stack, atomic_update_item: None) -> None:
    # GIVEN an allocator shared by 8 threads
    numbers = allocator(stack)

    # WHEN 80 numbers are taken concurrently
    with ThreadPoolExecutor(max_workers=8) as pool:
        taken = list(pool.map(lambda _: numbers.allocate(LATE_EVENING), range(80)))

    # THEN all are distinct and form the sequence 1..80
    assert len(set(taken)) == 80
    assert sorted(taken) == [f"DG20261204-{index:04d}" for index in range(1, 81)]


def test_ticket_numbers_parse_alone_only() -> None:
    # GIVEN texts with and without a lone ticket number
    # WHEN they are parsed
    # THEN only a whole number (any case, surrounding spaces) is recognised
    assert parse_ticket_number(" dg20261204-0001 ", "DG") == "DG20261204-0001"
    assert parse_ticket_number("DG20261204-12345", "DG") == "DG20261204-12345"
    assert parse_ticket_number("工单 DG20261204-0001 怎么样了", "DG") is None
    assert parse_ticket_number("XX20261204-0001", "DG") is None
