"""GET /stats through the real staff API handler, against moto."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest

from intake import clock
from tests.unit.staff_api_events import rest_event, ticket_item

NOW = datetime.fromisoformat("2026-10-26T10:00:00+08:00").timestamp()
OCT_1 = datetime.fromisoformat("2026-10-01T09:00:00+08:00").timestamp()
SEP_1 = datetime.fromisoformat("2026-09-01T09:00:00+08:00").timestamp()
PAST_DEADLINE = "2026-10-23T09:30:00.000Z"
FUTURE_DEADLINE = "2026-11-20T09:30:00.000Z"


@pytest.fixture
def staff_api(load_function: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(clock, "now", lambda: NOW)
    return load_function("StaffApiFunction")


@pytest.fixture
def table(stack: Any) -> Any:
    return stack.session.resource("dynamodb").Table(stack.ref("TicketsTable"))


def iso(at: float) -> str:
    return clock.iso_utc(at)


def dispatched_to(department: str, created_at: float) -> dict[str, Any]:
    return {"department": department, "GSI3PK": f"DEPT#{department}", "GSI3SK": iso(created_at)}


def seed(table: Any) -> None:
    """Write eight October tickets (a draft and a cancelled draft among them) and one from September."""
    october = OCT_1
    # Rated 1, replied on time, accepted 2 h and closed 50 h after submission.
    table.put_item(
        Item=ticket_item(
            "DG-R1",
            "rated",
            open_id="oRepeat",
            created_at=october,
            appeal_type="complaint",
            accepted_at=iso(october + 2 * 3600),
            closed_at=iso(october + 50 * 3600),
            replied_on_time=True,
            rating={"score": 1, "label": "满意", "at": iso(october + 60 * 3600)},
            deadline=FUTURE_DEADLINE,
            **dispatched_to("cgj", october),
        )
    )

    # Closed late, rated 3 and reopened: dispatched again with the rating kept, not yet replied.
    table.put_item(
        Item=ticket_item(
            "DG-R3",
            "dispatched",
            open_id="oRepeat",
            created_at=october + 3600,
            appeal_type="complaint",
            accepted_at=iso(october + 5 * 3600),
            rating={"score": 3, "label": "不满意", "at": iso(october + 90 * 3600)},
            reopen_count=1,
            deadline=FUTURE_DEADLINE,
            **dispatched_to("cgj", october + 3600),
        )
    )

    # Replied late and closed, not rated.
    table.put_item(
        Item=ticket_item(
            "DG-L",
            "closed",
            open_id="oRepeat",
            created_at=october + 7200,
            appeal_type="help",
            accepted_at=iso(october + 7200 + 3600),
            closed_at=iso(october + 7200 + 10 * 3600),
            replied_on_time=False,
            deadline=PAST_DEADLINE,
            **dispatched_to("zjj", october + 7200),
        )
    )

    # Open and overdue now.
    table.put_item(
        Item=ticket_item(
            "DG-O",
            "dispatched",
            open_id="oOther",
            created_at=october + 3 * 86400,
            appeal_type="complaint",
            accepted_at=iso(october + 3 * 86400 + 4 * 3600),
            deadline=PAST_DEADLINE,
            **dispatched_to("zjj", october + 3 * 86400),
        )
    )

    table.put_item(Item=ticket_item("DG-S", "submitted", open_id="oThird", created_at=october + 5 * 86400))
    table.put_item(
        Item=ticket_item(
            "DG-M", "merged", open_id="oFourth", created_at=october + 6 * 86400, merged_into="DG-O"
        )
    )

    # Drafts and cancelled drafts never count.
    table.put_item(Item=ticket_item("DG-DRAFT", "collecting", open_id="oThird", created_at=october + 86400))
    table.put_item(Item=ticket_item("DG-CXL", "cancelled", open_id="oThird", created_at=october + 86400))
    # A September ticket outside the October period.
    table.put_item(Item=ticket_item("DG-SEP", "submitted", open_id="oRepeat", created_at=SEP_1))


def get_stats(staff_api: Any, lambda_context: Any, **query: str) -> tuple[int, dict[str, Any]]:
    event = rest_event("GET", "/stats", "/stats", query=query or None)
    response = staff_api.lambda_handler(event, lambda_context)
    return response["statusCode"], json.loads(response["body"])


OCTOBER = {"created_from": "2026-10-01T00:00:00+08:00", "created_to": "2026-10-31T23:59:59+08:00"}


def test_stats_counts_of_a_period(staff_api: Any, table: Any, lambda_context: Any) -> None:
    # GIVEN tickets in October and September, drafts included
    seed(table)

    # WHEN the October figures are asked for
    status, body = get_stats(staff_api, lambda_context, **OCTOBER)

    # THEN only submitted October tickets count, grouped by status, appeal type and department
    assert status == 200
    assert body["total"] == 6
    assert body["by_status"] == {"closed": 1, "dispatched": 2, "merged": 1, "rated": 1, "submitted": 1}
    assert body["by_appeal_type"] == {"complaint": 3, "help": 1, "unclassified": 2}
    assert body["by_department"] == {"cgj": 2, "undispatched": 2, "zjj": 2}


def test_stats_timeliness_and_durations(staff_api: Any, table: Any, lambda_context: Any) -> None:
    # GIVEN the seeded tickets: one replied on time, one replied late, one open past its deadline
    seed(table)

    # WHEN the October figures are asked for
    _, body = get_stats(staff_api, lambda_context, **OCTOBER)

    # THEN the on-time rate is 1 of 3 judged tickets
    assert body["on_time"] == {"on_time": 1, "late": 2, "rate": round(1 / 3, 4)}
    # AND the mean hours to accept (2, 4, 1, 4) and to close (50, 10) come from the recorded times
    assert body["hours_to_accept"] == {"tickets": 4, "mean_hours": 2.75}
    assert body["hours_to_close"] == {"tickets": 2, "mean_hours": 30.0}


def test_stats_satisfaction_and_repeats(staff_api: Any, table: Any, lambda_context: Any) -> None:
    # GIVEN the seeded tickets: ratings 1 and 3, three tickets of one citizen, one merged duplicate
    seed(table)

    # WHEN the October figures are asked for
    _, body = get_stats(staff_api, lambda_context, **OCTOBER)

    # THEN satisfaction counts the two ratings
    assert body["satisfaction"] == {
        "rated": 2,
        "counts": {"1": 1, "2": 0, "3": 1},
        "shares": {"1": 0.5, "2": 0.0, "3": 0.5},
    }
    # AND the citizen with three October tickets makes two repeats; the September one is outside
    assert body["repeats"] == {"repeat_tickets": 2, "repeat_citizens": 1, "merged_duplicates": 1}


def test_stats_department_and_appeal_type_filters(staff_api: Any, table: Any, lambda_context: Any) -> None:
    # GIVEN the seeded tickets
    seed(table)

    # WHEN filtering by department, then by department and appeal type
    _, by_department = get_stats(staff_api, lambda_context, department="zjj", **OCTOBER)
    _, by_both = get_stats(staff_api, lambda_context, department="cgj", appeal_type="help")

    # THEN only that department's tickets count, and the appeal type narrows them further
    assert by_department["total"] == 2
    assert by_department["by_department"] == {"zjj": 2}
    assert by_both["total"] == 0


def test_stats_without_period_counts_every_ticket(staff_api: Any, table: Any, lambda_context: Any) -> None:
    # GIVEN the seeded tickets
    seed(table)

    # WHEN no period is given
    _, body = get_stats(staff_api, lambda_context)

    # THEN every submitted ticket counts, September included
    assert body["total"] == 7


BAD_QUERIES = [
    (
        {"created_from": "2026-10-31T00:00:00+08:00", "created_to": "2026-10-01T00:00:00+08:00"},
        "created_from",
    ),
    ({"created_from": "2024-01-01T00:00:00+08:00", "created_to": "2026-10-01T00:00:00+08:00"}, "created_to"),
    ({"created_from": "yesterday"}, "created_from"),
    ({"department": "nowhere"}, "department"),
    ({"created_from": "0001-01-01T00:00:00"}, "created_from"),
    ({"created_to": "9999-12-31T23:59:59"}, "created_to"),
    ({"appeal_type": "praise"}, "appeal_type"),
]


def test_stats_bad_input_rejected(
    staff_api: Any, table: Any, lambda_context: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN the seeded tickets
    seed(table)
    before = table.scan()["Items"]

    for query, field in BAD_QUERIES:
        # WHEN the query is invalid
        caplog.clear()
        status, body = get_stats(staff_api, lambda_context, **query)

        # THEN the response is 400 in Chinese naming the parameter, with a log line
        assert status == 400, query
        assert body["code"] == "bad_request", query
        assert body["message"].startswith("请求参数有误"), query
        assert field in body["message"], query
        assert "request rejected as invalid" in caplog.text, query

    # AND nothing stored changed
    assert table.scan()["Items"] == before


def auto_answer_record(answered_at: float) -> dict[str, Any]:
    """Return the `auto_answer` attribute as ticket-write records it (intake.auto_answer)."""
    return {
        "entry_id": "kb-0001",
        "entry_version": 1,
        "question": "社保卡怎么办理",
        "score": "0.9",
        "answer": "携带身份证到社保窗口办理。",
        "answered_at": iso(answered_at),
    }


def test_stats_auto_answers_counted_apart(staff_api: Any, table: Any, lambda_context: Any) -> None:
    # GIVEN the seeded tickets, plus two knowledge-base answers of the citizen with three tickets (one
    # closed by the sweep, one still replied) and one answer another citizen handed over to staff
    seed(table)
    answered = OCT_1 + 3600
    for ticket_id, status, extra in [
        ("DG-AA1", "closed", {"closed_at": iso(answered + 24 * 3600)}),
        ("DG-AA2", "replied", {}),
    ]:
        table.put_item(
            Item=ticket_item(
                ticket_id,
                status,
                open_id="oRepeat",
                created_at=answered,
                appeal_type="consultation",
                replied_at=iso(answered),
                replied_on_time=True,
                auto_answer=auto_answer_record(answered),
                **extra,
            )
        )
    table.put_item(
        Item=ticket_item(
            "DG-AA3",
            "submitted",
            open_id="oAsker",
            created_at=answered,
            appeal_type="consultation",
            auto_answer=auto_answer_record(answered),
            handed_off_at=iso(answered + 3600),
        )
    )

    # WHEN the October figures are asked for
    _, body = get_stats(staff_api, lambda_context, **OCTOBER)

    # THEN every ticket counts in the totals, and the two unclaimed answers are reported apart
    assert body["total"] == 9
    assert body["auto_answered"] == 2
    assert body["by_appeal_type"]["consultation"] == 3
    # AND they change neither timeliness nor hours to close nor repeats (the seeded figures)
    assert body["on_time"] == {"on_time": 1, "late": 2, "rate": round(1 / 3, 4)}
    assert body["hours_to_close"] == {"tickets": 2, "mean_hours": 30.0}
    assert body["repeats"] == {"repeat_tickets": 2, "repeat_citizens": 1, "merged_duplicates": 1}
