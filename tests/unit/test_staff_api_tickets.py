"""GET /tickets and GET /tickets/{ticket_id} through the real handler, against moto."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from intake import clock
from intake.keys import ticket_pk
from tests.unit.staff_api_events import rest_event, ticket_item

NOW = datetime.fromisoformat("2026-10-26T10:00:00+08:00").timestamp()
PAST_DEADLINE = "2026-10-23T09:30:00.000Z"
FUTURE_DEADLINE = "2026-11-20T09:30:00.000Z"


@pytest.fixture
def staff_api(load_function: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(clock, "now", lambda: NOW)
    return load_function("StaffApiFunction")


@pytest.fixture
def table(stack: Any) -> Any:
    return stack.session.resource("dynamodb").Table(stack.ref("TicketsTable"))


def list_tickets(staff_api: Any, lambda_context: Any, **query: str) -> tuple[int, dict[str, Any]]:
    event = rest_event("GET", "/tickets", "/tickets", query=query or None)
    response = staff_api.lambda_handler(event, lambda_context)
    return response["statusCode"], json.loads(response["body"])


def seed(table: Any) -> None:
    table.put_item(
        Item=ticket_item(
            "DG-A",
            "dispatched",
            department="cgj",
            appeal_type="complaint",
            deadline=PAST_DEADLINE,
            GSI3PK="DEPT#cgj",
            GSI3SK="2026-10-01T00:00:00.000Z",
        )
    )
    table.put_item(
        Item=ticket_item(
            "DG-B",
            "dispatched",
            department="zjj",
            appeal_type="help",
            deadline=FUTURE_DEADLINE,
            GSI3PK="DEPT#zjj",
            GSI3SK="2026-10-01T00:00:00.000Z",
        )
    )
    table.put_item(Item=ticket_item("DG-C", "submitted", open_id="oOther", created_at=1793000000.0))
    table.put_item(
        Item=ticket_item(
            "DG-D",
            "awaiting_citizen",
            appeal_type="complaint",
            deadline=PAST_DEADLINE,
            paused_at="2026-10-24T01:00:00.000Z",
            resume_status="dispatched",
        )
    )
    table.put_item(Item=ticket_item("DG-E", "closed", appeal_type="complaint", deadline=PAST_DEADLINE))


def test_list_filters(staff_api: Any, table: Any, lambda_context: Any) -> None:
    # GIVEN five tickets in different states
    seed(table)

    cases = [
        ({}, {"DG-A", "DG-B", "DG-C", "DG-D", "DG-E"}),
        ({"status": "dispatched"}, {"DG-A", "DG-B"}),
        ({"overdue": "true"}, {"DG-A", "DG-D"}),
        ({"overdue": "false", "status": "dispatched"}, {"DG-B"}),
        ({"department": "cgj"}, {"DG-A"}),
        ({"appeal_type": "complaint"}, {"DG-A", "DG-D", "DG-E"}),
        ({"citizen": "oOther"}, {"DG-C"}),
        ({"created_from": "2026-10-26T00:00:00+08:00"}, {"DG-C"}),
        ({"created_to": "2026-10-26T00:00:00+08:00", "status": "submitted"}, set()),
    ]
    for query, expected in cases:
        # WHEN listing with the filter
        status, body = list_tickets(staff_api, lambda_context, **query)

        # THEN exactly the matching tickets come back, on one page
        assert status == 200, query
        assert {item["ticket_id"] for item in body["items"]} == expected, query
        assert body["next_token"] is None, query


def test_list_overdue_flag_and_labels(staff_api: Any, table: Any, lambda_context: Any) -> None:
    # GIVEN the seeded tickets
    seed(table)

    # WHEN listing dispatched tickets
    _, body = list_tickets(staff_api, lambda_context, status="dispatched")

    # THEN each carries its overdue flag and Chinese labels
    by_id = {item["ticket_id"]: item for item in body["items"]}
    assert by_id["DG-A"]["overdue"] is True
    assert by_id["DG-B"]["overdue"] is False
    assert by_id["DG-A"]["status_label"] == "已派单"
    assert by_id["DG-A"]["department_name"] == "东莞市城市管理和综合执法局"


def test_list_paginates_without_loss(staff_api: Any, table: Any, lambda_context: Any) -> None:
    # GIVEN 7 submitted tickets and 2 others
    for number in range(7):
        table.put_item(Item=ticket_item(f"DG-P{number}", "submitted", created_at=1790000000.0 + number))
    table.put_item(Item=ticket_item("DG-X", "closed"))
    table.put_item(Item=ticket_item("DG-Y", "dispatched"))

    for query in ({"status": "submitted"}, {}):
        # WHEN paging through with limit 3
        seen: list[str] = []
        token: str | None = None
        pages = 0
        while True:
            params = {**query, "limit": "3", **({"next_token": token} if token else {})}
            status, body = list_tickets(staff_api, lambda_context, **params)
            assert status == 200
            assert len(body["items"]) <= 3
            seen += [item["ticket_id"] for item in body["items"]]
            token = body["next_token"]
            pages += 1
            if token is None:
                break

        # THEN every ticket appears exactly once
        expected = 7 if query else 9
        assert len(seen) == expected, query
        assert len(set(seen)) == expected, query
        assert pages >= 3, query


@pytest.mark.parametrize(
    "query",
    [
        {"status": "lost"},
        {"limit": "0"},
        {"limit": "101"},
        {"overdue": "maybe"},
        {"created_from": "yesterday"},
        {"appeal_type": "gossip"},
        {"next_token": "not-a-token"},
        {"next_token": "eyJxIjo5LCJrIjp7fX0="},  # base64 of {"q":9,"k":{}}: a query index that does not exist
    ],
)
def test_list_invalid_query_is_400(
    staff_api: Any, table: Any, lambda_context: Any, query: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    # WHEN the query string is invalid
    status, body = list_tickets(staff_api, lambda_context, **query)

    # THEN 400 in our error shape, and the rejection is logged
    assert status == 400
    assert body["code"] == "bad_request"
    assert body["message"].startswith("请求参数有误")
    assert "request rejected as invalid" in caplog.text


def test_get_ticket_with_messages_media_and_history(
    staff_api: Any, table: Any, stack: Any, lambda_context: Any
) -> None:
    # GIVEN a ticket with a text message, a stored photo and a history entry
    table.put_item(
        Item=ticket_item(
            "DG-G",
            "dispatched",
            department="cgj",
            deadline=FUTURE_DEADLINE,
            location={
                "latitude": Decimal("23.02"),
                "longitude": Decimal("113.75"),
                "label": "东莞市南城街道",
                "source": "message",
                "reported_at": 1790000000,
            },
        )
    )
    base = {
        "PK": ticket_pk("DG-G"),
        "item_type": "message",
        "ticket_id": "DG-G",
        "created_at": "2026-09-21T22:13:20.000Z",
    }
    table.put_item(
        Item={**base, "SK": "MSG#1790000000#aaaa", "msg_id": "1", "msg_type": "text", "content": "路灯坏了"}
    )
    table.put_item(
        Item={
            **base,
            "SK": "MSG#1790000001#bbbb",
            "msg_id": "2",
            "msg_type": "image",
            "media": {
                "status": "stored",
                "content_type": "image/jpeg",
                "size": 2048,
                "sha256": "ab" * 32,
                "s3_key": "media/DG-G/2.jpg",
                "staff_s3_key": "media/DG-G/2.clean.jpg",
            },
        }
    )
    table.put_item(
        Item={
            "PK": ticket_pk("DG-G"),
            "SK": "HIST#2026-09-21T22:13:20.000Z#000001",
            "item_type": "history",
            "ticket_id": "DG-G",
            "entry_type": "created",
            "actor": "citizen",
            "at": "2026-09-21T22:13:20.000Z",
            "detail": {},
        }
    )

    # WHEN staff read it
    event = rest_event("GET", "/tickets/DG-G", "/tickets/{ticket_id}", path_parameters={"ticket_id": "DG-G"})
    response = staff_api.lambda_handler(event, lambda_context)

    # THEN messages, location, deadline and history are there
    body = json.loads(response["body"])
    assert response["statusCode"] == 200
    assert body["deadline"] == FUTURE_DEADLINE
    assert body["location"]["label"] == "东莞市南城街道"
    assert [message["msg_type"] for message in body["messages"]] == ["text", "image"]
    assert body["messages"][0]["content"] == "路灯坏了"
    assert [entry["entry_type"] for entry in body["history"]] == ["created"]

    # AND the photo links, for 300 seconds, to the copy without EXIF, never to the original
    media = body["messages"][1]["media"]
    url = urlparse(media["url"])
    assert stack.ref("MediaBucket") in url.netloc + url.path
    assert url.path.endswith("/media/DG-G/2.clean.jpg")
    assert parse_qs(url.query)["X-Amz-Expires"] == ["300"]
    assert media["s3_key"] == "media/DG-G/2.clean.jpg"
    assert media["sha256"] == "ab" * 32


def test_get_unknown_ticket_and_route_are_404(staff_api: Any, stack: Any, lambda_context: Any) -> None:
    # WHEN an unknown ticket and an unknown route are requested
    missing = staff_api.lambda_handler(
        rest_event(
            "GET", "/tickets/DG-NONE", "/tickets/{ticket_id}", path_parameters={"ticket_id": "DG-NONE"}
        ),
        lambda_context,
    )
    unknown = staff_api.lambda_handler(rest_event("GET", "/nothing", "/nothing"), lambda_context)

    # THEN both are 404 in our error shape
    assert missing["statusCode"] == 404
    assert json.loads(missing["body"])["code"] == "not_found"
    assert unknown["statusCode"] == 404
    assert json.loads(unknown["body"])["code"] == "not_found"


def test_list_unsigned_is_403(staff_api: Any, stack: Any, lambda_context: Any) -> None:
    # WHEN GET /tickets arrives without an IAM identity
    response = staff_api.lambda_handler(
        rest_event("GET", "/tickets", "/tickets", signed=False), lambda_context
    )

    # THEN 403, saying in Chinese that authentication failed
    assert response["statusCode"] == 403
    assert json.loads(response["body"])["code"] == "forbidden"
    assert json.loads(response["body"])["message"] == "未通过身份验证。"
