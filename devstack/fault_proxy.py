"""A fault-injecting HTTP proxy between the function workers and the moto server.

The workers' `AWS_ENDPOINT_URL` points at the proxy, which forwards every request to moto. At the
rates of a `FaultPlan` it starts a burst of faults for one AWS service instead: for the next 1 to
`max_burst` requests of that service it responds with AWS's own error shapes or forwards late.

- `throttle`: DynamoDB 400 `ProvisionedThroughputExceededException`, S3 503 `SlowDown`, SQS and
  EventBridge 400 `ThrottlingException`;
- `server_error`: 500 `InternalError` (S3, XML) or `InternalFailure` (JSON protocols);
- `slow`: the request is forwarded after `slow_seconds`;
- `access_denied`: 400 `AccessDeniedException`, which the SDK does not retry: a fault that lasts
  until someone fixes it (a policy or key mistake). Tests use it to make poison records.

Bursts matter because the SDK retries throttling and 5xx answers by itself: single faults are
absorbed there, and only a burst longer than the SDK's attempts reaches the function's own error
handling. The service is read from the SigV4 credential scope (`Authorization` header or the
`X-Amz-Credential` query parameter of a presigned URL). Requests of other services pass unchanged.
The harness reads moto directly, never through the proxy, so its checks see no faults.
"""

from __future__ import annotations

import http.client
import json
import logging
import random
import re
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit

FAULT_KINDS = ("throttle", "server_error", "slow")
ERROR_KINDS = ("throttle", "server_error", "access_denied")
# Services whose error responses the proxy can imitate.
SERVICES = ("dynamodb", "s3", "sqs", "events")

# Matches `Credential=` in the Authorization header and `X-Amz-Credential=` in a presigned URL.
_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/,&\s]+/\d{8}/[^/]+/([a-z0-9-]+)/aws4_request")
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade", "te"}

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FaultPlan:
    """How often each service fails: `rates` is the chance per request that a burst of faults starts."""

    rates: dict[str, float]
    seed: int = 0
    kinds: tuple[str, ...] = FAULT_KINDS
    max_burst: int = 6
    slow_seconds: float = 1.5
    # When not empty, only these operations fail (the `X-Amz-Target` action, e.g. TransactWriteItems).
    operations: frozenset[str] = frozenset()


@dataclass(frozen=True)
class FaultAnswer:
    status: int
    content_type: str
    body: bytes


def request_service(authorization: str | None, path: str) -> str | None:
    """Return the signing name of a SigV4 request (`dynamodb`, `s3`, ...), or None when unsigned."""
    for text in (authorization or "", unquote(path)):
        match = _CREDENTIAL_SCOPE.search(text)
        if match:
            return match.group(1)
    return None


def fault_answer(service: str, kind: str) -> FaultAnswer:
    """Return the error AWS sends for `kind` (`throttle`, `server_error`, `access_denied`) from `service`."""
    request_id = str(uuid.uuid4())
    if kind == "access_denied" and service != "s3":
        document = {
            "__type": "AccessDeniedException",
            "message": "User is not authorized to perform this action",
        }
        return FaultAnswer(400, "application/x-amz-json-1.0", json.dumps(document).encode())
    if service == "s3":
        code, status, message = {
            "throttle": ("SlowDown", 503, "Please reduce your request rate."),
            "access_denied": ("AccessDenied", 403, "Access Denied"),
        }.get(kind, ("InternalError", 500, "We encountered an internal error. Please try again."))
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{message}</Message><RequestId>{request_id}</RequestId></Error>"
        )
        return FaultAnswer(status, "application/xml", body.encode())
    if kind == "throttle":
        status = 400
        error_type = {
            "dynamodb": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
            "sqs": "com.amazonaws.sqs#ThrottlingException",
        }.get(service, "ThrottlingException")
        message = "Rate exceeded"
    else:
        status = 500
        error_type = {
            "dynamodb": "com.amazonaws.dynamodb.v20120810#InternalServerError",
            "sqs": "com.amazonaws.sqs#InternalError",
        }.get(service, "InternalFailure")
        message = "We encountered an internal error. Please try again."
    document = {"__type": error_type, "message": message}
    return FaultAnswer(status, "application/x-amz-json-1.0", json.dumps(document).encode())


@dataclass
class _Burst:
    kind: str
    remaining: int


@dataclass
class FaultLedger:
    """Decides the faults and counts them by (service, kind); thread safe."""

    plan: FaultPlan
    _random: random.Random = field(init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _bursts: dict[str, _Burst] = field(default_factory=dict)
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    forwarded: Counter[str] = field(default_factory=Counter)
    enabled: bool = True

    def __post_init__(self) -> None:
        self._random = random.Random(self.plan.seed)  # noqa: S311 - a seeded test scenario

    def next_fault(self, service: str | None, operation: str | None = None) -> str | None:
        """Return the fault kind for the next request of `service`, or None to forward it unchanged."""
        if service is None or service not in SERVICES:
            return None
        if self.plan.operations and operation not in self.plan.operations:
            return None
        with self._lock:
            self.forwarded[service] += 1
            if not self.enabled:
                return None
            burst = self._bursts.get(service)
            if burst is None:
                rate = self.plan.rates.get(service, 0.0)
                if rate <= 0 or self._random.random() >= rate:
                    return None
                kind = self._random.choice(self.plan.kinds)
                burst = _Burst(kind, self._random.randint(1, self.plan.max_burst))
                self._bursts[service] = burst
            burst.remaining -= 1
            if burst.remaining <= 0:
                del self._bursts[service]
            self.counts[(service, burst.kind)] += 1
            return burst.kind

    def summary(self) -> dict[str, dict[str, int]]:
        """Return the faults injected so far as {service: {kind: count}}."""
        with self._lock:
            result: dict[str, dict[str, int]] = {}
            for (service, kind), count in sorted(self.counts.items()):
                result.setdefault(service, {})[kind] = count
            return result


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ProxyServer

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            # The client went away in the middle of its request (a killed worker); forward nothing.
            raise ConnectionAbortedError("request body ended early")
        return body

    def _answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self) -> None:
        body = self._read_body()
        service = request_service(self.headers.get("Authorization"), self.path)
        target = self.headers.get("X-Amz-Target") or ""
        kind = self.server.ledger.next_fault(service, target.rsplit(".", 1)[-1] or None)
        if kind in ERROR_KINDS:
            assert service is not None
            answer = fault_answer(service, kind)
            self._answer(
                answer.status,
                [("Content-Type", answer.content_type), ("x-amzn-RequestId", str(uuid.uuid4()))],
                answer.body,
            )
            return
        if kind == "slow":
            time.sleep(self.server.ledger.plan.slow_seconds)
        self._forward(body)

    def _forward(self, body: bytes) -> None:
        target = urlsplit(self.server.target_url)
        connection = http.client.HTTPConnection(target.hostname, target.port, timeout=120)
        headers = {
            name: value
            for name, value in self.headers.items()
            if name.lower() not in _HOP_BY_HOP and name.lower() not in ("content-length", "expect")
        }
        headers["Content-Length"] = str(len(body))
        try:
            connection.request(self.command, self.path, body=body, headers=headers)
            response = connection.getresponse()
            answer = response.read()
            self._answer(response.status, response.getheaders(), answer)
        finally:
            connection.close()

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _handle


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A worker killed in the middle of a call closes its connection; that is part of the test.
        logger.debug("fault proxy: connection from %s ended early", client_address)

    def __init__(self, target_url: str, ledger: FaultLedger) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.target_url = target_url
        self.ledger = ledger


class FaultProxy:
    """The proxy on a free port of 127.0.0.1; `url` is the endpoint to give the workers."""

    def __init__(self, target_url: str, plan: FaultPlan) -> None:
        self.ledger = FaultLedger(plan)
        self._server = _ProxyServer(target_url, self.ledger)
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FaultProxy:
        self._thread.start()
        logger.info("fault proxy at %s forwards to %s", self.url, self._server.target_url)
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
