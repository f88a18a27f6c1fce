"""token-refresh: keeps the shared WeChat access token fresh, every 5 minutes.

Fetches from `cgi-bin/stable_token` in normal mode only when the stored token would fall due before
the next run, through the same lease as every other caller (intake.access_token). WeChat errors fail
the invocation so that the function's error metric shows them; errcode 40164 (IP not on the
allow-list) is logged as an infrastructure error with the fix.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from intake.access_token import AccessTokenProvider, RefreshOutcome

logger = Logger()
metrics = Metrics()

_provider: AccessTokenProvider | None = None


def provider() -> AccessTokenProvider:
    """Return the token provider, created on first use because it reads the WeChat secret."""
    global _provider  # noqa: PLW0603 - one provider per container
    if _provider is None:
        _provider = AccessTokenProvider.from_environment()
    return _provider


def refresh() -> RefreshOutcome:
    outcome = provider().refresh_if_due()
    logger.info("access token checked", extra={"outcome": outcome.value})
    if outcome is RefreshOutcome.FETCHED:
        metrics.add_metric(name="AccessTokenFetched", unit=MetricUnit.Count, value=1)
    return outcome


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, str]:
    return {"outcome": refresh().value}
