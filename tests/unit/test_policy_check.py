"""The template policy check passes on template.yaml and fails on each kind of violation."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from devstack.policy_check import find_violations, main
from devstack.template import TEMPLATE_PATH, load_template

TEMPLATE = load_template()


def _without_dlq(template: dict[str, Any]) -> None:
    del template["Resources"]["MediaQueue"]["Properties"]["RedrivePolicy"]


def _wildcard_action(template: dict[str, Any]) -> None:
    policies = template["Resources"]["ReplyPushFunction"]["Properties"]["Policies"]
    policies.append(
        {"Statement": [{"Effect": "Allow", "Action": "dynamodb:*", "Resource": "arn:aws:dynamodb:x"}]}
    )


def _wildcard_resource(template: dict[str, Any]) -> None:
    policies = template["Resources"]["StaffApiFunction"]["Properties"]["Policies"]
    policies.append({"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]})


def _unencrypted_bucket(template: dict[str, Any]) -> None:
    del template["Resources"]["MediaBucket"]["Properties"]["BucketEncryption"]


def _public_bucket(template: dict[str, Any]) -> None:
    template["Resources"]["MediaBucket"]["Properties"]["PublicAccessBlockConfiguration"][
        "BlockPublicPolicy"
    ] = False


def _unencrypted_table(template: dict[str, Any]) -> None:
    del template["Resources"]["TicketsTable"]["Properties"]["SSESpecification"]


def _unencrypted_queue(template: dict[str, Any]) -> None:
    del template["Resources"]["OutboundQueue"]["Properties"]["SqsManagedSseEnabled"]


def _log_group_without_retention(template: dict[str, Any]) -> None:
    template["Resources"]["StaffApiLogGroup"]["Properties"] = {}


def _unauthenticated_staff_route(template: dict[str, Any]) -> None:
    event = template["Resources"]["StaffApiFunction"]["Properties"]["Events"]["ListTickets"]
    event["Properties"]["Auth"] = {"Authorizer": "NONE"}


def _unencrypted_topic(template: dict[str, Any]) -> None:
    del template["Resources"]["AlarmTopic"]["Properties"]["KmsMasterKeyId"]


def _silent_alarm(template: dict[str, Any]) -> None:
    del template["Resources"]["InboundDeadLetterQueueAlarm"]["Properties"]["AlarmActions"]


def test_policy_check_passes_on_template() -> None:
    assert find_violations(TEMPLATE) == []


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (_without_dlq, "MediaQueue: queue has no dead-letter queue"),
        (_wildcard_action, "ReplyPushFunction: IAM statement allows wildcard action 'dynamodb:*'"),
        (_wildcard_resource, "StaffApiFunction: IAM statement allows wildcard resource '*'"),
        (_unencrypted_bucket, "MediaBucket: bucket is not encrypted with KMS"),
        (_public_bucket, "MediaBucket: bucket does not set PublicAccessBlockConfiguration.BlockPublicPolicy"),
        (_unencrypted_table, "TicketsTable: table does not set SSESpecification.SSEEnabled"),
        (_unencrypted_queue, "OutboundQueue: queue is not encrypted"),
        (_log_group_without_retention, "StaffApiLogGroup: log group has no RetentionInDays"),
        (_unauthenticated_staff_route, "StaffApiFunction.ListTickets: route /tickets skips AWS_IAM"),
        (_unencrypted_topic, "AlarmTopic: topic is not encrypted"),
        (_silent_alarm, "InboundDeadLetterQueueAlarm: alarm notifies nobody"),
    ],
)
def test_policy_check_reports_violation(mutate: Callable[[dict[str, Any]], None], expected: str) -> None:
    template = copy.deepcopy(TEMPLATE)

    mutate(template)
    violations = find_violations(template)

    assert any(violation.startswith(expected) for violation in violations), violations


def test_policy_check_main_exits_nonzero_on_violation(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "template.yaml"
    text = TEMPLATE_PATH.read_text(encoding="utf-8")
    broken.write_text(
        text.replace("SqsManagedSseEnabled: true", "SqsManagedSseEnabled: false"), encoding="utf-8"
    )

    exit_code = main(["policy_check", str(broken)])

    assert exit_code == 1
    assert "queue is not encrypted" in capsys.readouterr().err
