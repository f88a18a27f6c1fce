"""Schedules: rate expressions, the scheduled EventBridge event, and POST /_local/schedule/{LogicalId}."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from devstack.runner import LocalStack, LocalStackConfig
from devstack.scheduler import Schedule, rate_seconds, schedules
from devstack.template import load_template

TEMPLATE = Path(__file__).resolve().parent.parent / "fixtures" / "devstack" / "template.yaml"


@pytest.fixture(scope="module")
def local_stack() -> Iterator[LocalStack]:
    config = LocalStackConfig(template_path=TEMPLATE, port=0, schedules=False, prewarm_api_functions=False)
    with LocalStack(config) as stack:
        yield stack


@pytest.mark.parametrize(
    ("expression", "seconds"),
    [
        ("rate(1 minute)", 60),
        ("rate(5 minutes)", 300),
        ("rate(1 hour)", 3600),
        ("rate(2 hours)", 7200),
        ("rate(1 day)", 86400),
        ("cron(0 9 * * ? *)", None),
    ],
)
def test_rate_seconds_parses_expression(expression: str, seconds: int | None) -> None:
    assert rate_seconds(expression) == seconds


@pytest.mark.parametrize(
    "expression", ["rate(1 minutes)", "rate(5 minute)", "rate(0 minutes)", "every 5 minutes"]
)
def test_rate_seconds_rejects_invalid_expression(expression: str) -> None:
    with pytest.raises(ValueError, match="invalid schedule expression"):
        rate_seconds(expression)


def test_schedules_from_real_template() -> None:
    # Schedule events reference no resources, so the template's raw events serve as resolved ones.
    resources = load_template()["Resources"]
    events = {
        logical_id: resource["Properties"].get("Events", {})
        for logical_id, resource in resources.items()
        if resource["Type"] == "AWS::Serverless::Function"
    }

    found = {entry.function: entry.expression for entry in schedules(events, "stack", "us-east-1")}

    assert found["DraftSubmitFunction"] == "rate(1 minute)"
    assert found["TokenRefreshFunction"] == "rate(5 minutes)"


def test_scheduled_event_has_eventbridge_shape() -> None:
    entry = Schedule(
        "DraftSubmitFunction",
        "EveryMinute",
        "rate(1 minute)",
        "stack-DraftSubmitFunctionEveryMinute",
        "us-east-1",
    )

    event = entry.event()

    assert event["source"] == "aws.events"
    assert event["detail-type"] == "Scheduled Event"
    assert event["resources"] == [
        "arn:aws:events:us-east-1:123456789012:rule/stack-DraftSubmitFunctionEveryMinute"
    ]
    assert event["detail"] == {}


def test_schedule_endpoint_runs_function_and_returns_result(local_stack: LocalStack) -> None:
    response = requests.post(f"{local_stack.url}/_local/schedule/ScheduledFunction", timeout=10)

    assert response.status_code == 200
    assert response.json()["source"] == "aws.events"
    assert response.json()["detail_type"] == "Scheduled Event"
    assert local_stack.invocations("ScheduledFunction")[-1].source == "schedule"


def test_schedule_endpoint_accepts_function_dot_event(local_stack: LocalStack) -> None:
    response = requests.post(f"{local_stack.url}/_local/schedule/ScheduledFunction.Hourly", timeout=10)

    assert response.status_code == 200


def test_schedule_endpoint_unknown_name_is_404(local_stack: LocalStack) -> None:
    response = requests.post(f"{local_stack.url}/_local/schedule/NoSuchFunction", timeout=10)

    assert response.status_code == 404
    assert "ScheduledFunction.Hourly" in response.json()["message"]


def test_schedule_endpoint_function_without_code_is_502(local_stack: LocalStack) -> None:
    response = requests.post(f"{local_stack.url}/_local/schedule/MissingFunction", timeout=10)

    assert response.status_code == 502
    assert response.json()["errorType"] == "Runtime.ImportModuleError"
