"""The 办事指南 menu: KB:<entry_id> and MENU_FAQ clicks in ticket-write, and the publish-time entry check."""

from __future__ import annotations

# The driver fixtures are imported from test_ticket_write, so their names reappear as test arguments.
# ruff: noqa: F811
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.ops.cli import main
from devstack.resources import Stack
from devstack.wechat_emulator import WeChatEmulator, start_emulator
from intake.knowledge_base import KnowledgeRepository, starter_rows
from intake.workflow_config import get_workflow_config
from tests.unit.ops_support import deploy_outputs
from tests.unit.test_ticket_write import (  # noqa: F401 - fixtures
    BASE_TIME,
    RecordingEventsClient,
    TicketWriteDriver,
    driver,
    events,
    open_id_of,
    pinned_clock,
)


@pytest.fixture
def knowledge(stack: Stack) -> KnowledgeRepository:
    """The stack's knowledge base with the shipped starter entries."""
    table = stack.session.resource("dynamodb").Table(stack.ref("TicketsTable"))
    repository = KnowledgeRepository(table)
    repository.upsert(starter_rows(get_workflow_config()), actor="test-setup")
    return repository


@pytest.fixture
def emulator() -> Iterator[WeChatEmulator]:
    with start_emulator(port=0) as running:
        yield running


def click(driver: TicketWriteDriver, key: str) -> list[str]:
    return driver.send(driver.event(open_id_of(40), "CLICK", BASE_TIME, EventKey=key))


def test_menu_guide_click_replies_with_answer(
    driver: TicketWriteDriver, events: RecordingEventsClient, knowledge: KnowledgeRepository
) -> None:
    # GIVEN the starter knowledge entries

    # WHEN a citizen taps the 社保卡办理 guide button
    failures = click(driver, "KB:kb-0001")

    # THEN the reply is that entry's answer, and no ticket is opened
    assert failures == []
    notices = events.details("CitizenNoticeRequested")
    assert [notice["text"] for notice in notices] == [knowledge.get("kb-0001").answer]
    assert notices[0]["kind"] == "self_service"
    assert driver.tickets() == []


@pytest.mark.parametrize("retire", [False, True], ids=["unknown-entry", "retired-entry"])
def test_menu_guide_unserved_entry_gets_fallback(
    driver: TicketWriteDriver,
    events: RecordingEventsClient,
    knowledge: KnowledgeRepository,
    caplog: pytest.LogCaptureFixture,
    retire: bool,
) -> None:
    # GIVEN a guide button whose entry does not exist, or was retired
    entry_id = "kb-0002" if retire else "kb-9999"
    if retire:
        knowledge.retire(entry_id, actor="editor-chen")

    # WHEN a citizen taps it
    failures = click(driver, f"KB:{entry_id}")

    # THEN the citizen gets a polite fallback, the miss is logged with the entry id, and no ticket opens
    assert failures == []
    notices = events.details("CitizenNoticeRequested")
    assert [notice["text"] for notice in notices] == [
        "抱歉，该办事指南暂时无法查看。您可以直接发送问题，我们会尽快答复。"
    ]
    misses = [
        record
        for record in caplog.records
        if record.getMessage() == "guide button names no active knowledge entry"
    ]
    assert [getattr(record, "entry_id", None) for record in misses] == [entry_id]
    assert driver.tickets() == []


def test_menu_faq_lists_questions(
    driver: TicketWriteDriver, events: RecordingEventsClient, knowledge: KnowledgeRepository
) -> None:
    # GIVEN the starter knowledge entries

    # WHEN a citizen taps 常见问题
    click(driver, "MENU_FAQ")

    # THEN the reply lists the first questions by entry id, numbered, and opens no ticket
    (notice,) = events.details("CitizenNoticeRequested")
    lines = notice["text"].splitlines()
    assert lines[0].startswith("常见问题")
    assert lines[1] == "1. 社保卡怎么办理"
    assert len(lines) == 9
    assert driver.tickets() == []


def publish(stack: Stack, emulator: WeChatEmulator, path: Path) -> int:
    stack_name = deploy_outputs(stack)
    return main(["--stack-name", stack_name, "menu", "--file", str(path), "--wechat-api-base", emulator.url])


def test_menu_publish_rejects_unserved_guide_key(
    stack: Stack,
    emulator: WeChatEmulator,
    knowledge: KnowledgeRepository,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN a menu whose guide buttons name a retired entry and one that does not exist
    knowledge.retire("kb-0002", actor="editor-chen")
    document = {
        "version": "2026.12.2",
        "button": [
            {"type": "click", "name": "我要反映", "key": "MENU_REPORT"},
            {"type": "click", "name": "医保报销", "key": "KB:kb-0002"},
            {"type": "click", "name": "不存在", "key": "KB:kb-9999"},
        ],
    }
    path = tmp_path / "menu.json"
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")

    # WHEN the operator publishes it
    status = publish(stack, emulator, path)

    # THEN the command fails naming both keys, and WeChat was not called
    assert status == 1
    error = capsys.readouterr().err
    assert "KB:kb-0002, KB:kb-9999" in error
    assert [call for call in emulator.calls if call["api"] == "menu/create"] == []


def test_menu_check_only_rejects_malformed_guide_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a guide key that is no entry id
    document = {"version": "1", "button": [{"type": "click", "name": "指南", "key": "KB:社保"}]}
    path = tmp_path / "menu.json"
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")

    # WHEN the file is checked
    status = main(["menu", "--file", str(path), "--check-only"])

    # THEN it is rejected as a key ticket-write does not handle
    assert status == 1
    assert "click keys that ticket-write does not handle: KB:社保" in capsys.readouterr().err
