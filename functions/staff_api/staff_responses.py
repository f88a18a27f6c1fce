"""The staff API's error body and caller identity, shared by app.py and its route modules."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types


def json_error(status: HTTPStatus, code: str, message: str) -> Response[str]:
    """Return the error body every staff route uses: `{"code": ..., "message": ...}` in Chinese."""
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=json.dumps({"code": code, "message": message}, ensure_ascii=False),
    )


def caller_arn(event: dict[str, Any]) -> str | None:
    """Return the IAM caller that API Gateway authenticated, or None for an unsigned request."""
    identity = (event.get("requestContext") or {}).get("identity") or {}
    return identity.get("userArn") or identity.get("caller") or None
