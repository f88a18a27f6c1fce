"""Helpers for the webhook tests: test vectors, invoking the handlers, reading the queue and the logs."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import boto3
import pytest
from moto import mock_aws

from devstack.resources import Stack, create_stack
from intake import clock
from tests.conftest import DEFAULT_CREDENTIALS, FakeLambdaContext, read_fixture

VECTORS: dict[str, dict[str, str]] = read_fixture("wechat_test_vectors.json")
WEBHOOK_PATH = "/wechat"
FAKE_AWS_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


def pin_clock(monkeypatch: pytest.MonkeyPatch, at: float) -> None:
    """Make `intake.clock.now` return `at`, so vectors from 2024 fall inside the replay window."""
    monkeypatch.setattr(clock, "now", lambda: float(at))


def invoke(module: ModuleType, event: Any) -> dict[str, Any]:
    response: dict[str, Any] = module.lambda_handler(event, FakeLambdaContext())
    return response


def queued_messages(stack: Stack, logical_id: str = "InboundQueue") -> list[dict[str, Any]]:
    """Receive and delete every message of a queue in moto, with all attributes (MessageGroupId, ...).

    Deleting matters on a FIFO queue: a message left in flight blocks the rest of its group.
    """
    sqs = stack.client("sqs")
    url = stack.ref(logical_id)
    messages: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(
            QueueUrl=url, AttributeNames=["All"], MaxNumberOfMessages=10, VisibilityTimeout=600
        ).get("Messages", [])
        if not batch:
            return messages
        for message in batch:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        messages.extend(batch)


def queued_records(stack: Stack) -> list[dict[str, Any]]:
    return [json.loads(message["Body"]) for message in queued_messages(stack)]


@dataclass
class LogLine:
    record: logging.LogRecord
    text: str  # the JSON line Powertools writes for this record

    @property
    def reason(self) -> str | None:
        return getattr(self.record, "reason", None)


def log_lines(module: ModuleType, caplog: pytest.LogCaptureFixture) -> list[LogLine]:
    """Return the records the handler module logged, each with its Powertools JSON rendering."""
    formatter = module.logger.registered_formatter
    service = module.logger.service
    return [
        LogLine(record, formatter.format(record))
        for record in caplog.records
        if record.name == service or record.name.startswith(f"{service}.")
    ]


@contextmanager
def shared_stacks(
    modes: tuple[str, ...], credentials: dict[str, str] | None = None
) -> Iterator[dict[str, Stack]]:
    """Create one emulated stack per message mode inside one moto mock, for a whole test module.

    Creating template.yaml's resources takes seconds, so table-driven modules share one stack per
    mode: override the `stack` fixture to pick from these, and `load_function` works unchanged
    (it still sets the function's environment and clears the process caches for every test).
    """
    with pytest.MonkeyPatch.context() as patch:
        for name, value in FAKE_AWS_ENVIRONMENT.items():
            patch.setenv(name, value)
        patch.delenv("AWS_PROFILE", raising=False)
        patch.delenv("AWS_ENDPOINT_URL", raising=False)
        with mock_aws():
            session = boto3.session.Session(region_name="us-east-1")
            yield {
                mode: create_stack(
                    session,
                    parameter_overrides={"MessageMode": mode},
                    secret_values={"WeChatSecret": json.dumps(credentials or DEFAULT_CREDENTIALS)},
                    stack_name=f"wechat-intake-{mode}",
                )
                for mode in modes
            }


def drain(stack: Stack, logical_id: str = "InboundQueue") -> None:
    """Empty a queue of a shared stack before the next test."""
    queued_messages(stack, logical_id)
