"""token-refresh as the scheduler invokes it, against the WeChat emulator."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest

from devstack.wechat_emulator import Fault, WeChatEmulator, start_emulator
from intake.wechat_api import WeChatApiError

SCHEDULED_EVENT = {
    "version": "0",
    "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "account": "123456789012",
    "time": "2026-12-04T12:00:00Z",
    "region": "us-east-1",
    "resources": ["arn:aws:events:us-east-1:123456789012:rule/EveryFiveMinutes"],
    "detail": {},
}


@pytest.fixture
def emulator() -> Iterator[WeChatEmulator]:
    with start_emulator() as running:
        yield running


@pytest.fixture
def token_refresh(load_function: Callable[..., ModuleType], emulator: WeChatEmulator) -> ModuleType:
    return load_function("TokenRefreshFunction", extra_env={"WECHAT_API_BASE": emulator.url})


def _stable_token_calls(emulator: WeChatEmulator) -> int:
    return sum(1 for call in emulator.calls if call["api"] == "stable_token")


def test_token_refresh_fetches_then_keeps(
    emulator: WeChatEmulator, token_refresh: ModuleType, lambda_context: Any
) -> None:
    first = token_refresh.lambda_handler(SCHEDULED_EVENT, lambda_context)

    second = token_refresh.lambda_handler(SCHEDULED_EVENT, lambda_context)

    assert first == {"outcome": "fetched"}
    assert second == {"outcome": "still_fresh"}
    assert _stable_token_calls(emulator) == 1
    assert all(call["payload"].get("force_refresh") is False for call in emulator.calls)


def test_token_refresh_ip_not_allowed_fails_with_hint(
    emulator: WeChatEmulator, token_refresh: ModuleType, lambda_context: Any, caplog: pytest.LogCaptureFixture
) -> None:
    emulator.state.add_fault(Fault(api="stable_token", errcode=40164))

    with pytest.raises(WeChatApiError) as caught:
        token_refresh.lambda_handler(SCHEDULED_EVENT, lambda_context)

    assert caught.value.errcode == 40164
    assert any("infrastructure error" in message for message in caplog.messages)
