"""POST /tickets/{ticket_id}/actions through the real handler, against moto."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

import pytest
from botocore.stub import Stubber

from intake import clock
from intake.keys import CITIZEN_SK, STATUS_INDEX, citizen_pk, status_gsi_pk, ticket_pk
from tests.conftest import drain_event_details
from tests.unit.staff_api_events import CALLER_ARN, rest_event, ticket_item

# Wednesday 2026-09-30 10:00 China time: 国庆 starts the next day.
ACCEPTED_AT = datetime.fromisoformat("2026-09-30T10:00:00+08:00").timestamp()


@pytest.fixture
def staff_api(load_function: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(clock, "now", lambda: ACCEPTED_AT)
    return load_function("StaffApiFunction")


@pytest.fixture
def table(stack: Any) -> Any:
    return stack.session.resource("dynamodb").Table(stack.ref("TicketsTable"))


@pytest.fixture
def notices(stack: Any) -> Any:
    """Return a function that drains the outbound queue and returns the CitizenNotice details."""
    sqs = stack.client("sqs")
    url = stack.ref("OutboundQueue")

    return lambda: drain_event_details(sqs, url)


def act(
    staff_api: Any, lambda_context: Any, ticket_id: str, body: Any, signed: bool = True
) -> dict[str, Any]:
    event = rest_event(
        "POST",
        f"/tickets/{ticket_id}/actions",
        "/tickets/{ticket_id}/actions",
        path_parameters={"ticket_id": ticket_id},
        body=body,
        signed=signed,
    )
    response: dict[str, Any] = staff_api.lambda_handler(event, lambda_context)
    return response


def history(table: Any, ticket_id: str) -> list[dict[str, Any]]:
    response = table.query(
        KeyConditionExpression="PK = :pk AND begins_with(SK, :hist)",
        ExpressionAttributeValues={":pk": ticket_pk(ticket_id), ":hist": "HIST#"},
    )
    return list(response["Items"])


def stored(table: Any, ticket_id: str) -> dict[str, Any]:
    item: dict[str, Any] = table.get_item(Key={"PK": ticket_pk(ticket_id), "SK": "TICKET"})["Item"]
    return item


def test_accept_sets_deadline_after_national_day(
    staff_api: Any, table: Any, lambda_context: Any, notices: Any
) -> None:
    # GIVEN a submitted ticket
    table.put_item(Item=ticket_item("DG20260930-0001", "submitted"))

    # WHEN a dispatcher accepts it as a consultation (3 working days)
    response = act(
        staff_api,
        lambda_context,
        "DG20260930-0001",
        {"action": "accept", "actor": "dispatcher-li", "appeal_type": "consultation", "category": "noise"},
    )

    # THEN the deadline skips 国庆 and counts the make-up Saturday 2026-10-10
    body = json.loads(response["body"])
    assert response["statusCode"] == 200
    assert body["ticket"]["status"] == "accepted"
    assert body["ticket"]["deadline"] == "2026-10-10T09:30:00.000Z"
    item = stored(table, "DG20260930-0001")
    assert item["GSI1PK"] == status_gsi_pk("accepted")
    assert item["GSI1SK"] == "2026-10-10T09:30:00.000Z"
    assert item["version"] == 1

    # AND the history records actor, caller and before/after values
    (entry,) = history(table, "DG20260930-0001")
    assert entry["entry_type"] == "action:accept"
    assert entry["actor"] == "dispatcher-li"
    assert entry["detail"]["caller"] == CALLER_ARN
    assert entry["before_status"] == "submitted"
    assert entry["after_status"] == "accepted"
    assert entry["detail"]["before"]["deadline"] is None
    assert entry["detail"]["after"]["deadline"] == "2026-10-10T09:30:00.000Z"
    assert body["history_entry_id"] == entry["SK"]

    # AND the citizen is told the deadline in China time
    (notice,) = notices()
    assert notice["kind"] == "status"
    assert notice["open_id"] == "oCitizen0001"
    assert "2026-10-10 17:30" in notice["text"]
    assert notice["notice_id"] == f"DG20260930-0001:{entry['SK']}:status"


def test_forbidden_transition_is_409_and_changes_nothing(
    staff_api: Any, table: Any, lambda_context: Any
) -> None:
    # GIVEN a ticket that is still a draft
    table.put_item(Item=ticket_item("DG-DRAFT", "collecting"))

    # WHEN staff try to close it
    response = act(staff_api, lambda_context, "DG-DRAFT", {"action": "close", "actor": "dispatcher-li"})

    # THEN the answer is 409 with a Chinese message and the ticket is untouched
    body = json.loads(response["body"])
    assert response["statusCode"] == 409
    assert body["code"] == "conflict"
    assert body["message"].startswith("当前状态下不能执行该操作")
    assert "填写中" in body["message"]
    assert stored(table, "DG-DRAFT")["status"] == "collecting"
    assert history(table, "DG-DRAFT") == []


def test_stale_version_is_409(staff_api: Any, table: Any, lambda_context: Any) -> None:
    # GIVEN a ticket whose version moves on between read and write (simulated by a concurrent writer)
    table.put_item(Item=ticket_item("DG-RACE", "submitted", version=3))
    original_get_item = staff_api.actions._repository.get_item

    def read_then_concurrent_write(pk: str, sk: str) -> Any:
        item = original_get_item(pk, sk)
        table.update_item(
            Key={"PK": pk, "SK": sk}, UpdateExpression="SET version = :v", ExpressionAttributeValues={":v": 4}
        )
        return item

    staff_api.actions._repository.get_item = read_then_concurrent_write

    # WHEN staff accept it
    response = act(
        staff_api, lambda_context, "DG-RACE", {"action": "accept", "actor": "a", "appeal_type": "complaint"}
    )

    # THEN the second writer loses with 409 and no history entry is written
    assert response["statusCode"] == 409
    assert stored(table, "DG-RACE")["status"] == "submitted"
    assert history(table, "DG-RACE") == []


INVALID_BODIES: list[Any] = [
    {"action": "accept", "actor": "a"},
    {"action": "accept", "actor": "a", "appeal_type": "gossip"},
    {"action": "fly", "actor": "a"},
    {"action": "dispatch", "actor": "a", "department": "cgj", "extra": 1},
    {"action": "extend", "actor": "a", "reason": "r", "working_days": 0},
    {"action": "reply", "actor": "", "text": "x"},
    "{not json",
    None,
]


def test_invalid_body_is_400(
    staff_api: Any, table: Any, lambda_context: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a submitted ticket
    table.put_item(Item=ticket_item("DG-BAD", "submitted"))

    for body in INVALID_BODIES:
        # WHEN the action body is malformed
        caplog.clear()
        response = act(staff_api, lambda_context, "DG-BAD", body)

        # THEN the answer is 400 in our error shape, logged, and nothing changed
        payload = json.loads(response["body"])
        assert response["statusCode"] == 400, body
        assert payload["code"] == "bad_request", body
        assert payload["message"].startswith("请求参数有误"), body
        assert "request rejected as invalid" in caplog.text, body
        assert stored(table, "DG-BAD") == ticket_item("DG-BAD", "submitted"), body
        assert history(table, "DG-BAD") == [], body


def test_body_not_utf8_is_400(
    staff_api: Any, table: Any, lambda_context: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a submitted ticket
    table.put_item(Item=ticket_item("DG-BIN", "submitted"))
    event = rest_event(
        "POST",
        "/tickets/DG-BIN/actions",
        "/tickets/{ticket_id}/actions",
        path_parameters={"ticket_id": "DG-BIN"},
        body=base64.b64encode(b"\xff\xfe").decode("ascii"),
    )
    event["isBase64Encoded"] = True

    # WHEN the body is bytes that are not UTF-8 (schemathesis found this answered 500)
    response = staff_api.lambda_handler(event, lambda_context)

    # THEN the answer is 400 naming the body, logged, and nothing changed
    assert response["statusCode"] == 400
    assert "body" in json.loads(response["body"])["message"]
    assert "request rejected as invalid" in caplog.text
    assert stored(table, "DG-BIN") == ticket_item("DG-BIN", "submitted")
    assert history(table, "DG-BIN") == []


def test_unknown_department_is_400(staff_api: Any, table: Any, lambda_context: Any) -> None:
    # GIVEN an accepted ticket
    table.put_item(Item=ticket_item("DG-DEPT", "accepted"))

    # WHEN staff dispatch it to a department that is not configured
    response = act(
        staff_api, lambda_context, "DG-DEPT", {"action": "dispatch", "actor": "a", "department": "nasa"}
    )

    # THEN 400 names the field and the ticket stays accepted
    assert response["statusCode"] == 400
    assert "department=nasa" in json.loads(response["body"])["message"]
    assert stored(table, "DG-DEPT")["status"] == "accepted"


def test_unknown_ticket_is_404(staff_api: Any, stack: Any, lambda_context: Any) -> None:
    # WHEN staff act on a ticket id that does not exist
    response = act(staff_api, lambda_context, "DG-NONE", {"action": "close", "actor": "a"})

    # THEN 404 in our shape
    body = json.loads(response["body"])
    assert response["statusCode"] == 404
    assert body["code"] == "not_found"
    assert "DG-NONE" in body["message"]


def test_unsigned_request_is_403(
    staff_api: Any, table: Any, lambda_context: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a submitted ticket
    table.put_item(Item=ticket_item("DG-IAM", "submitted"))

    # WHEN a request without an IAM identity arrives
    response = act(
        staff_api, lambda_context, "DG-IAM", {"action": "reject", "actor": "a", "reason": "x"}, signed=False
    )

    # THEN it is rejected and logged, and the ticket is unchanged
    assert response["statusCode"] == 403
    assert json.loads(response["body"])["code"] == "forbidden"
    assert "request without an IAM caller rejected" in caplog.text
    assert stored(table, "DG-IAM")["status"] == "submitted"


def test_full_lifecycle_with_pause_extension_and_close(
    staff_api: Any, table: Any, lambda_context: Any, notices: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a submitted ticket whose citizen has a profile
    table.put_item(Item=ticket_item("DG-LIFE", "submitted"))
    table.put_item(Item={"PK": citizen_pk("oCitizen0001"), "SK": CITIZEN_SK, "open_id": "oCitizen0001"})

    def at(moment: str) -> None:
        monkeypatch.setattr(clock, "now", lambda: datetime.fromisoformat(moment).timestamp())

    steps = [
        ("2026-09-30T10:00:00+08:00", {"action": "accept", "appeal_type": "complaint"}, "accepted"),
        ("2026-10-08T09:00:00+08:00", {"action": "dispatch", "department": "cgj"}, "dispatched"),
        (
            "2026-10-08T10:00:00+08:00",
            {"action": "request_info", "text": "请提供具体门牌号"},
            "awaiting_citizen",
        ),
        ("2026-10-12T10:00:00+08:00", {"action": "resume"}, "dispatched"),
        (
            "2026-10-13T10:00:00+08:00",
            {"action": "extend", "reason": "需现场核查", "working_days": 5},
            "dispatched",
        ),
        ("2026-10-13T11:00:00+08:00", {"action": "approve_extension"}, "dispatched"),
        ("2026-10-14T10:00:00+08:00", {"action": "reply", "text": "已清理占道摊点"}, "replied"),
        ("2026-10-15T10:00:00+08:00", {"action": "close"}, "closed"),
    ]
    deadlines = []
    for moment, body, expected_status in steps:
        # WHEN each action is applied in turn
        at(moment)
        response = act(staff_api, lambda_context, "DG-LIFE", {**body, "actor": "staff-1"})

        # THEN each succeeds with the expected status
        assert response["statusCode"] == 200, response["body"]
        ticket = json.loads(response["body"])["ticket"]
        assert ticket["status"] == expected_status
        deadlines.append(ticket["deadline"])

    # AND the deadline moved: 13 working days from Wed 2026-09-30 end on Fri 2026-10-23 (国庆 skipped,
    # make-up Saturday 2026-10-10 counted); the pause from Thu 10-08 to Mon 10-12 held 3 working days
    # (10-09, 10-10, 10-12), and the approved extension added 5 more
    assert deadlines[0] == "2026-10-23T09:30:00.000Z"
    assert deadlines[3] == "2026-10-28T09:30:00.000Z"
    assert deadlines[4] == deadlines[3]
    assert deadlines[5] == "2026-11-04T09:30:00.000Z"

    # AND the history has one entry per action, in order, never rewritten
    entries = history(table, "DG-LIFE")
    assert [entry["entry_type"] for entry in entries] == [f"action:{body['action']}" for _, body, _ in steps]

    # AND the citizen got the status notices, the answer and the rating invitation
    published = notices()
    kinds = [(notice["kind"], notice["status"]) for notice in published]
    assert kinds == [
        ("status", "accepted"),
        ("status", "dispatched"),
        ("request_info", "awaiting_citizen"),
        ("status", "extended"),
        ("staff_answer", "replied"),
        ("status", "closed"),
        ("rating_invitation", "closed"),
    ]

    # AND the staff's own words fill the template message's summary field outside the 48-hour window
    summaries = {notice["kind"]: notice["template_values"].get("summary") for notice in published}
    reply_text = next(body["text"] for _, body, _ in steps if body["action"] == "reply")
    request_text = next(body["text"] for _, body, _ in steps if body["action"] == "request_info")
    assert summaries["staff_answer"] == reply_text
    assert summaries["request_info"] == request_text

    # AND the citizen's next 1/2/3 rates this ticket
    profile = table.get_item(Key={"PK": citizen_pk("oCitizen0001"), "SK": CITIZEN_SK})["Item"]
    assert profile["pending_rating_ticket_id"] == "DG-LIFE"


def test_return_and_redispatch(staff_api: Any, table: Any, lambda_context: Any) -> None:
    # GIVEN a dispatched ticket
    table.put_item(Item=ticket_item("DG-RET", "dispatched", department="cgj"))

    # WHEN the department returns it with a coded reason and the dispatcher re-dispatches
    returned = act(
        staff_api,
        lambda_context,
        "DG-RET",
        {"action": "return", "actor": "cgj-wang", "reason_code": "not_in_scope"},
    )
    redispatched = act(
        staff_api, lambda_context, "DG-RET", {"action": "dispatch", "actor": "li", "department": "zjj"}
    )

    # THEN it went back to the dispatcher and on to the new department, indexed under it
    assert json.loads(returned["body"])["ticket"]["status"] == "returned"
    assert json.loads(redispatched["body"])["ticket"]["department"] == "zjj"
    assert stored(table, "DG-RET")["GSI3PK"] == "DEPT#zjj"


def test_unknown_return_reason_is_400(staff_api: Any, table: Any, lambda_context: Any) -> None:
    # GIVEN a dispatched ticket
    table.put_item(Item=ticket_item("DG-RET2", "dispatched", department="cgj"))

    # WHEN the department returns it with a reason code that is not configured
    response = act(
        staff_api, lambda_context, "DG-RET2", {"action": "return", "actor": "x", "reason_code": "lazy"}
    )

    # THEN 400 and the ticket stays dispatched
    assert response["statusCode"] == 400
    assert stored(table, "DG-RET2")["status"] == "dispatched"


def test_merge_notifies_duplicate_citizen_on_close(
    staff_api: Any, table: Any, lambda_context: Any, notices: Any
) -> None:
    # GIVEN a main ticket being handled and a duplicate from another citizen
    table.put_item(Item=ticket_item("DG-MAIN", "replied", department="cgj"))
    table.put_item(Item=ticket_item("DG-DUP", "submitted", open_id="oCitizen0002"))

    # WHEN the duplicate is merged and the main ticket is closed
    merged = act(staff_api, lambda_context, "DG-DUP", {"action": "merge", "actor": "li", "into": "DG-MAIN"})
    closed = act(staff_api, lambda_context, "DG-MAIN", {"action": "close", "actor": "li"})

    # THEN the duplicate records where it went and the main ticket lists it
    assert merged["statusCode"] == 200
    assert closed["statusCode"] == 200
    assert stored(table, "DG-DUP")["merged_into"] == "DG-MAIN"
    assert stored(table, "DG-MAIN")["merged_tickets"] == {"DG-DUP"}
    assert sorted(entry["entry_type"] for entry in history(table, "DG-MAIN")) == ["action:close", "merged_in"]

    # AND the duplicate's citizen is told that it closed with the main ticket
    to_second = [notice for notice in notices() if notice["open_id"] == "oCitizen0002"]
    assert len(to_second) == 1
    assert to_second[0]["ticket_id"] == "DG-DUP"
    assert "DG-MAIN" in to_second[0]["text"]


def test_merge_into_closed_ticket_is_409(staff_api: Any, table: Any, lambda_context: Any) -> None:
    # GIVEN a closed main ticket and a new duplicate
    table.put_item(Item=ticket_item("DG-OLD", "closed"))
    table.put_item(Item=ticket_item("DG-NEW", "submitted"))

    # WHEN staff merge the duplicate into it
    response = act(staff_api, lambda_context, "DG-NEW", {"action": "merge", "actor": "li", "into": "DG-OLD"})

    # THEN 409 and neither ticket changed
    assert response["statusCode"] == 409
    assert stored(table, "DG-NEW")["status"] == "submitted"
    assert "merged_tickets" not in stored(table, "DG-OLD")


def test_status_index_lists_accepted_ticket(staff_api: Any, table: Any, lambda_context: Any) -> None:
    # GIVEN a ticket accepted through the API
    table.put_item(Item=ticket_item("DG-IDX", "submitted"))
    act(staff_api, lambda_context, "DG-IDX", {"action": "accept", "actor": "a", "appeal_type": "help"})

    # WHEN StatusIndex is queried for accepted tickets
    items = table.query(
        IndexName=STATUS_INDEX,
        KeyConditionExpression="GSI1PK = :pk",
        ExpressionAttributeValues={":pk": status_gsi_pk("accepted")},
    )["Items"]

    # THEN the ticket is there, sorted by its deadline
    assert [item["ticket_id"] for item in items] == ["DG-IDX"]


def test_action_committed_when_event_bus_unreachable(
    staff_api: Any, table: Any, lambda_context: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a submitted ticket, and an event bus that fails with an AWS error
    table.put_item(Item=ticket_item("DG-BUS", "submitted"))
    stubber = Stubber(staff_api.events)
    stubber.add_client_error("put_events", service_error_code="InternalException", http_status_code=500)

    # WHEN staff accept the ticket
    with stubber:
        response = act(
            staff_api,
            lambda_context,
            "DG-BUS",
            {"action": "accept", "actor": "staff-01", "appeal_type": "complaint"},
        )

    # THEN the committed change is reported as done, with its events marked unpublished
    assert response["statusCode"] == 200, response["body"]
    assert json.loads(response["body"])["events_published"] is False
    assert stored(table, "DG-BUS")["status"] == "accepted"
    # The test pins the clock, so both entries share a timestamp and their order is not defined.
    entry_types = sorted(entry["entry_type"] for entry in history(table, "DG-BUS"))
    assert entry_types == ["action:accept", "events_unpublished"]
    assert "ticket change not published" in caplog.text
