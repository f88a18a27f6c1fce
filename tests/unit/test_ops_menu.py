"""ops menu: the custom menu reaches the (emulated) WeChat API; bad menu files are rejected before any call."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.ops.cli import main
from devstack.resources import Stack
from devstack.template import ROOT
from devstack.wechat_emulator import Fault, WeChatEmulator, start_emulator
from tests.unit.ops_support import deploy_outputs

EXAMPLE_MENU = ROOT / "events" / "menu.json"


@pytest.fixture
def emulator() -> Iterator[WeChatEmulator]:
    with start_emulator(port=0) as running:
        yield running


def menu_calls(emulator: WeChatEmulator) -> list[dict]:
    return [call for call in emulator.calls if call["api"] == "menu/create"]


def write_menu(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "menu.json"
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    return path


def publish(stack: Stack, emulator: WeChatEmulator, path: Path) -> int:
    stack_name = deploy_outputs(stack)
    return main(["--stack-name", stack_name, "menu", "--file", str(path), "--wechat-api-base", emulator.url])


def seed_knowledge(stack: Stack) -> None:
    """Import the starter knowledge entries, which the example menu's 办事指南 buttons name."""
    from intake.knowledge_base import KnowledgeRepository, starter_rows
    from intake.workflow_config import get_workflow_config

    table = stack.session.resource("dynamodb").Table(stack.ref("TicketsTable"))
    KnowledgeRepository(table).upsert(starter_rows(get_workflow_config()), actor="test-setup")


def test_menu_example_reaches_wechat(
    stack: Stack, emulator: WeChatEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the example menu in events/menu.json and the starter knowledge entries it names
    seed_knowledge(stack)
    document = json.loads(EXAMPLE_MENU.read_text(encoding="utf-8"))

    # WHEN the operator publishes it
    status = publish(stack, emulator, EXAMPLE_MENU)

    # THEN WeChat holds exactly that menu (without the file's version), sent with the shared access token
    assert status == 0
    assert emulator.state.menu == {"button": document["button"]}
    assert json.loads(capsys.readouterr().out)["version"] == document["version"]
    assert len(menu_calls(emulator)) == 1
    assert (
        stack.session.resource("dynamodb")
        .Table(stack.ref("TicketsTable"))
        .get_item(Key={"PK": "WECHAT_TOKEN#wx134c8103faa5a59e", "SK": "TOKEN"})
        .get("Item")
        is not None
    )


def test_menu_example_uses_ticket_write_keys() -> None:
    # GIVEN the click keys that ticket-write handles
    from intake.conversation import MENU_ACTIONS

    # WHEN the example menu's click keys are read
    document = json.loads(EXAMPLE_MENU.read_text(encoding="utf-8"))
    keys = {
        button["key"]
        for top in document["button"]
        for button in [top, *top.get("sub_button", [])]
        if button.get("type") == "click"
    }

    # THEN each is one of them or names a knowledge entry, and 我要反映 and 查询进度 are on the top level
    assert {key for key in keys if not key.startswith("KB:")} <= set(MENU_ACTIONS)
    assert [button["name"] for button in document["button"][:2]] == ["我要反映", "查询进度"]


@pytest.mark.parametrize(
    ("content", "expected_error"),
    [
        (
            '{"button": [{"type": "click", "name": "我要反映", "key": "MENU_REPORT"}',
            "is not valid JSON (line 1",
        ),
        (
            {"button": [{"type": "click", "name": "我要反映", "key": "MENU_UNKNOWN"}]},
            "click keys that ticket-write does not handle: MENU_UNKNOWN",
        ),
        (
            {
                "button": [
                    {"type": "click", "name": f"按钮{index}", "key": "MENU_QUERY"} for index in range(4)
                ]
            },
            "button: List should have at most 3 items",
        ),
        (
            {"button": [{"type": "click", "name": "我要反映问题和建议", "key": "MENU_REPORT"}]},
            "is 27 bytes in UTF-8, at most 16",
        ),
        ({"button": [{"type": "view", "name": "指南"}]}, "a view button needs url"),
        ({"button": [{"name": "指南"}]}, "a button without sub_button needs a type"),
        ({"menu": []}, "button: Field required"),
    ],
    ids=["not-json", "unknown-key", "four-buttons", "long-name", "view-without-url", "no-type", "no-button"],
)
def test_menu_invalid_file_rejected(
    stack: Stack,
    emulator: WeChatEmulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: object,
    expected_error: str,
) -> None:
    # GIVEN a menu file that breaks WeChat's or ticket-write's rules
    path = tmp_path / "menu.json"
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path = write_menu(tmp_path, content)

    # WHEN the operator publishes it
    status = publish(stack, emulator, path)

    # THEN the command fails with the reason and WeChat was not called
    assert status == 1
    assert expected_error in capsys.readouterr().err
    assert menu_calls(emulator) == []


def test_menu_check_only_calls_nothing(emulator: WeChatEmulator) -> None:
    # GIVEN the example menu

    # WHEN it is only checked (no stack named)
    status = main(["menu", "--file", str(EXAMPLE_MENU), "--check-only"])

    # THEN it passes without any WeChat call
    assert status == 0
    assert emulator.calls == []


def test_menu_wechat_error_reported(
    stack: Stack, emulator: WeChatEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN WeChat rejects the next menu call
    seed_knowledge(stack)
    emulator.state.add_fault(Fault(api="menu/create", errcode=40018))

    # WHEN the operator publishes the example menu
    status = publish(stack, emulator, EXAMPLE_MENU)

    # THEN the command fails with WeChat's errcode
    assert status == 1
    assert "errcode 40018" in capsys.readouterr().err
