"""The welcome text names this deployment's collecting window."""

from __future__ import annotations

import pytest

from intake.conversation import welcome_text
from intake.settings import get_settings


@pytest.mark.parametrize(
    ("window_seconds", "expected"), [("120", "2分钟内"), ("600", "10分钟内"), ("30", "1分钟内")]
)
def test_welcome_text_names_window(
    monkeypatch: pytest.MonkeyPatch, window_seconds: str, expected: str
) -> None:
    monkeypatch.setenv("TICKET_COLLECTING_WINDOW_SECONDS", window_seconds)
    get_settings.cache_clear()

    text = welcome_text()

    get_settings.cache_clear()
    assert expected in text
