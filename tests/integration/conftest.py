"""The local stack for the integration tests: started once per session on free ports, stopped at the end."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.runner import LocalStack, LocalStackConfig


@pytest.fixture(scope="session")
def local_stack() -> Iterator[LocalStack]:
    """template.yaml on moto's server with the WeChat emulator, in safe mode with the default credentials."""
    # Timeouts are tripled so that a busy test machine does not turn slow cold starts into failures.
    config = LocalStackConfig(
        port=0, emulator_port=0, message_mode="safe", run_schedules_at_start=False, timeout_multiplier=3.0
    )
    with LocalStack(config) as stack:
        yield stack
