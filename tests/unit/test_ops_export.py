"""ops export: tickets created in a range of China Standard Time days, as CSV or JSON, without OpenIDs by default.

The tickets are written by ticket-write itself (through `TicketWriteDriver`), so the export reads real items.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from devstack.ops.cli import main
from devstack.resources import Stack
from intake import clock
from tests.unit.ops_support import deploy_outputs
from tests.unit.test_ticket_write import BASE_TIME, TicketWriteDriver, open_id_of

# BASE_TIME is 2026-12-04 10:00 China Standard Time.
HOUR = 3600
CREATED = {
    "day_before": BASE_TIME - 24 * HOUR,  # 2026-12-03 10:00
    "morning": BASE_TIME,  # 2026-12-04 10:00
    "last_minute": BASE_TIME + 14 * HOUR - 60,  # 2026-12-04 23:59
    "next_midnight": BASE_TIME + 14 * HOUR,  # 2026-12-05 00:00
}


@pytest.fixture
def tickets(
    stack: Stack,
    load_function: Callable[..., ModuleType],
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, str]:
    """Create one ticket per entry of CREATED, each by another citizen; return ticket id by name."""
    now = {"at": float(BASE_TIME)}
    monkeypatch.setattr(clock, "now", lambda: now["at"])
    driver = TicketWriteDriver(stack, load_function("TicketWriteFunction"), lambda_context)
    ids = {}
    for index, (name, at) in enumerate(CREATED.items()):
        now["at"] = float(at)
        failed = driver.send(driver.text(open_id_of(index), "路灯坏了", at))
        assert failed == []
        ids[name] = next(
            ticket["ticket_id"] for ticket in driver.tickets() if ticket["open_id"] == open_id_of(index)
        )
    return ids


def export(stack: Stack, *arguments: str) -> int:
    return main(["--stack-name", deploy_outputs(stack), "export", *arguments])


def test_export_csv_day_range_without_openid(
    stack: Stack, tickets: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN tickets created on 12-03, twice on 12-04 (10:00 and 23:59) and at 00:00 on 12-05

    # WHEN the operator exports 2026-12-04 as CSV
    status = export(stack, "--from", "2026-12-04", "--to", "2026-12-04")

    # THEN exactly the two tickets of that day are listed, oldest first, and no OpenID appears
    output = capsys.readouterr().out
    rows = list(csv.DictReader(io.StringIO(output)))
    assert status == 0
    assert [row["ticket_id"] for row in rows] == [tickets["morning"], tickets["last_minute"]]
    assert "open_id" not in rows[0]
    assert rows[0]["status"] == "collecting"
    for index in range(len(CREATED)):
        assert open_id_of(index) not in output


def test_export_json_with_openid_to_file(stack: Stack, tickets: dict[str, str], tmp_path: Any) -> None:
    # GIVEN the same tickets

    # WHEN the operator exports 12-03 to 12-05 as JSON with OpenIDs into a file
    path = tmp_path / "tickets.json"
    status = export(
        stack,
        "--from",
        "2026-12-03",
        "--to",
        "2026-12-05",
        "--format",
        "json",
        "--include-openid",
        "--output",
        str(path),
    )

    # THEN all four tickets are in the file with their OpenIDs
    rows = json.loads(path.read_text(encoding="utf-8"))
    assert status == 0
    assert [row["ticket_id"] for row in rows] == [tickets[name] for name in CREATED]
    assert [row["open_id"] for row in rows] == [open_id_of(index) for index in range(len(CREATED))]
    assert rows[0]["message_count"] == 1


def test_export_reversed_range_rejected(stack: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN an empty stack

    # WHEN the operator swaps --from and --to
    status = export(stack, "--from", "2026-12-05", "--to", "2026-12-04")

    # THEN the command fails naming both dates
    assert status == 1
    assert "--to 2026-12-04 is before --from 2026-12-05" in capsys.readouterr().err


def test_export_invalid_date_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a date that is not YYYY-MM-DD

    # WHEN the operator uses it
    with pytest.raises(SystemExit) as exit_info:
        main(["--stack-name", "any", "export", "--from", "04.12.2026", "--to", "2026-12-04"])

    # THEN argparse rejects the command line with status 2
    assert exit_info.value.code == 2
    assert "--from: invalid fromisoformat value" in capsys.readouterr().err
