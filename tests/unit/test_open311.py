"""Open311 GeoReport v2 read endpoints through the real staff API handler, against moto."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from intake import clock
from tests.unit.staff_api_events import rest_event, ticket_item

NOW = datetime.fromisoformat("2026-10-26T10:00:00+08:00").timestamp()
OCT_1 = datetime.fromisoformat("2026-10-01T09:00:00+08:00").timestamp()
DEADLINE = "2026-10-20T09:30:00.000Z"
OPEN_ID = "oSecretCitizen42"
CITIZEN_TEXT = "我家楼下的烧烤店每晚噪音很大，电话13800000000"
LOCATION = {
    "latitude": Decimal("23.0205"),
    "longitude": Decimal("113.7518"),
    "label": "东莞市南城街道鸿福路",
    "source": "message",
}


@pytest.fixture
def staff_api(load_function: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(clock, "now", lambda: NOW)
    return load_function("StaffApiFunction")


@pytest.fixture
def table(stack: Any) -> Any:
    return stack.session.resource("dynamodb").Table(stack.ref("TicketsTable"))


def accepted(at: float, **fields: Any) -> dict[str, Any]:
    return {"accepted_at": clock.iso_utc(at + 3600), **fields}


def seed(table: Any) -> None:
    table.put_item(
        Item=ticket_item(
            "DG-OPEN",
            "dispatched",
            open_id=OPEN_ID,
            created_at=OCT_1,
            **accepted(
                OCT_1,
                appeal_type="complaint",
                category="noise",
                department="town_nancheng",
                deadline=DEADLINE,
                location=LOCATION,
                reply_text="已联系店主整改",
            ),
        )
    )
    table.put_item(
        Item={
            "PK": "TICKET#DG-OPEN",
            "SK": "MSG#1790000000#abcdef",
            "item_type": "message",
            "msg_type": "text",
            "content": CITIZEN_TEXT,
        }
    )
    table.put_item(
        Item=ticket_item(
            "DG-RATED",
            "rated",
            created_at=OCT_1 + 86400,
            **accepted(
                OCT_1 + 86400,
                appeal_type="help",
                department="swj",
                rating={"score": 2, "label": "基本满意", "at": clock.iso_utc(OCT_1 + 5 * 86400)},
            ),
        )
    )
    table.put_item(
        Item=ticket_item(
            "DG-MERGED",
            "merged",
            created_at=OCT_1 + 2 * 86400,
            **accepted(OCT_1 + 2 * 86400, appeal_type="complaint", category="noise", merged_into="DG-OPEN"),
        )
    )
    # Not published: a draft, a cancelled draft, a submitted ticket and one rejected before acceptance.
    table.put_item(Item=ticket_item("DG-DRAFT", "collecting", created_at=OCT_1))
    table.put_item(Item=ticket_item("DG-CXL", "cancelled", created_at=OCT_1))
    table.put_item(Item=ticket_item("DG-NEW", "submitted", created_at=OCT_1))
    table.put_item(Item=ticket_item("DG-REJ", "rejected", created_at=OCT_1, rejected_reason="重复"))


def call(staff_api: Any, lambda_context: Any, path: str, **query: str) -> tuple[int, Any]:
    event = rest_event(
        "GET",
        path,
        "/open311/v2/{proxy+}",
        path_parameters={"proxy": path.removeprefix("/open311/v2/")},
        query=query or None,
    )
    response = staff_api.lambda_handler(event, lambda_context)
    return response["statusCode"], json.loads(response["body"])


def test_open311_services_list_categories_and_appeal_types(staff_api: Any, lambda_context: Any) -> None:
    # GIVEN the staff API
    # WHEN the service list is asked for
    status, body = call(staff_api, lambda_context, "/open311/v2/services.json")

    # THEN it is a JSON array with every category and every appeal type as realtime services
    assert status == 200
    codes = {service["service_code"]: service for service in body}
    assert codes["noise"]["service_name"] == "噪声扰民"
    assert codes["noise"]["group"] == "诉求分类"
    assert codes["appeal_complaint"]["service_name"] == "投诉"
    assert codes["appeal_complaint"]["group"] == "诉求类型"
    assert {service["type"] for service in body} == {"realtime"}
    assert {service["metadata"] for service in body} == {False}


def test_open311_requests_publish_accepted_tickets_only(
    staff_api: Any, table: Any, lambda_context: Any
) -> None:
    # GIVEN accepted, draft, cancelled, submitted and rejected-before-acceptance tickets
    seed(table)

    # WHEN the requests of the default window (90 days before now) are asked for
    status, body = call(staff_api, lambda_context, "/open311/v2/requests.json")

    # THEN only the accepted tickets are published, newest first
    assert status == 200
    assert [request["service_request_id"] for request in body] == ["DG-MERGED", "DG-RATED", "DG-OPEN"]


def test_open311_request_fields_without_personal_data(
    staff_api: Any, table: Any, lambda_context: Any
) -> None:
    # GIVEN an accepted ticket with a location, a citizen text and a staff reply
    seed(table)

    # WHEN it is read by id
    status, body = call(staff_api, lambda_context, "/open311/v2/requests/DG-OPEN.json")

    # THEN it is one request in an array, mapped to GeoReport fields with China time
    assert status == 200
    (request,) = body
    assert request == {
        "service_request_id": "DG-OPEN",
        "status": "open",
        "status_notes": "已派单",
        "service_name": "噪声扰民",
        "service_code": "noise",
        "description": "噪声扰民",
        "agency_responsible": "南城街道办事处",
        "requested_datetime": "2026-10-01T09:00:00+08:00",
        "updated_datetime": "2026-10-01T09:00:00+08:00",
        "expected_datetime": "2026-10-20T17:30:00+08:00",
        "address": "东莞市南城街道鸿福路",
        "lat": 23.0205,
        "long": 113.7518,
    }
    # AND no OpenID, citizen text, staff reply or media appears anywhere
    raw = json.dumps(body, ensure_ascii=False)
    assert OPEN_ID not in raw
    assert "烧烤店" not in raw
    assert "整改" not in raw
    assert "media_url" not in raw


def test_open311_closed_requests_carry_the_outcome(staff_api: Any, table: Any, lambda_context: Any) -> None:
    # GIVEN a rated ticket and a merged duplicate
    seed(table)

    # WHEN the closed requests are asked for
    _, body = call(staff_api, lambda_context, "/open311/v2/requests.json", status="closed")

    # THEN both are closed, with the rating or the main ticket in the notes
    notes = {request["service_request_id"]: request["status_notes"] for request in body}
    assert notes == {"DG-RATED": "已评价，市民评价：基本满意", "DG-MERGED": "已合并，与工单 DG-OPEN 合并办理"}


def test_open311_requests_filters(staff_api: Any, table: Any, lambda_context: Any) -> None:
    # GIVEN the seeded tickets
    seed(table)

    cases = [
        ({"status": "open"}, ["DG-OPEN"]),
        ({"service_code": "noise"}, ["DG-MERGED", "DG-OPEN"]),
        ({"service_code": "appeal_help,noise", "status": "closed"}, ["DG-MERGED", "DG-RATED"]),
        ({"start_date": "2026-10-02T00:00:00+08:00", "end_date": "2026-10-02T23:59:59+08:00"}, ["DG-RATED"]),
        ({"limit": "1"}, ["DG-MERGED"]),
    ]
    for query, expected in cases:
        # WHEN filtering
        status, body = call(staff_api, lambda_context, "/open311/v2/requests.json", **query)

        # THEN exactly the matching requests come back
        assert status == 200, query
        assert [request["service_request_id"] for request in body] == expected, query


def test_open311_unpublished_request_not_found(
    staff_api: Any, table: Any, lambda_context: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN tickets that are not public, and an id that does not exist
    seed(table)

    for ticket_id in ["DG-DRAFT", "DG-CXL", "DG-NEW", "DG-REJ", "DG-NOPE"]:
        # WHEN one is read by id
        caplog.clear()
        status, body = call(staff_api, lambda_context, f"/open311/v2/requests/{ticket_id}.json")

        # THEN the response is 404, the same for every case, with a log line naming the ticket
        assert status == 404, ticket_id
        assert body == {"code": "not_found", "message": f"未找到：工单 {ticket_id}"}
        assert ticket_id in [getattr(record, "ticket_id", None) for record in caplog.records]


BAD_QUERIES = [
    ({"status": "pending"}, "status"),
    ({"service_code": "noise,potholes"}, "service_code"),
    ({"start_date": "2026-13-01"}, "start_date"),
    ({"start_date": "2026-10-20T00:00:00+08:00", "end_date": "2026-10-01T00:00:00+08:00"}, "start_date"),
    ({"start_date": "2020-01-01T00:00:00+08:00", "end_date": "2026-10-01T00:00:00+08:00"}, "end_date"),
    ({"limit": "0"}, "limit"),
    ({"end_date": "0001-01-01T00:00:00"}, "end_date"),
    ({"limit": "100000"}, "limit"),
]


def test_open311_bad_input_rejected(
    staff_api: Any, table: Any, lambda_context: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN the seeded tickets
    seed(table)
    before = table.scan()["Items"]

    for query, field in BAD_QUERIES:
        # WHEN the query is invalid
        caplog.clear()
        status, body = call(staff_api, lambda_context, "/open311/v2/requests.json", **query)

        # THEN the response is 400 in Chinese naming the parameter, with a log line
        assert status == 400, query
        assert body["code"] == "bad_request", query
        assert field in body["message"], query
        assert "request rejected as invalid" in caplog.text, query

    # AND nothing stored changed
    assert table.scan()["Items"] == before


def test_open311_unknown_path_not_found(staff_api: Any, lambda_context: Any) -> None:
    # GIVEN the staff API
    # WHEN a GeoReport path that is not implemented is asked for
    status, body = call(staff_api, lambda_context, "/open311/v2/discovery.json")

    # THEN the response is 404 in the error shape
    assert status == 404
    assert body["code"] == "not_found"
