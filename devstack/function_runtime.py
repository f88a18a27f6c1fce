"""Worker process that hosts one Lambda function for the local stack (`python -m devstack.function_runtime`).

The runner starts one or more of these per function with the function's environment. The worker
imports the handler once (the cold start) and then serves invocations one at a time.

Protocol: the runner writes one JSON request per line to standard input,
`{"event": ..., "request_id": "...", "deadline_ms": <Unix ms>}`. The worker answers on the file
descriptor that was its standard output, one JSON line per message: first `{"type": "ready"}` or
`{"type": "init_error", ...}`, then one `{"type": "result", "ok": true, "result": ...}` or
`{"type": "result", "ok": false, "errorType": ..., "errorMessage": ..., "stackTrace": [...]}` per
request. Before the import, standard output is pointed at standard error, so whatever the function
prints or logs reaches the runner's log and never the protocol.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from typing import Any, TextIO

# Variables the runner sets for the worker only; they are removed before the handler is imported.
HANDLER_VARIABLE = "DEVSTACK_HANDLER"
SYS_PATH_VARIABLE = "DEVSTACK_SYS_PATH"
FUNCTION_ARN_VARIABLE = "DEVSTACK_FUNCTION_ARN"


class LambdaContext:
    """The context object a Python Lambda handler receives, with the same attribute names."""

    def __init__(self, request_id: str, deadline_ms: int, function_arn: str) -> None:
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "local-function")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.invoked_function_arn = function_arn
        self.memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        self.aws_request_id = request_id
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


def _error(kind: str, error: BaseException) -> dict[str, Any]:
    return {
        "type": kind,
        "ok": False,
        "errorType": type(error).__name__,
        "errorMessage": str(error),
        "stackTrace": traceback.format_exception(error),
    }


def _send(channel: TextIO, message: dict[str, Any]) -> None:
    channel.write(json.dumps(message, separators=(",", ":")) + "\n")
    channel.flush()


def _load_handler(handler: str) -> Any:
    module_name, function_name = handler.rsplit(".", 1)
    module = importlib.import_module(module_name)
    return getattr(module, function_name)


def _init_error(handler: str, error: BaseException) -> dict[str, Any]:
    message = _error("init_error", error)
    if isinstance(error, ImportError | SyntaxError):
        message["errorType"] = f"Runtime.ImportModuleError ({type(error).__name__})"
        message["errorMessage"] = f"Unable to import module for handler {handler!r}: {error}"
    elif isinstance(error, AttributeError):
        message["errorType"] = "Runtime.HandlerNotFound"
        message["errorMessage"] = f"Handler {handler!r} is missing on the module: {error}"
    return message


def _serve(channel: TextIO, handler_function: Any, function_arn: str) -> None:
    for line in sys.stdin:
        request = json.loads(line)
        context = LambdaContext(request["request_id"], int(request["deadline_ms"]), function_arn)
        try:
            result = handler_function(request["event"], context)
        except Exception as error:  # the handler's failure is the invocation's result
            traceback.print_exception(error, file=sys.stderr)
            _send(channel, _error("result", error))
            continue
        try:
            _send(channel, {"type": "result", "ok": True, "result": result})
        except (TypeError, ValueError) as error:
            message = _error("result", error)
            message["errorType"] = "Runtime.MarshalError"
            message["errorMessage"] = f"Unable to marshal response: {error}"
            _send(channel, message)


def main() -> int:
    # Keep the real standard output for the protocol and send fd 1 to standard error.
    channel = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    handler = os.environ.pop(HANDLER_VARIABLE)
    function_arn = os.environ.pop(FUNCTION_ARN_VARIABLE, "")
    paths = [path for path in os.environ.pop(SYS_PATH_VARIABLE, "").split(os.pathsep) if path]
    # Lambda puts the code, then the layers, first on sys.path; the interpreter's own paths follow.
    sys.path[:] = paths + [path for path in sys.path if path and path not in paths and path != os.getcwd()]
    if paths:
        os.chdir(paths[0])

    try:
        handler_function = _load_handler(handler)
    except BaseException as error:  # any failure at import time is an init error, as in Lambda
        traceback.print_exception(error, file=sys.stderr)
        _send(channel, _init_error(handler, error))
        return 1
    _send(channel, {"type": "ready"})
    _serve(channel, handler_function, function_arn)
    return 0


if __name__ == "__main__":
    sys.exit(main())
