"""Evaluates the template's dead-letter-queue alarms on the local stack, which CloudWatch would do.

moto stores alarms but does not evaluate them. `AlarmEvaluator` covers the alarms the local stack
can compute: every `AWS::CloudWatch::Alarm` on the `AWS/SQS` metric
`ApproximateNumberOfMessagesVisible` of one queue (the dead-letter-queue alarms). `create()` puts
them and their SNS topics into moto. Each `evaluate()` reads the queue's `ApproximateNumberOfMessages`
(the same figure CloudWatch publishes as that metric), compares it with the alarm's threshold, and
on a change of state calls `set_alarm_state` and publishes to the alarm's `AlarmActions` (entering
ALARM) or `OKActions` (back to OK) topics, as CloudWatch does. Periods are not waited for: one
evaluation is one datapoint.
"""

from __future__ import annotations

import json
import logging
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from devstack.resources import Stack

METRIC_NAME = "ApproximateNumberOfMessagesVisible"
_COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanThreshold": operator.gt,
    "GreaterThanOrEqualToThreshold": operator.ge,
    "LessThanThreshold": operator.lt,
    "LessThanOrEqualToThreshold": operator.le,
}

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class QueueAlarm:
    """One alarm of the template on a queue's visible messages."""

    logical_id: str
    name: str
    queue_name: str
    threshold: float
    comparison: str
    alarm_actions: tuple[str, ...]
    ok_actions: tuple[str, ...]
    description: str


@dataclass(frozen=True)
class Transition:
    alarm: str
    state: str
    value: int


def queue_alarms(stack: Stack) -> list[QueueAlarm]:
    """Return the template's alarms on `AWS/SQS` `ApproximateNumberOfMessagesVisible`."""
    alarms = []
    for logical_id, resource in stack.template["Resources"].items():
        if resource["Type"] != "AWS::CloudWatch::Alarm" or logical_id not in stack.resources:
            continue
        props = stack.resolver.resolve(resource.get("Properties", {}))
        if props.get("Namespace") != "AWS/SQS" or props.get("MetricName") != METRIC_NAME:
            continue
        dimensions = {dimension["Name"]: dimension["Value"] for dimension in props.get("Dimensions", [])}
        alarms.append(
            QueueAlarm(
                logical_id=logical_id,
                name=props.get("AlarmName") or stack.ref(logical_id),
                queue_name=dimensions["QueueName"],
                threshold=float(props["Threshold"]),
                comparison=props["ComparisonOperator"],
                alarm_actions=tuple(props.get("AlarmActions", [])),
                ok_actions=tuple(props.get("OKActions", [])),
                description=props.get("AlarmDescription", ""),
            )
        )
    return alarms


class AlarmEvaluator:
    """Creates the queue alarms and their topics in moto and evaluates them on request."""

    def __init__(self, stack: Stack) -> None:
        self._stack = stack
        self._cloudwatch = stack.client("cloudwatch")
        self._sns = stack.client("sns")
        self._sqs = stack.client("sqs")
        self.alarms = queue_alarms(stack)
        self.topic_arns: dict[str, str] = {}

    def topic_arn(self, action: str) -> str:
        """Return the ARN of an alarm action; the local stand-in of a topic is its name."""
        if action not in self.topic_arns:
            arn = action if action.startswith("arn:") else self._sns.create_topic(Name=action)["TopicArn"]
            self.topic_arns[action] = arn
        return self.topic_arns[action]

    def create(self) -> AlarmEvaluator:
        """Put every queue alarm into moto in state OK (no datapoint breaches yet)."""
        for alarm in self.alarms:
            self._cloudwatch.put_metric_alarm(
                AlarmName=alarm.name,
                AlarmDescription=alarm.description,
                Namespace="AWS/SQS",
                MetricName=METRIC_NAME,
                Dimensions=[{"Name": "QueueName", "Value": alarm.queue_name}],
                Statistic="Maximum",
                Period=60,
                EvaluationPeriods=1,
                Threshold=alarm.threshold,
                ComparisonOperator=alarm.comparison,
                AlarmActions=[self.topic_arn(action) for action in alarm.alarm_actions],
                OKActions=[self.topic_arn(action) for action in alarm.ok_actions],
            )
            self._cloudwatch.set_alarm_state(
                AlarmName=alarm.name, StateValue="OK", StateReason="local stack: created"
            )
        return self

    def state(self, alarm_name: str) -> str:
        found = self._cloudwatch.describe_alarms(AlarmNames=[alarm_name])["MetricAlarms"]
        if not found:
            raise KeyError(f"no alarm named {alarm_name!r}; call create() first")
        return str(found[0]["StateValue"])

    def _visible(self, queue_name: str) -> int:
        url = self._sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
        attributes = self._sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
        )
        return int(attributes["Attributes"]["ApproximateNumberOfMessages"])

    def evaluate(self) -> list[Transition]:
        """Compute every alarm's state now; return the alarms whose state changed."""
        transitions = []
        for alarm in self.alarms:
            value = self._visible(alarm.queue_name)
            breaching = _COMPARISONS[alarm.comparison](value, alarm.threshold)
            state = "ALARM" if breaching else "OK"
            if state == self.state(alarm.name):
                continue
            reason = f"{METRIC_NAME} of {alarm.queue_name} is {value} (threshold {alarm.threshold:g})"
            self._cloudwatch.set_alarm_state(AlarmName=alarm.name, StateValue=state, StateReason=reason)
            actions = alarm.alarm_actions if state == "ALARM" else alarm.ok_actions
            for action in actions:
                self._sns.publish(
                    TopicArn=self.topic_arn(action),
                    Subject=f"{state}: {alarm.name}"[:100],
                    Message=json.dumps(_notification(alarm, state, reason)),
                )
            logger.warning("alarm %s is now %s: %s", alarm.name, state, reason)
            transitions.append(Transition(alarm.name, state, value))
        return transitions


def _notification(alarm: QueueAlarm, state: str, reason: str) -> dict[str, Any]:
    """Return the JSON message CloudWatch publishes to SNS for an alarm state change (main fields)."""
    return {
        "AlarmName": alarm.name,
        "AlarmDescription": alarm.description,
        "NewStateValue": state,
        "NewStateReason": reason,
        "Trigger": {
            "MetricName": METRIC_NAME,
            "Namespace": "AWS/SQS",
            "Dimensions": [{"name": "QueueName", "value": alarm.queue_name}],
            "Threshold": alarm.threshold,
            "ComparisonOperator": alarm.comparison,
        },
    }
