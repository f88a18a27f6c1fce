"""Worker processes for one Lambda function: cold start, concurrency, timeout, and the invocation log.

Each `FunctionPool` runs up to `concurrency` `devstack.function_runtime` child processes with the
function's own environment and `sys.path`, so functions share no module state, as in Lambda. A
worker that exceeds the function's timeout is killed and the next invocation cold-starts a new one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack.function_runtime import FUNCTION_ARN_VARIABLE, HANDLER_VARIABLE, SYS_PATH_VARIABLE
from devstack.template import LOCAL_ACCOUNT_ID, LOCAL_REGION, FunctionSpec

ROOT = Path(__file__).resolve().parent.parent

# Lambda allows 10 s for a cold start's init, apart from the function's own timeout. The local limit
# is longer because a cold start here imports boto3, Powertools and pydantic on a developer machine
# that may be busy. A function that needs more than 10 s will still fail in Lambda.
INIT_TIMEOUT_SECONDS = 30.0

# Variables of the runner's own environment that a worker inherits; everything else comes from the
# template and the local stack, as in Lambda.
_INHERITED_VARIABLES = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ", "SYSTEMROOT", "VIRTUAL_ENV")

logger = logging.getLogger(__name__)


@dataclass
class Invocation:
    """The outcome of one invocation: the handler's result or its error, as Lambda reports it."""

    function: str
    source: str
    request_id: str
    ok: bool
    result: Any = None
    error_type: str | None = None
    error_message: str | None = None
    stack_trace: list[str] = field(default_factory=list)
    cold_start: bool = False
    duration_ms: float = 0.0
    event: Any = None

    def error_document(self) -> dict[str, Any]:
        return {"errorType": self.error_type, "errorMessage": self.error_message}


class InvocationLog:
    """Invocations in flight and the most recent finished ones, for `wait_idle` and the tests."""

    def __init__(self, max_records: int = 2000) -> None:
        self._lock = threading.Lock()
        self._in_flight = 0
        self._records: deque[Invocation] = deque(maxlen=max_records)

    def started(self) -> None:
        with self._lock:
            self._in_flight += 1

    def finished(self, invocation: Invocation) -> None:
        with self._lock:
            self._in_flight -= 1
            self._records.append(invocation)

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    def records(self, function: str | None = None) -> list[Invocation]:
        with self._lock:
            return [record for record in self._records if function is None or record.function == function]


class _InitError(Exception):
    def __init__(self, message: dict[str, Any]) -> None:
        super().__init__(message.get("errorMessage", "init failed"))
        self.message = message


class _Worker:
    """One `devstack.function_runtime` child process."""

    def __init__(self, spec: FunctionSpec, environment: dict[str, str], sys_path: list[str]) -> None:
        self.spec = spec
        self._messages: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._function_log = logging.getLogger(f"devstack.function.{spec.logical_id}")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "devstack.function_runtime"],
            cwd=ROOT,
            env={
                **environment,
                HANDLER_VARIABLE: spec.handler,
                SYS_PATH_VARIABLE: os.pathsep.join(sys_path),
            },
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            bufsize=1,
        )
        threading.Thread(target=self._read_protocol, daemon=True).start()
        threading.Thread(target=self._forward_log, daemon=True).start()
        self.ready = False

    def _read_protocol(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._messages.put(json.loads(line))
        self._messages.put(None)

    def _forward_log(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._function_log.info("%s", line.rstrip("\n"))

    def _next_message(self, timeout: float) -> dict[str, Any] | None:
        """Return the worker's next message, None when it exited; raises queue.Empty on timeout."""
        return self._messages.get(timeout=timeout)

    def wait_ready(self) -> None:
        try:
            message = self._next_message(INIT_TIMEOUT_SECONDS)
        except queue.Empty:
            self.kill()
            raise _InitError(
                {
                    "errorType": "Runtime.InitTimeout",
                    "errorMessage": f"Init of {self.spec.logical_id} exceeded {INIT_TIMEOUT_SECONDS:.0f} s",
                }
            ) from None
        if message is None or message.get("type") != "ready":
            self.kill()
            raise _InitError(
                message or {"errorType": "Runtime.ExitError", "errorMessage": "worker exited during init"}
            )
        self.ready = True

    def invoke(self, event: Any, request_id: str, timeout: float) -> dict[str, Any]:
        """Run one invocation; returns the worker's result message or a Lambda-style error message."""
        assert self.process.stdin is not None
        deadline_ms = int((time.time() + timeout) * 1000)
        request = {"event": event, "request_id": request_id, "deadline_ms": deadline_ms}
        try:
            self.process.stdin.write(json.dumps(request, separators=(",", ":")) + "\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            self.kill()
            return {"ok": False, "errorType": "Runtime.ExitError", "errorMessage": "worker exited"}
        try:
            message = self._next_message(timeout)
        except queue.Empty:
            self.kill()
            return {
                "ok": False,
                "errorType": "Sandbox.Timedout",
                "errorMessage": f"Task timed out after {timeout:.2f} seconds",
            }
        if message is None:
            self.kill()
            return {"ok": False, "errorType": "Runtime.ExitError", "errorMessage": "worker exited"}
        return message

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


class FunctionPool:
    """Runs one function's invocations on at most `concurrency` workers; `invoke` blocks for a slot."""

    def __init__(
        self,
        spec: FunctionSpec,
        environment: dict[str, str],
        concurrency: int,
        log: InvocationLog,
        timeout_multiplier: float = 1.0,
    ) -> None:
        self.spec = spec
        self.timeout_multiplier = timeout_multiplier
        self.environment = environment
        self.concurrency = concurrency
        self._log = log
        self._slots = threading.Semaphore(concurrency)
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._closed = False
        self._missing_logged = False

    @property
    def present(self) -> bool:
        """Whether the function's handler file exists (another team may not have written it yet)."""
        return (self.spec.code_uri / f"{self.spec.module_name}.py").is_file()

    @property
    def sys_path(self) -> list[str]:
        return [str(self.spec.code_uri), *(str(layer) for layer in self.spec.layers), str(ROOT)]

    def reconfigure(self, spec: FunctionSpec, environment: dict[str, str]) -> None:
        """Apply a new configuration; idle workers stop and the next invocation is a cold start."""
        with self._lock:
            self.spec = spec
            self.environment = environment
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.kill()

    def _acquire_worker(self) -> tuple[_Worker, bool]:
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if worker.alive:
                    self._busy.add(worker)
                    return worker, False
            worker = _Worker(self.spec, self.environment, self.sys_path)
            self._busy.add(worker)
        return worker, True

    def _release_worker(self, worker: _Worker) -> None:
        with self._lock:
            self._busy.discard(worker)
            if worker.alive and not self._closed and worker.spec is self.spec:
                self._idle.append(worker)
                return
        worker.kill()

    def prewarm(self) -> None:
        """Cold-start one worker ahead of the first invocation, as provisioned concurrency does."""
        if not self.present:
            return
        with self._slots:
            worker, _ = self._acquire_worker()
            try:
                if not worker.ready:
                    worker.wait_ready()
            except _InitError as error:
                logger.error("init of %s failed: %s", self.spec.logical_id, error.message.get("errorMessage"))
            finally:
                self._release_worker(worker)

    def invoke(self, event: Any, source: str = "direct") -> Invocation:
        request_id = str(uuid.uuid4())
        self._log.started()
        started = time.monotonic()
        invocation = Invocation(function=self.spec.logical_id, source=source, request_id=request_id, ok=False)
        invocation.event = event
        try:
            if not self.present:
                self._fail_missing(invocation)
                return invocation
            with self._slots:
                self._run(invocation, event)
        finally:
            invocation.duration_ms = (time.monotonic() - started) * 1000
            self._log.finished(invocation)
        return invocation

    def _fail_missing(self, invocation: Invocation) -> None:
        invocation.error_type = "Runtime.ImportModuleError"
        invocation.error_message = (
            f"{self.spec.logical_id}: handler file {self.spec.code_uri}/{self.spec.module_name}.py "
            "does not exist; write the function or remove it from template.yaml"
        )
        if not self._missing_logged:
            logger.error("%s", invocation.error_message)
            self._missing_logged = True

    def _run(self, invocation: Invocation, event: Any) -> None:
        worker, cold = self._acquire_worker()
        invocation.cold_start = cold
        try:
            if not worker.ready:
                worker.wait_ready()
            timeout = float(self.spec.timeout) * self.timeout_multiplier
            message = worker.invoke(event, invocation.request_id, timeout)
        except _InitError as error:
            message = {"ok": False, **error.message}
            logger.error(
                "init of %s failed: %s: %s",
                self.spec.logical_id,
                message.get("errorType"),
                message.get("errorMessage"),
            )
        finally:
            self._release_worker(worker)
        invocation.ok = bool(message.get("ok"))
        invocation.result = message.get("result")
        invocation.error_type = message.get("errorType")
        invocation.error_message = message.get("errorMessage")
        invocation.stack_trace = list(message.get("stackTrace", []))
        if not invocation.ok:
            logger.warning(
                "%s invocation %s failed: %s: %s",
                self.spec.logical_id,
                invocation.request_id,
                invocation.error_type,
                invocation.error_message,
            )

    def busy_pids(self) -> list[int]:
        """Return the process ids of the workers that are running an invocation now."""
        with self._lock:
            return [worker.process.pid for worker in self._busy if worker.ready and worker.alive]

    def close(self) -> None:
        with self._lock:
            self._closed = True
            workers = [*self._idle, *self._busy]
            self._idle = []
        for worker in workers:
            worker.kill()


def worker_environment(
    spec: FunctionSpec,
    aws_environment: dict[str, str],
    extra: dict[str, str],
    stack_name: str,
) -> dict[str, str]:
    """Return a worker's environment: the template's variables plus what the Lambda service sets."""
    function_name = f"{stack_name}-{spec.logical_id}"
    inherited = {name: os.environ[name] for name in _INHERITED_VARIABLES if name in os.environ}
    return {
        **inherited,
        **spec.environment,
        **aws_environment,
        "AWS_LAMBDA_FUNCTION_NAME": function_name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_size),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function_name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": f"local/{spec.logical_id}",
        "LAMBDA_TASK_ROOT": str(spec.code_uri),
        "_HANDLER": spec.handler,
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        FUNCTION_ARN_VARIABLE: f"arn:aws:lambda:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:function:{function_name}",
        **extra,
    }
