"""deadline-watch: every 15 minutes, reminds, flags overdue and escalates (督办) tickets by deadline.

The rules are in `intake.deadline_watch` and docs/workflow.md ("Deadline watch"): a reminder before
the deadline, the overdue flag once it has passed, escalation after the grace period, each once per
deadline on the working-day calendar. Every change is a `TicketChanged` event and a history entry.
"""

from __future__ import annotations

from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from intake import clock
from intake.deadline_watch import DeadlineWatch, WatchResult
from intake.event_bus import EventPublisher
from intake.settings import get_settings
from intake.ticket_repository import TicketRepository
from intake.workflow_config import get_workflow_config
from intake.working_days import get_calendar

settings = get_settings()
logger = Logger()
metrics = Metrics()
dynamodb = boto3.resource("dynamodb")
table = dynamodb.Table(settings.table_name)
repository = TicketRepository(table=table, client=dynamodb.meta.client)
events_client = boto3.client("events")


def build_watch() -> DeadlineWatch:
    publisher = EventPublisher(events_client, settings.event_bus_name)
    return DeadlineWatch(repository, publisher, get_workflow_config().deadline_watch, get_calendar())


def record_metrics(result: WatchResult) -> None:
    metrics.add_metric(name="DeadlineReminderSent", unit=MetricUnit.Count, value=result.reminders)
    metrics.add_metric(name="TicketOverdue", unit=MetricUnit.Count, value=result.overdue)
    metrics.add_metric(name="TicketEscalated", unit=MetricUnit.Count, value=result.escalations)


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    watch = build_watch()
    result = watch.check(clock.now())
    record_metrics(result)
    result.published = watch.publish_outbox()
    summary = result.summary()
    logger.info("deadline watch finished", extra=summary)
    return summary
