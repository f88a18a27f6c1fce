"""ops knowledge-import: a file or the starter set into TicketsTable, all or nothing, idempotent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from devstack.ops.cli import main
from devstack.ops.knowledge_import import LOCAL_SEED_ACTOR, seed_local_stack
from devstack.resources import Stack
from intake.keys import KNOWLEDGE_PK
from intake.knowledge_base import STARTER_FILE
from tests.unit.ops_support import deploy_outputs

CSV_HEADER = "entry_id,question,keywords,synonyms,answer,category,department,valid_from,valid_to,status\n"


def knowledge_items(stack: Stack) -> list[dict[str, Any]]:
    table = stack.session.resource("dynamodb").Table(stack.ref("TicketsTable"))
    return table.query(KeyConditionExpression="PK = :pk", ExpressionAttributeValues={":pk": KNOWLEDGE_PK})[
        "Items"
    ]


def run(stack: Stack, *arguments: str) -> int:
    return main(["--stack-name", deploy_outputs(stack), "knowledge-import", *arguments])


def test_ops_knowledge_import_starter_twice_writes_once(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the shipped starter set
    starter_count = len(json.loads(STARTER_FILE.read_text(encoding="utf-8")))

    # WHEN it is imported twice
    first_status = run(stack, "--starter")
    first = json.loads(capsys.readouterr().out)
    items_after_first = knowledge_items(stack)
    second_status = run(stack, "--starter")
    second = json.loads(capsys.readouterr().out)

    # THEN the first run creates every entry with one audit item each, and the second changes nothing
    assert (first_status, second_status) == (0, 0)
    assert len(first["created"]) == starter_count
    assert second == {"created": [], "updated": [], "unchanged": first["created"]}
    assert knowledge_items(stack) == items_after_first
    assert sum(item["item_type"] == "knowledge_audit" for item in items_after_first) == starter_count


def test_ops_knowledge_import_records_the_caller_as_actor(stack: Stack, tmp_path: Path) -> None:
    # GIVEN a CSV file with one entry
    path = tmp_path / "kb.csv"
    path.write_text(
        CSV_HEADER + "kb-9001,护照怎么办理,护照,办护照要多久|护照在哪里办,示例答复。,,gaj,,,active\n",
        encoding="utf-8",
    )

    # WHEN it is imported
    status = run(stack, str(path))

    # THEN the entry is stored with its lists split at | and the STS identity as the actor
    entry = next(item for item in knowledge_items(stack) if item["SK"] == "ENTRY#kb-9001")
    assert status == 0
    assert entry["synonyms"] == ["办护照要多久", "护照在哪里办"]
    assert entry["updated_by"].startswith("arn:aws:sts::") or entry["updated_by"].startswith("arn:aws:iam::")


def test_ops_import_bad_row_writes_nothing(
    stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a CSV file whose second row has no answer and an unknown department
    path = tmp_path / "kb.csv"
    path.write_text(
        CSV_HEADER
        + "kb-9001,护照怎么办理,护照,,示例答复。,,gaj,,,active\n"
        + "kb-9002,驾照怎么换,驾照,,,,no_such_dept,,,active\n",
        encoding="utf-8",
    )

    # WHEN it is imported
    status = run(stack, str(path))

    # THEN it fails naming row 2 and nothing, not even the valid first row, is written
    assert status == 1
    assert "第 2 行" in capsys.readouterr().err
    assert knowledge_items(stack) == []


def test_ops_knowledge_import_of_a_missing_file_fails(stack: Stack, tmp_path: Path) -> None:
    # GIVEN / WHEN a file that does not exist is imported
    status = run(stack, str(tmp_path / "missing.json"))

    # THEN the command fails and nothing is written
    assert status == 1
    assert knowledge_items(stack) == []


def test_seed_local_stack_loads_the_starter_set(stack: Stack) -> None:
    # GIVEN a fresh stack
    # WHEN the local stack's seed step runs
    result = seed_local_stack(stack)

    # THEN every starter entry is stored as an example, with the seed as the actor
    entries = [item for item in knowledge_items(stack) if item["item_type"] == "knowledge_entry"]
    assert result is not None
    assert len(entries) == len(result.created)
    assert all(item["example"] and item["updated_by"] == LOCAL_SEED_ACTOR for item in entries)


def entry_item(stack: Stack, entry_id: str) -> dict[str, Any]:
    return next(item for item in knowledge_items(stack) if item["SK"] == f"ENTRY#{entry_id}")


def test_ops_knowledge_import_starter_keeps_city_entries(
    stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a live base where the city rewrote the answer of kb-0001 and retired kb-0004
    path = tmp_path / "kb.csv"
    path.write_text(
        CSV_HEADER
        + "kb-0001,社保卡怎么办理,社保卡,,本市社保卡改到各镇街服务中心办理。,,,,,active\n"
        + "kb-0004,住房公积金怎么提取,公积金,,公积金提取请见新办法。,,,,,retired\n",
        encoding="utf-8",
    )
    assert run(stack, str(path)) == 0
    capsys.readouterr()
    starter_count = len(json.loads(STARTER_FILE.read_text(encoding="utf-8")))

    # WHEN the starter set is imported
    status = run(stack, "--starter")
    result = json.loads(capsys.readouterr().out)

    # THEN only the missing entries are created, and the city's answer and retirement stay
    assert status == 0
    assert len(result["created"]) == starter_count - 2
    assert result["updated"] == []
    assert sorted(result["unchanged"]) == ["kb-0001", "kb-0004"]
    assert entry_item(stack, "kb-0001")["answer"] == "本市社保卡改到各镇街服务中心办理。"
    assert entry_item(stack, "kb-0004")["status"] == "retired"


def test_ops_knowledge_import_without_status_keeps_status(
    stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a retired entry
    first = tmp_path / "first.csv"
    first.write_text(CSV_HEADER + "kb-9001,护照怎么办理,护照,,示例答复。,,gaj,,,retired\n", encoding="utf-8")
    assert run(stack, str(first)) == 0
    capsys.readouterr()

    # WHEN a CSV without a status column changes its answer and adds a new entry
    second = tmp_path / "second.csv"
    second.write_text(
        "entry_id,question,keywords,answer\n"
        + "kb-9001,护照怎么办理,护照,新的示例答复。\n"
        + "kb-9002,驾驶证怎么换证,驾驶证,示例答复。\n",
        encoding="utf-8",
    )
    status = run(stack, str(second))
    result = json.loads(capsys.readouterr().out)

    # THEN the answer changes but the entry stays retired, and the new entry is active
    assert status == 0
    assert (result["created"], result["updated"]) == (["kb-9002"], ["kb-9001"])
    assert entry_item(stack, "kb-9001")["answer"] == "新的示例答复。"
    assert entry_item(stack, "kb-9001")["status"] == "retired"
    assert entry_item(stack, "kb-9002")["status"] == "active"
