"""`make demo` end to end: it passes on a healthy stack and fails loudly when a stage is broken."""

from __future__ import annotations

import pytest

from devstack.demo import run_demo
from devstack.runner import LocalStack, LocalStackConfig
from devstack.wechat_emulator import Fault

pytestmark = pytest.mark.integration


def _config(mode: str) -> LocalStackConfig:
    # Free ports so the demo can run beside another local stack; tripled timeouts for a busy machine.
    return LocalStackConfig(port=0, emulator_port=0, message_mode=mode, timeout_multiplier=3.0)


def test_demo_passes_every_check() -> None:
    run = run_demo(_config("safe"))

    assert run.failures == [], "\n".join(run.report_lines)
    assert any("li received the department's answer" in line for line in run.report_lines)


def test_demo_fails_when_media_download_breaks() -> None:
    # WeChat returns errcode 40007 (expired media) for every media download, so media-store records
    # the files as lost instead of storing them and the demo's S3 checks must fail.
    def break_media(stack: LocalStack) -> None:
        assert stack.emulator is not None
        stack.emulator.state.add_fault(Fault(api="media/get", errcode=40007, times=1000))

    run = run_demo(_config("plain"), on_stack=break_media)

    assert "S3 holds an object of type image/jpeg" in run.failures
    assert "S3 holds an object of type video/mp4" in run.failures
