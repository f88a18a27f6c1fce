"""webhook-verify through its real handler: the official URL check V1 in every mode.

Refusals (bad signature, missing echostr, wrong method, ...) are in test_webhook_bad_input.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from types import ModuleType

import pytest

from devstack.make_events import EVENTS_DIR
from devstack.wechat_push import api_gateway_event, build_url_check
from tests.unit.webhook_support import VECTORS, WEBHOOK_PATH, invoke, log_lines, pin_clock

V1 = VECTORS["V1"]
V1_QUERY = {key: V1[key] for key in ("signature", "timestamp", "nonce", "echostr")}


@pytest.fixture
def stack_parameters(request: pytest.FixtureRequest) -> dict[str, str]:
    return {"MessageMode": getattr(request, "param", "safe")}


@pytest.fixture
def verify(load_function: Callable[..., ModuleType], monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    pin_clock(monkeypatch, int(V1["timestamp"]) + 30)
    return load_function("WebhookVerifyFunction")


def url_check(query: dict[str, str] | None, method: str = "GET") -> dict[str, object]:
    return api_gateway_event(method, WEBHOOK_PATH, query, None)


@pytest.mark.parametrize("stack_parameters", ["plain", "compatible", "safe"], indirect=True)
def test_v1_returns_echostr_byte_for_byte(verify: ModuleType, caplog: pytest.LogCaptureFixture) -> None:
    """The echostr of an Official Account is never encrypted, whatever the message mode."""
    response = invoke(verify, url_check(V1_QUERY))
    assert response == {
        "statusCode": 200,
        "headers": {"Content-Type": "text/plain"},
        "body": "4375120948345356249",
        "isBase64Encoded": False,
    }
    assert [line.record.getMessage() for line in log_lines(verify, caplog)] == ["url check answered"]


def test_committed_url_check_event(verify: ModuleType) -> None:
    event = json.loads((EVENTS_DIR / "url_check.json").read_text(encoding="utf-8"))
    response = invoke(verify, event)
    assert (response["statusCode"], response["body"]) == (200, "4375120948345356249")


def test_built_url_check_with_extra_parameters(verify: ModuleType) -> None:
    query = build_url_check("AAAAA", "AbC-123_xyz", timestamp=int(V1["timestamp"]), nonce="77")
    query["openid"] = "oIGNOREDnotsigned"
    response = invoke(verify, url_check(query))
    assert (response["statusCode"], response["body"]) == (200, "AbC-123_xyz")


def test_replay_window(load_function: Callable[..., ModuleType], monkeypatch: pytest.MonkeyPatch) -> None:
    stamp = int(V1["timestamp"])
    verify = load_function("WebhookVerifyFunction")
    pin_clock(monkeypatch, stamp + 301)
    assert invoke(verify, url_check(V1_QUERY))["statusCode"] == 401
    pin_clock(monkeypatch, stamp - 301)
    assert invoke(verify, url_check(V1_QUERY))["statusCode"] == 401
    pin_clock(monkeypatch, stamp + 300)
    assert invoke(verify, url_check(V1_QUERY))["statusCode"] == 200
    # REPLAY_WINDOW_SECONDS=0 disables the check.
    verify = load_function("WebhookVerifyFunction", extra_env={"REPLAY_WINDOW_SECONDS": "0"})
    pin_clock(monkeypatch, stamp + 10**8)
    assert invoke(verify, url_check(V1_QUERY))["body"] == V1["echostr"]
