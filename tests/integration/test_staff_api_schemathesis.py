"""Schemathesis against openapi.json over HTTP on the local stack: no 5xx, every response fits the schema.

The local stack's API gateway requires SigV4 on the staff API's AWS_IAM routes (devstack.api_gateway),
so every generated request is signed and reaches the real handler in a worker process. A few tickets are written to DynamoDB
through the stack's moto endpoint first, so the listing, stats and Open311 routes return data.
Every operation gets a bounded number of valid and of invalid generated requests; the whole module
takes about a minute.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, response_schema_conformance

from devstack.api_gateway import SigV4RequestAuth
from devstack.runner import LocalStack
from functions.staff_api.export_openapi import OPENAPI_FILE
from intake import clock
from intake.keys import TICKET_SK, citizen_gsi_pk, department_gsi_pk, status_gsi_pk, ticket_pk

pytestmark = pytest.mark.integration

# Generated requests per operation; the 19 operations make about 475 requests.
POSITIVE_EXAMPLES = 15
NEGATIVE_EXAMPLES = 10
CHECKS = [not_a_server_error, response_schema_conformance]
# 2026-10-01 09:00 China time.
CREATED = 1790816400.0
SEEDED = ("DG20261001-0001", "DG20261001-0002", "DG20261001-0003")


def seeded_ticket(ticket_id: str, status: str, offset: int, **fields: Any) -> dict[str, Any]:
    at_iso = clock.iso_utc(CREATED + offset)
    item = {
        "PK": ticket_pk(ticket_id),
        "SK": TICKET_SK,
        "item_type": "ticket",
        "ticket_id": ticket_id,
        "open_id": f"oSchemathesis{offset}",
        "status": status,
        "appeal_type": "complaint",
        "category": "noise",
        "created_at": at_iso,
        "updated_at": at_iso,
        "submitted_at": at_iso,
        "accepted_at": clock.iso_utc(CREATED + offset + 3600),
        "deadline": "2026-10-20T09:30:00.000Z",
        "location": {
            "latitude": Decimal("23.02") + Decimal(offset) / 100000,
            "longitude": Decimal("113.75"),
            "label": "南城",
            "source": "message",
        },
        "message_count": 1,
        "GSI1PK": status_gsi_pk(status),
        "GSI1SK": "2026-10-20T09:30:00.000Z",
        "GSI2PK": citizen_gsi_pk(f"oSchemathesis{offset}"),
        "GSI2SK": at_iso,
        **fields,
    }
    if item.get("department"):
        item |= {"GSI3PK": department_gsi_pk(str(item["department"])), "GSI3SK": at_iso}
    return item


def seed(local_stack: LocalStack) -> None:
    assert local_stack.stack is not None
    table = local_stack.stack.session.resource("dynamodb", endpoint_url=local_stack.moto_url).Table(
        local_stack.stack.ref("TicketsTable")
    )
    items = [
        seeded_ticket(SEEDED[0], "dispatched", 0, department="cgj"),
        seeded_ticket(SEEDED[1], "accepted", 60),
        seeded_ticket(
            SEEDED[2],
            "rated",
            120,
            department="zjj",
            replied_on_time=True,
            closed_at=clock.iso_utc(CREATED + 86400),
            rating={"score": 2, "label": "基本满意", "at": clock.iso_utc(CREATED + 90000)},
        ),
    ]
    for item in items:
        table.put_item(Item=item)
        table.put_item(
            Item={
                "PK": item["PK"],
                "SK": f"MSG#{int(CREATED):010d}#{item['ticket_id'][-4:]:0>16}",
                "item_type": "message",
                "ticket_id": item["ticket_id"],
                "msg_id": "1",
                "msg_type": "text",
                "created_at": item["created_at"],
                "content": "鸿福路烧烤店夜间噪音扰民",
            }
        )


@pytest.fixture(scope="module")
def staff_api_schema(local_stack: LocalStack) -> Any:
    seed(local_stack)
    return schemathesis.openapi.from_path(OPENAPI_FILE)


def run_operation(operation: Any, mode: GenerationMode, base_url: str, examples: int) -> None:
    """Send `examples` generated requests of one operation and check each response."""

    @settings(max_examples=examples, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case: Any) -> None:
        case.call_and_validate(base_url=base_url, checks=CHECKS, auth=SigV4RequestAuth())

    check()


def test_staff_api_generated_requests_conform(staff_api_schema: Any, local_stack: LocalStack) -> None:
    # GIVEN every operation of openapi.json
    # (schemathesis's own pytest integration is not used: its plugin fails under pytest 9)
    operations = [result.ok() for result in staff_api_schema.get_all_operations()]
    listed = json.loads(OPENAPI_FILE.read_text(encoding="utf-8"))["paths"]
    assert len(operations) == sum(len(methods) for methods in listed.values())

    for operation in operations:
        # WHEN valid and invalid requests generated from the schema are sent to the local stack
        # THEN no response is a 5xx and every body fits the schema of its status code
        run_operation(operation, GenerationMode.POSITIVE, f"{local_stack.url}/api", POSITIVE_EXAMPLES)
        if len(operation.query) + len(operation.path_parameters) + len(operation.body):
            # An operation without inputs has no invalid request to generate.
            run_operation(operation, GenerationMode.NEGATIVE, f"{local_stack.url}/api", NEGATIVE_EXAMPLES)


def test_staff_api_seeded_ticket_routes_conform(staff_api_schema: Any, local_stack: LocalStack) -> None:
    # GIVEN the seeded tickets, which generated ids almost never hit
    base_url = f"{local_stack.url}/api"
    calls = [("/tickets/{ticket_id}", {"ticket_id": ticket_id}) for ticket_id in SEEDED] + [
        ("/tickets/{ticket_id}/similar", {"ticket_id": SEEDED[0]}),
        ("/open311/v2/requests/{service_request_id}.json", {"service_request_id": SEEDED[2]}),
    ]
    for path, parameters in calls:
        # WHEN each ticket route is called with a seeded id
        case = staff_api_schema[path]["GET"].Case(path_parameters=parameters)
        response = case.call(base_url=base_url, auth=SigV4RequestAuth())

        # THEN the response is 200 with a body that fits the schema
        assert response.status_code == 200, (path, parameters, response.text)
        case.validate_response(response, checks=CHECKS)
