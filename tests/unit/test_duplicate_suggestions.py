"""GET /tickets/{ticket_id}/similar through the real staff API handler, and the similarity measures."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from intake import clock
from intake.duplicate_suggestions import bigrams, haversine_m, jaccard
from intake.keys import ticket_pk
from tests.unit.staff_api_events import rest_event, ticket_item

NOW = datetime.fromisoformat("2026-10-26T10:00:00+08:00").timestamp()
CREATED = datetime.fromisoformat("2026-10-20T09:00:00+08:00").timestamp()
# 南城 鸿福路: about 111 m per 0.001 degree of latitude.
LAT, LON = Decimal("23.0200"), Decimal("113.7500")


@pytest.fixture
def staff_api(load_function: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(clock, "now", lambda: NOW)
    return load_function("StaffApiFunction")


@pytest.fixture
def table(stack: Any) -> Any:
    return stack.session.resource("dynamodb").Table(stack.ref("TicketsTable"))


def put_ticket(
    table: Any,
    ticket_id: str,
    text: str,
    status: str = "submitted",
    lat_offset: str | None = "0",
    days: float = 0,
    **fields: Any,
) -> None:
    location = None
    if lat_offset is not None:
        location = {"latitude": LAT + Decimal(lat_offset), "longitude": LON, "label": "", "source": "message"}
    created = CREATED + days * 86400
    table.put_item(Item=ticket_item(ticket_id, status, created_at=created, location=location, **fields))
    table.put_item(
        Item={
            "PK": ticket_pk(ticket_id),
            "SK": f"MSG#{int(created):010d}#0000000000000000",
            "item_type": "message",
            "ticket_id": ticket_id,
            "msg_type": "text",
            "content": text,
        }
    )


def seed(table: Any) -> None:
    noise = {"category": "noise", "appeal_type": "complaint"}
    put_ticket(table, "DG-MAIN", "鸿福路烧烤店每晚噪音扰民，凌晨还在营业", status="dispatched", **noise)
    put_ticket(table, "DG-SAME", "鸿福路烧烤店噪音扰民，凌晨还在营业", lat_offset="0.001", **noise)
    put_ticket(table, "DG-LIKE", "烧烤店晚上很吵", lat_offset="0.002", status="accepted", **noise)
    put_ticket(table, "DG-FAR", "鸿福路烧烤店每晚噪音扰民，凌晨还在营业", lat_offset="0.02", **noise)
    put_ticket(table, "DG-OLD", "鸿福路烧烤店每晚噪音扰民，凌晨还在营业", days=-40, **noise)
    put_ticket(table, "DG-OTHER", "鸿福路烧烤店每晚噪音扰民", category="pollution", appeal_type="complaint")
    put_ticket(table, "DG-DONE", "鸿福路烧烤店每晚噪音扰民", status="closed", **noise)
    put_ticket(table, "DG-MRG", "鸿福路烧烤店每晚噪音扰民", status="merged", merged_into="DG-MAIN", **noise)
    put_ticket(table, "DG-NOLOC", "鸿福路烧烤店每晚噪音扰民", lat_offset=None, **noise)


def similar(staff_api: Any, lambda_context: Any, ticket_id: str, **query: str) -> tuple[int, Any]:
    event = rest_event(
        "GET",
        f"/tickets/{ticket_id}/similar",
        "/tickets/{ticket_id}/similar",
        path_parameters={"ticket_id": ticket_id},
        query=query or None,
    )
    response = staff_api.lambda_handler(event, lambda_context)
    return response["statusCode"], json.loads(response["body"])


def test_similarity_bigram_jaccard() -> None:
    # GIVEN two texts that differ by punctuation and one word
    first = bigrams("烧烤店，噪音！")
    second = bigrams("烧烤店 噪声")

    # WHEN compared
    score = jaccard(first, second)

    # THEN punctuation and spaces are ignored and the shared bigrams count: 烧烤 烤店 店噪 of 5
    assert first == {"烧烤", "烤店", "店噪", "噪音"}
    assert score == pytest.approx(3 / 5)


def test_similarity_haversine_metres() -> None:
    # GIVEN two points 0.001 degree of latitude apart
    # WHEN measured
    distance = haversine_m(23.02, 113.75, 23.021, 113.75)

    # THEN the distance is about 111 m
    assert distance == pytest.approx(111.2, abs=0.5)


def test_similar_ranks_nearby_open_tickets_of_the_category(
    staff_api: Any, table: Any, lambda_context: Any
) -> None:
    # GIVEN open noise tickets nearby, far away, too old, of another category, closed and merged
    seed(table)

    # WHEN the similar tickets of the main ticket are asked for
    status, body = similar(staff_api, lambda_context, "DG-MAIN")

    # THEN only the nearby open noise tickets of the window come back, best text match first
    assert status == 200
    assert [item["ticket_id"] for item in body["items"]] == ["DG-SAME", "DG-LIKE"]
    same, like = body["items"]
    assert same["score"] > like["score"] > 0
    assert same["distance_m"] == pytest.approx(111.2, abs=0.5)
    assert (body["radius_m"], body["days"]) == (500, 30)


def test_similar_radius_and_window_are_parameters(staff_api: Any, table: Any, lambda_context: Any) -> None:
    # GIVEN the seeded tickets
    seed(table)

    # WHEN the radius is widened to 3 km and the window to 60 days
    _, body = similar(staff_api, lambda_context, "DG-MAIN", radius_m="3000", days="60", limit="5")

    # THEN the far and the old ticket are included too
    assert {item["ticket_id"] for item in body["items"]} == {"DG-SAME", "DG-LIKE", "DG-FAR", "DG-OLD"}


def test_similar_without_location_compares_text_only(staff_api: Any, table: Any, lambda_context: Any) -> None:
    # GIVEN a ticket without a location
    seed(table)

    # WHEN its similar tickets are asked for
    _, body = similar(staff_api, lambda_context, "DG-NOLOC")

    # THEN distance is no criterion, reported as null, and at most five come back
    assert len(body["items"]) == 4
    assert {item["distance_m"] for item in body["items"]} == {None}
    assert "DG-NOLOC" not in [item["ticket_id"] for item in body["items"]]


def test_similar_bad_input_rejected(
    staff_api: Any, table: Any, lambda_context: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN the seeded tickets
    seed(table)
    before = table.scan()["Items"]

    cases = [
        ("DG-MAIN", {"radius_m": "-5"}, 400, "radius_m"),
        ("DG-MAIN", {"radius_m": "1000000"}, 400, "radius_m"),
        ("DG-MAIN", {"days": "abc"}, 400, "days"),
        ("DG-MAIN", {"limit": "50"}, 400, "limit"),
        ("DG-NOPE", {}, 404, "DG-NOPE"),
    ]
    for ticket_id, query, expected_status, named in cases:
        # WHEN the request is invalid or names an unknown ticket
        caplog.clear()
        status, body = similar(staff_api, lambda_context, ticket_id, **query)

        # THEN the response is 400 or 404 in Chinese, naming the value, with a log line
        assert status == expected_status, query
        assert named in body["message"], query
        assert caplog.records, query

    # AND nothing stored changed
    assert table.scan()["Items"] == before
