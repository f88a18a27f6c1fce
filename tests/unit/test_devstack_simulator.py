"""The push simulator: WeChat's acceptance rule and its retries of the identical push."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from devstack.simulator import Credentials, Simulator, push_accepted


class _Webhook(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, answers: list[tuple[float, bytes]]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.answers = answers
        self.bodies: list[bytes] = []


class _Handler(BaseHTTPRequestHandler):
    server: _Webhook

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.bodies.append(body)
        delay, answer = self.server.answers[min(len(self.server.bodies), len(self.server.answers)) - 1]
        time.sleep(delay)
        try:
            self.send_response(200)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def webhook(request: pytest.FixtureRequest) -> Iterator[_Webhook]:
    server = _Webhook(request.param)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _simulator(webhook: _Webhook, mode: str = "safe") -> Simulator:
    url = f"http://127.0.0.1:{webhook.server_address[1]}/api/wechat"
    return Simulator(url, Credentials.from_environ({}), mode=mode, emulator=False, timeout=0.5)


@pytest.mark.parametrize(
    ("status", "body", "accepted"),
    [(200, "", True), (200, "success", True), (200, "<xml><Encrypt>x</Encrypt></xml>", True),
     (200, "error", False), (500, "success", False), (None, "", False)],
)  # fmt: skip
def test_push_accepted_follows_wechat_rule(status: int | None, body: str, accepted: bool) -> None:
    assert push_accepted(status, body) is accepted


@pytest.mark.parametrize("webhook", [[(1.0, b"success"), (0.0, b"success")]], indirect=True)
def test_push_without_timely_answer_is_resent_identically(webhook: _Webhook) -> None:
    attempts = _simulator(webhook).push("text", "oCITIZEN1", Content="路灯坏了")

    assert [attempt.accepted for attempt in attempts] == [False, True]
    assert attempts[0].error == "no answer within 0.5 s"
    assert len(set(webhook.bodies)) == 1


@pytest.mark.parametrize("webhook", [[(0.0, b"oops")]], indirect=True)
def test_push_with_bad_answer_is_retried_three_times(webhook: _Webhook) -> None:
    attempts = _simulator(webhook, mode="plain").push("text", "oCITIZEN1", Content="你好")

    assert len(attempts) == 4
    assert not any(attempt.accepted for attempt in attempts)
    assert b"<Content><![CDATA[\xe4\xbd\xa0\xe5\xa5\xbd]]></Content>" in webhook.bodies[0]
