"""webhook-verify: GET /wechat. Answers WeChat's server URL check.

WeChat sends `signature`, `timestamp`, `nonce` and `echostr` when an administrator saves the server
URL in the console; the answer is `echostr` byte for byte as `text/plain` when the signature is
right, in every message mode (the echostr of an Official Account is never encrypted). A missing or
malformed parameter is answered 400, a wrong signature or a timestamp outside the replay window
401, always with an empty body (rules in `intake.webhook`).

Cold start, measured on the development machine (2 cores, Python 3.13, median of 9 fresh
interpreters): importing this module takes about 0.53 s (Powertools, and pydantic through
`intake.credentials`); the first request adds about 0.52 s for Powertools Parameters and boto3,
which read the secret. No XML, AES or record code loads here. The handler reads the REST proxy
event itself: Powertools' APIGatewayRestResolver would add about 160 ms of imports to a function
with one route.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from intake.credentials import get_wechat_credentials
from intake.settings import get_settings
from intake.webhook import HttpRequest, HttpResponse, Rejection, verify_url

logger = Logger()
metrics = Metrics()


def handle(event: dict[str, Any]) -> HttpResponse:
    request = HttpRequest.from_api_gateway(event)
    try:
        response = verify_url(request, get_wechat_credentials(), get_settings())
    except Rejection as rejection:
        logger.warning(
            "url check refused",
            extra={"reason": rejection.reason, "status": rejection.status, **rejection.context},
        )
        metrics.add_metric(name="UrlCheckRefused", unit=MetricUnit.Count, value=1)
        return HttpResponse(rejection.status)
    logger.info("url check answered")
    metrics.add_metric(name="UrlCheckAnswered", unit=MetricUnit.Count, value=1)
    return response


@metrics.log_metrics
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        response = handle(event)
    except Exception:
        logger.exception("url check failed")
        metrics.add_metric(name="UrlCheckFailed", unit=MetricUnit.Count, value=1)
        response = HttpResponse(500)
    return response.to_api_gateway()
