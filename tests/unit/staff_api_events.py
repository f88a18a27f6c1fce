"""API Gateway REST proxy events and ticket items for the staff API tests."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from intake import clock
from intake.keys import TICKET_SK, citizen_gsi_pk, status_gsi_pk, ticket_pk

CALLER_ARN = "arn:aws:iam::123456789012:user/dispatcher-li"


def rest_event(
    method: str,
    path: str,
    resource: str,
    path_parameters: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    body: Any = None,
    signed: bool = True,
) -> dict[str, Any]:
    """Return an API Gateway REST proxy event as the IntakeApi stage `api` delivers it."""
    identity: dict[str, Any] = {"sourceIp": "203.0.113.9", "userAgent": "pytest"}
    if signed:
        identity |= {"caller": "AIDAEXAMPLE", "userArn": CALLER_ARN, "accountId": "123456789012"}
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": {
            "Content-Type": "application/json",
            "Host": "example.execute-api.us-east-1.amazonaws.com",
        },
        "multiValueHeaders": {},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {key: [value] for key, value in (query or {}).items()} or None,
        "pathParameters": path_parameters,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": method,
            "path": f"/api{path}" + (f"?{urlencode(query)}" if query else ""),
            "stage": "api",
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "accountId": "123456789012",
            "identity": identity,
            "requestTimeEpoch": 1790000000000,
        },
        "body": None if body is None else (body if isinstance(body, str) else json.dumps(body)),
        "isBase64Encoded": False,
    }


def ticket_item(
    ticket_id: str,
    status: str,
    open_id: str = "oCitizen0001",
    created_at: float = 1790000000.0,
    **fields: Any,
) -> dict[str, Any]:
    """Return a ticket item in the layout of intake.ticket_repository.new_ticket_item."""
    at_iso = clock.iso_utc(created_at)
    item: dict[str, Any] = {
        "PK": ticket_pk(ticket_id),
        "SK": TICKET_SK,
        "item_type": "ticket",
        "ticket_id": ticket_id,
        "open_id": open_id,
        "appeal_type": None,
        "department": None,
        "created_at": at_iso,
        "updated_at": at_iso,
        "submitted_at": at_iso,
        "deadline": None,
        "last_message_at": at_iso,
        "location": None,
        "message_count": 1,
        "urgent": False,
        "emergency": False,
        "status": status,
        "GSI1PK": status_gsi_pk(status),
        "GSI1SK": at_iso,
        "GSI2PK": citizen_gsi_pk(open_id),
        "GSI2SK": at_iso,
    }
    item.update(fields)
    if fields.get("deadline"):
        item["GSI1SK"] = fields["deadline"]
    return item
