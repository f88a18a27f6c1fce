"""One reliability run: start the local stack with faults, deliver the scenario, drain, redrive, check.

Steps:
1. Start `LocalStack` with `devstack.fault_proxy` between the workers and moto, short visibility
   timeouts (`VISIBILITY_TIMEOUTS`) and schedules off; the stack starts in plain mode.
2. Deliver every citizen's plain-mode pushes, switch the stack to safe mode, deliver the rest,
   while `WeChatFaults` and `WorkerKiller` run.
3. Stop injecting, wait until the queues are empty, count the dead-letter queues, redrive them with
   `devstack.ops.redrive.Redrive`, and wait again.
4. Snapshot the table, S3 and the emulator's sent log straight from moto and check (`checks`).
"""

from __future__ import annotations

import hashlib
import logging
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from devstack.fault_proxy import FaultPlan
from devstack.ops.redrive import Redrive
from devstack.reliability.chaos import WeChatFaults, WorkerKiller
from devstack.reliability.checks import Findings, check, take_snapshot
from devstack.reliability.delivery import Deliverer
from devstack.reliability.scenario import PlannedPush, Scenario, build_scenario
from devstack.runner import LocalStack, LocalStackConfig
from devstack.wechat_emulator import MEDIA_KINDS, SAMPLE_MEDIA

# Visibility timeouts shortened from the template's 180 s and 720 s, so that a batch that failed or
# whose worker was killed comes back within a minute or two. Each one stays above its function's
# timeout, as Lambda requires: a shorter one would deliver records again while their idempotency
# record is still in progress. The function timeouts are twice the template's (30 s and 120 s),
# because a batch of 10 pushes can take over 20 s on a busy 2-core machine, while in Lambda it takes
# well under a second.
FUNCTION_TIMEOUTS = {
    "MessageIngestFunction": 8,
    "TicketWriteFunction": 60,
    "ReplyPushFunction": 60,
    "MediaStoreFunction": 120,
}
VISIBILITY_TIMEOUTS = {"InboundQueue": 72, "OutboundQueue": 72, "MediaQueue": 144}
# Lambda runs a FIFO queue's batches in parallel, up to one per message group; one local poller per
# queue processes about 1 push per second on a busy 2-core machine, too slow for 2,000 pushes.
SQS_POLLERS = 4
# Pushes waiting on the inbound queue before the senders pause (see Deliverer._wait_for_backlog).
MAX_INBOUND_BACKLOG = 80
# reply-push backs off from 30 s (NOTICE_RETRY_BASE_SECONDS) after a transient WeChat error.
FUNCTION_ENVIRONMENT = {"NOTICE_RETRY_BASE_SECONDS": "3", "MEDIA_RETRY_BASE_SECONDS": "3"}
DEAD_LETTER_QUEUES = {
    "InboundDeadLetterQueue": "InboundQueue",
    "MediaDeadLetterQueue": "MediaQueue",
    "OutboundDeadLetterQueue": "OutboundQueue",
}
# Chance per AWS request that a burst of faults starts, by service.
DEFAULT_AWS_RATES = {"dynamodb": 0.01, "s3": 0.03, "sqs": 0.01, "events": 0.03}

logger = logging.getLogger(__name__)


@dataclass
class RunOptions:
    pushes: int
    citizens: int
    seed: int
    kills: int = 6
    aws_rates: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_AWS_RATES))
    wechat_fault_interval: float = 1.0
    sender_threads: int = 24
    settle_timeout: float = 1200.0
    function_timeouts: dict[str, int] = field(default_factory=lambda: dict(FUNCTION_TIMEOUTS))
    visibility_timeouts: dict[str, int] = field(default_factory=lambda: dict(VISIBILITY_TIMEOUTS))


@dataclass
class RunResult:
    options: RunOptions
    scenario: Scenario
    findings: Findings
    aws_faults: dict[str, dict[str, int]]
    wechat_faults: dict[str, int]
    workers_killed: dict[str, int]
    dead_letters_before: dict[str, int]
    dead_letters_after: dict[str, int]
    redriven: dict[str, int]
    started_at: datetime
    duration_seconds: float
    machine: str

    @property
    def pushes(self) -> list[PlannedPush]:
        return self.scenario.pushes


def served_digests() -> dict[str, str]:
    """Return the SHA-256 of the file the emulator serves for each media push kind."""
    return {
        kind: hashlib.sha256((SAMPLE_MEDIA / MEDIA_KINDS[kind][0]).read_bytes()).hexdigest()
        for kind in ("image", "voice", "video")
    }


def machine_description() -> str:
    import os

    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def queue_depths(stack: LocalStack, logical_ids: list[str]) -> dict[str, int]:
    """Return visible plus in-flight messages per queue, read directly from moto."""
    assert stack.stack is not None
    sqs = stack.stack.client("sqs")
    depths = {}
    for logical_id in logical_ids:
        attributes = sqs.get_queue_attributes(
            QueueUrl=stack.stack.ref(logical_id),
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        depths[logical_id] = sum(int(value) for value in attributes.values())
    return depths


def redrive_all(stack: LocalStack) -> dict[str, int]:
    """Move every dead-lettered message back to its source queue with the ops redrive code."""
    assert stack.stack is not None
    moved = {}
    for dead_letter, source in DEAD_LETTER_QUEUES.items():
        report = Redrive(
            stack.stack.client("sqs"), stack.stack.ref(dead_letter), stack.stack.ref(source), wait_seconds=1
        ).run()
        moved[dead_letter] = report.moved
    return moved


def stack_config(options: RunOptions) -> LocalStackConfig:
    return LocalStackConfig(
        port=0,
        emulator_port=0,
        message_mode="plain",
        schedules=False,
        run_schedules_at_start=False,
        function_timeouts=dict(options.function_timeouts),
        sqs_pollers=SQS_POLLERS,
        queue_visibility_timeouts=dict(options.visibility_timeouts),
        function_environment=dict(FUNCTION_ENVIRONMENT),
        aws_fault_plan=FaultPlan(rates=options.aws_rates, seed=options.seed),
    )


def _deliver(stack: LocalStack, scenario: Scenario, threads: int) -> None:
    deliverer = Deliverer(stack, threads, max_backlog=MAX_INBOUND_BACKLOG)
    for mode in ("plain", "safe"):
        if stack.config.message_mode != mode:
            stack.update_parameters(MessageMode=mode)
            stack.config.message_mode = mode
        deliverer.deliver_all(
            {
                open_id: [push for push in pushes if push.mode == mode]
                for open_id, pushes in scenario.pushes_by_citizen.items()
            }
        )


def run(options: RunOptions, inspect: Callable[[LocalStack, Scenario], None] | None = None) -> RunResult:
    """Run the scenario and return the figures.

    `inspect` is called after the checks, while the stack still runs; the tests use it to break an
    invariant on purpose and check again.
    """
    scenario = build_scenario(options.pushes, options.citizens, options.seed)
    started_at = datetime.now(UTC)
    started = time.monotonic()
    with LocalStack(stack_config(options)) as stack:
        assert stack.fault_proxy is not None
        wechat_faults = WeChatFaults(stack, options.seed, options.wechat_fault_interval).start()
        killer = WorkerKiller(stack, options.seed, options.kills).start()
        logger.info(
            "stack ready after %.0f s; delivering %d pushes", time.monotonic() - started, options.pushes
        )
        try:
            _deliver(stack, scenario, options.sender_threads)
            logger.info("delivered after %.0f s", time.monotonic() - started)
            # Let the killer finish its quota on the batches still running.
            deadline = time.monotonic() + 60
            while sum(killer.killed.values()) < options.kills and time.monotonic() < deadline:
                time.sleep(0.5)
        finally:
            killed = killer.stop()
            wechat_taken = wechat_faults.stop()
            stack.fault_proxy.ledger.enabled = False
        aws_faults = stack.fault_proxy.ledger.summary()
        logger.info(
            "faults stopped after %.0f s; waiting for the queues to drain", time.monotonic() - started
        )
        stack.wait_idle(timeout=options.settle_timeout)
        dead_before = queue_depths(stack, list(DEAD_LETTER_QUEUES))
        logger.info("drained after %.0f s; dead letters %s", time.monotonic() - started, dead_before)
        redriven = redrive_all(stack)
        stack.wait_idle(timeout=options.settle_timeout)
        logger.info("redriven %s; idle after %.0f s", redriven, time.monotonic() - started)
        dead_after = queue_depths(stack, list(DEAD_LETTER_QUEUES))
        findings = check(take_snapshot(stack), scenario.pushes, served_digests())
        if inspect is not None:
            inspect(stack, scenario)
    return RunResult(
        options=options,
        scenario=scenario,
        findings=findings,
        aws_faults=aws_faults,
        wechat_faults=wechat_taken,
        workers_killed=killed,
        dead_letters_before=dead_before,
        dead_letters_after=dead_after,
        redriven=redriven,
        started_at=started_at,
        duration_seconds=time.monotonic() - started,
        machine=machine_description(),
    )


def figures(result: RunResult) -> dict[str, Any]:
    """Return the run's figures as one flat mapping (the report and the tests read it)."""
    pushes = result.pushes
    findings = result.findings
    return {
        "pushes": len(pushes),
        "citizens": len(result.scenario.citizens),
        "plain_pushes": sum(1 for push in pushes if push.mode == "plain"),
        "deliveries": sum(push.deliveries for push in pushes),
        "concurrent_deliveries": sum(push.concurrent_deliveries for push in pushes),
        "pushes_never_accepted": sum(1 for push in pushes if not push.accepted),
        "webhook_errors": sum(push.webhook_errors for push in pushes),
        "content_pushes": sum(1 for push in pushes if push.is_content),
        "tickets": findings.tickets,
        "messages": findings.messages,
        "media_files": findings.media_files,
        "notices": findings.notices,
        "notices_by_state": findings.notices_by_state,
        "wechat_sends": findings.wechat_sends,
        "lost": findings.lost,
        "duplicated": findings.duplicated,
        "lost_messages": findings.lost_messages,
        "duplicated_messages": findings.duplicated_messages,
        "lost_media": findings.lost_media,
        "lost_notices": findings.lost_notices,
        "duplicated_notices": findings.duplicated_notices,
        "resent_after_unknown": findings.resent_after_unknown,
        "undeliverable": findings.undeliverable,
        "dead_letters_before_redrive": sum(result.dead_letters_before.values()),
        "dead_letters_after_redrive": sum(result.dead_letters_after.values()),
        "workers_killed": sum(result.workers_killed.values()),
        "duration_seconds": round(result.duration_seconds, 1),
        "seed": result.options.seed,
    }
