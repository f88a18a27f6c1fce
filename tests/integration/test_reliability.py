"""A reduced reliability run: the harness's faults and checks on 120 pushes from 24 citizens.

The full run (2,000 pushes from 200 citizens) writes RELIABILITY.md. This one keeps the same fault
kinds and kills at least one worker of each SQS function, so that it finishes in under 3 minutes.
After the clean check it breaks two invariants on purpose (one stored message deleted, one notice sent twice
through the emulator) to show that the checks find them.
"""

from __future__ import annotations

from typing import Any

import pytest

from devstack.reliability.checks import Findings, check, take_snapshot
from devstack.reliability.harness import RunOptions, RunResult, figures, run, served_digests
from devstack.reliability.scenario import Scenario
from devstack.runner import LocalStack

pytestmark = pytest.mark.integration

# Shorter than the full run's, so that a killed batch comes back within 24 s and the run stays under
# 3 minutes; 120 pushes keep each batch well inside these timeouts.
FUNCTION_TIMEOUTS = {"MessageIngestFunction": 8, "TicketWriteFunction": 20, "ReplyPushFunction": 20,
                     "MediaStoreFunction": 40}  # fmt: skip
VISIBILITY_TIMEOUTS = {"InboundQueue": 24, "OutboundQueue": 24, "MediaQueue": 48}


def _break_invariants(stack: LocalStack, scenario: Scenario, broken: list[Findings]) -> None:
    """Delete one stored text message and send one delivered notice a second time, then check again."""
    assert stack.stack is not None
    assert stack.emulator is not None
    snapshot = take_snapshot(stack)
    text = next(item for item in snapshot.messages() if item["msg_type"] == "text")
    stack.stack.client("dynamodb").delete_item(
        TableName=stack.stack.ref("TicketsTable"), Key={"PK": {"S": text["PK"]}, "SK": {"S": text["SK"]}}
    )
    sent: dict[str, Any] = next(
        entry for entry in stack.emulator.sent if entry["api"] == "message/custom/send"
    )
    stack.emulator.state.record_interaction(sent["touser"])
    stack.emulator.state.send_custom(sent["payload"])
    broken.append(check(take_snapshot(stack), scenario.pushes, served_digests()))


@pytest.fixture(scope="module")
def reliability_run() -> tuple[RunResult, Findings]:
    broken: list[Findings] = []
    result = run(
        RunOptions(
            pushes=120,
            citizens=24,
            seed=7,
            kills=3,
            settle_timeout=150,
            function_timeouts=FUNCTION_TIMEOUTS,
            visibility_timeouts=VISIBILITY_TIMEOUTS,
        ),
        inspect=lambda stack, scenario: _break_invariants(stack, scenario, broken),
    )
    return result, broken[0]


def test_reliability_reduced_run_is_clean(
    reliability_run: tuple[RunResult, Findings],
) -> None:
    # GIVEN a reduced run with AWS faults, WeChat faults and killed workers
    result, _ = reliability_run

    # WHEN its figures are read
    values = figures(result)

    # THEN faults of every kind were injected and a worker of each SQS function was killed
    assert values["workers_killed"] >= 3
    assert set(result.workers_killed) == {"TicketWriteFunction", "MediaStoreFunction", "ReplyPushFunction"}
    assert sum(sum(kinds.values()) for kinds in result.aws_faults.values()) > 0
    assert sum(result.wechat_faults.values()) > 0
    assert values["concurrent_deliveries"] > 0

    # AND every accepted push landed exactly once, with nothing left in the dead-letter queues
    assert values["pushes_never_accepted"] == 0
    assert values["lost"] == 0, result.findings.problems
    assert values["duplicated"] == 0, result.findings.problems
    assert values["dead_letters_after_redrive"] == 0


def test_reliability_checks_find_broken_invariants(
    reliability_run: tuple[RunResult, Findings],
) -> None:
    # GIVEN the same run after one stored message was deleted and one notice was sent twice
    _, broken = reliability_run

    # WHEN the invariants were checked again

    # THEN the checks report exactly that
    assert broken.lost_messages == 1
    assert broken.duplicated_notices == 1
    assert broken.lost == 1
    assert broken.duplicated == 1
