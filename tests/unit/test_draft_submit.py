"""draft-submit: the scheduled sweep submits drafts whose citizen went silent, and only those."""

from __future__ import annotations

# The driver fixtures are imported from test_ticket_write, so their names reappear as test arguments.
# ruff: noqa: F811
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from tests.unit.test_ticket_write import (  # noqa: F401 - fixtures
    BASE_TIME,
    RecordingEventsClient,
    TicketWriteDriver,
    driver,
    events,
    open_id_of,
    pinned_clock,
)

WINDOW = 600


@pytest.fixture
def sweeper(load_function: Callable[..., ModuleType], driver: TicketWriteDriver) -> ModuleType:
    return load_function("DraftSubmitFunction")


def scheduled_event() -> dict[str, Any]:
    return {
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2026-12-04T02:20:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/draft-submit-every-minute"],
        "detail": {},
    }


def test_draft_submit_sweeps_only_silent_drafts(
    driver: TicketWriteDriver,
    events: RecordingEventsClient,
    sweeper: ModuleType,
    pinned_clock: Callable[[float], None],
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN one draft silent for longer than the window and one with a recent message
    driver.send(driver.text(open_id_of(1), "安静的草稿", BASE_TIME))
    driver.send(driver.text(open_id_of(2), "还在写的草稿", BASE_TIME + 500))
    recorder = RecordingEventsClient(sweeper.events_client)
    monkeypatch.setattr(sweeper, "events_client", recorder)
    pinned_clock(BASE_TIME + WINDOW + 60)

    # WHEN the scheduled sweep runs
    result = sweeper.lambda_handler(scheduled_event(), lambda_context)

    # THEN only the silent draft is submitted
    assert result == {"submitted": 1, "auto_closed": 0, "published": 1}
    assert driver.ticket("DG20261204-0001")["status"] == "submitted"
    assert driver.ticket("DG20261204-0002")["status"] == "collecting"
    # AND its change and the citizen's notice are published
    assert [e["change"] for e in recorder.details("TicketChanged")] == ["status_changed"]
    assert [n["notice_id"] for n in recorder.details("CitizenNoticeRequested")] == [
        "DG20261204-0001:submitted"
    ]


def test_draft_submit_publish_failure_kept_for_next_run(
    driver: TicketWriteDriver,
    events: RecordingEventsClient,
    sweeper: ModuleType,
    pinned_clock: Callable[[float], None],
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN a silent draft and EventBridge failing the sweep's first publish
    driver.send(driver.text(open_id_of(3), "安静的草稿", BASE_TIME))
    recorder = RecordingEventsClient(sweeper.events_client, fail_calls={1})
    monkeypatch.setattr(sweeper, "events_client", recorder)
    pinned_clock(BASE_TIME + WINDOW + 60)

    # WHEN the sweep runs, fails, and runs again a minute later
    with pytest.raises(Exception, match="injected failure"):
        sweeper.lambda_handler(scheduled_event(), lambda_context)
    pinned_clock(BASE_TIME + WINDOW + 120)
    result = sweeper.lambda_handler(scheduled_event(), lambda_context)

    # THEN the draft was submitted once and its events were published by the second run
    assert driver.ticket("DG20261204-0001")["status"] == "submitted"
    assert result == {"submitted": 0, "auto_closed": 0, "published": 1}
    assert [n["notice_id"] for n in recorder.details("CitizenNoticeRequested")] == [
        "DG20261204-0001:submitted"
    ]


def test_draft_submit_skips_draft_changed_after_read(
    driver: TicketWriteDriver, events: RecordingEventsClient, sweeper: ModuleType
) -> None:
    # GIVEN a draft the sweep read, then a message joined it before the sweep wrote
    driver.send(driver.text(open_id_of(4), "草稿", BASE_TIME))
    seen = sweeper.repository.get_ticket("DG20261204-0001")
    driver.send(driver.text(open_id_of(4), "又补充一句", BASE_TIME + 100))

    # WHEN the sweep submits what it read
    submitted = sweeper.submit_silent_draft(seen, BASE_TIME + WINDOW + 60)

    # THEN the submission is skipped and the draft keeps collecting
    assert submitted is False
    assert driver.ticket("DG20261204-0001")["status"] == "collecting"
