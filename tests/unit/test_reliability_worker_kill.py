"""A function worker SIGKILLed in the middle of an SQS batch: the batch stays on the queue, a new worker starts."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

from devstack.event_sources import failed_message_ids
from devstack.function_pool import FunctionPool, Invocation, InvocationLog
from devstack.template import FunctionSpec

HANDLER = """
import time


def lambda_handler(event, context):
    time.sleep(float(event.get("sleep", 0)))
    return {"batchItemFailures": []}
"""


def _pool(tmp_path: Path) -> FunctionPool:
    (tmp_path / "app.py").write_text(HANDLER, encoding="utf-8")
    spec = FunctionSpec(
        logical_id="SleepyFunction",
        code_uri=tmp_path,
        handler="app.lambda_handler",
        timeout=30,
        memory_size=128,
        environment={},
        layers=[],
        events={},
    )
    return FunctionPool(spec, {"PATH": os.environ.get("PATH", "")}, 1, InvocationLog())


def _kill_when_busy(pool: FunctionPool) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pids = pool.busy_pids()
        if pids:
            os.kill(pids[0], signal.SIGKILL)
            return
        time.sleep(0.02)
    raise AssertionError("the worker never became busy")


def test_worker_kill_fails_whole_batch_and_restarts(tmp_path: Path) -> None:
    # GIVEN a pool whose worker is handling a batch of two SQS records
    pool = _pool(tmp_path)
    records = [{"messageId": "m1"}, {"messageId": "m2"}]
    outcome: list[Invocation] = []
    try:
        runner = threading.Thread(
            target=lambda: outcome.append(pool.invoke({"sleep": 10, "Records": records}, "sqs"))
        )
        runner.start()

        # WHEN the worker is SIGKILLed in the middle of the batch
        _kill_when_busy(pool)
        runner.join(timeout=30)

        # THEN the invocation fails as Lambda reports a crashed runtime, and no record is deleted
        assert outcome[0].ok is False
        assert outcome[0].error_type == "Runtime.ExitError"
        assert failed_message_ids(outcome[0], records, partial=True) == {"m1", "m2"}

        # AND the next invocation cold-starts a new worker
        retry = pool.invoke({"sleep": 0, "Records": records}, "sqs")
        assert retry.ok is True
        assert retry.cold_start is True
        assert pool.busy_pids() == []
    finally:
        pool.close()
