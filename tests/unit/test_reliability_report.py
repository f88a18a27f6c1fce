"""The sharded reliability report adds up its shards, and one shard's loss fails the whole run."""

from __future__ import annotations

from datetime import UTC, datetime

from devstack.reliability.checks import Findings
from devstack.reliability.harness import RunOptions, RunResult
from devstack.reliability.report import render_shards
from devstack.reliability.scenario import build_scenario


def _shard(seed: int, lost_messages: int = 0) -> RunResult:
    scenario = build_scenario(pushes=20, citizens=4, seed=seed)
    for push in scenario.pushes:
        push.accepted = True
    return RunResult(
        options=RunOptions(pushes=20, citizens=4, seed=seed),
        scenario=scenario,
        findings=Findings(tickets=4, messages=12, lost_messages=lost_messages),
        aws_faults={"dynamodb": {"throttle": 2}},
        wechat_faults={"message/custom/send: HTTP 500": 1},
        workers_killed={"TicketWriteFunction": 1},
        dead_letters_before={"InboundDeadLetterQueue": 0},
        dead_letters_after={"InboundDeadLetterQueue": 0},
        redriven={},
        started_at=datetime(2026, 12, 4, 12, 0, tzinfo=UTC),
        duration_seconds=60.0,
        machine="test machine",
    )


def _total(report: str, name: str) -> str:
    totals = report[report.index("## Totals") : report.index("## Shard 1")]
    row = next(line for line in totals.splitlines() if line.startswith(f"| {name} |"))
    return row.split("|")[2].strip()


def test_render_shards_adds_up_the_shards() -> None:
    # GIVEN two clean shards of 20 pushes from 4 citizens each
    shards = [_shard(2026), _shard(2027)]

    # WHEN the report is rendered
    report = render_shards(shards, "python -m devstack.reliability --shards 2")

    # THEN the totals are the sums and each shard has its own section
    assert _total(report, "outcome") == "PASS"
    assert _total(report, "pushes") == "40"
    assert _total(report, "citizens") == "8"
    assert _total(report, "tickets") == "8"
    assert _total(report, "AWS faults: dynamodb throttle") == "4"
    assert _total(report, "workers killed") == "2"
    assert "## Shard 2 (seed 2027)" in report


def test_render_shards_fails_when_one_shard_lost_a_message() -> None:
    # GIVEN two shards, the second of which lost a message
    shards = [_shard(2026), _shard(2027, lost_messages=1)]

    # WHEN the report is rendered
    report = render_shards(shards, "python -m devstack.reliability --shards 2")

    # THEN the whole run fails and the loss is in the totals
    assert _total(report, "outcome") == "FAIL"
    assert _total(report, "lost") == "1"
