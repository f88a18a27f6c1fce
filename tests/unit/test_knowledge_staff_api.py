"""The /knowledge routes of staff-api through the real handler, with API Gateway REST proxy events."""

from __future__ import annotations

import json
from typing import Any

import pytest

from intake.keys import KNOWLEDGE_PK
from tests.unit.staff_api_events import CALLER_ARN, rest_event

ENTRY = {
    "question": "居住证怎么办理",
    "keywords": ["居住证"],
    "synonyms": ["办居住证需要什么材料"],
    "answer": "示例答复：到居住地的出租屋管理服务中心申领。",
    "category": None,
    "department": "gaj",
}
CSV_HEADER = "entry_id,question,keywords,synonyms,answer,category,department,valid_from,valid_to,status\n"
CSV_ROW = (
    "kb-1001,护照怎么办理,护照,办护照要多久|护照在哪里办,示例答复：到出入境办证大厅办理。,,gaj,,,active\n"
)


@pytest.fixture
def staff_api(load_function: Any) -> Any:
    return load_function("StaffApiFunction")


@pytest.fixture
def table(stack: Any) -> Any:
    return stack.session.resource("dynamodb").Table(stack.ref("TicketsTable"))


def call(
    staff_api: Any,
    lambda_context: Any,
    method: str,
    resource: str,
    entry_id: str | None = None,
    body: Any = None,
    query: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """Invoke the handler as API Gateway does for `resource`, with `{entry_id}` filled in."""
    path = resource.replace("{entry_id}", entry_id or "")
    parameters = {"entry_id": entry_id} if entry_id else None
    event = rest_event(method, path, resource, path_parameters=parameters, body=body, query=query)
    response = staff_api.lambda_handler(event, lambda_context)
    return response["statusCode"], json.loads(response["body"])


def knowledge_items(table: Any) -> list[dict[str, Any]]:
    return table.query(KeyConditionExpression="PK = :pk", ExpressionAttributeValues={":pk": KNOWLEDGE_PK})[
        "Items"
    ]


def create(staff_api: Any, lambda_context: Any, **fields: Any) -> dict[str, Any]:
    status, body = call(staff_api, lambda_context, "POST", "/knowledge", body=ENTRY | fields)
    assert status == 200, body
    return body


def test_create_then_get_entry(staff_api: Any, lambda_context: Any) -> None:
    # GIVEN an entry created through the API
    created = create(staff_api, lambda_context, entry_id="kb-residence")

    # WHEN it is read back
    status, body = call(staff_api, lambda_context, "GET", "/knowledge/{entry_id}", "kb-residence")

    # THEN it is the created entry, version 1, recorded as changed by the signed caller
    assert status == 200
    assert body == created
    assert body["version"] == 1
    assert body["updated_by"] == CALLER_ARN
    assert body["example"] is False


def test_create_without_id_assigns_one(staff_api: Any, lambda_context: Any) -> None:
    # GIVEN / WHEN an entry is created without entry_id
    created = create(staff_api, lambda_context)

    # THEN it gets a kb- id under which it can be read
    status, _ = call(staff_api, lambda_context, "GET", "/knowledge/{entry_id}", created["entry_id"])
    assert created["entry_id"].startswith("kb-")
    assert status == 200


def test_create_with_taken_id_is_409(staff_api: Any, lambda_context: Any, table: Any) -> None:
    # GIVEN an entry
    create(staff_api, lambda_context, entry_id="kb-residence")

    # WHEN another is created with its id
    status, body = call(
        staff_api,
        lambda_context,
        "POST",
        "/knowledge",
        body=ENTRY | {"entry_id": "kb-residence", "question": "别的"},
    )

    # THEN 409 names the id and the first entry is unchanged
    assert status == 409
    assert body["code"] == "conflict"
    assert "kb-residence" in body["message"]
    assert [
        item["question"] for item in knowledge_items(table) if item["item_type"] == "knowledge_entry"
    ] == ["居住证怎么办理"]


def test_list_filters_by_status(staff_api: Any, lambda_context: Any) -> None:
    # GIVEN one active and one retired entry
    create(staff_api, lambda_context, entry_id="kb-a")
    create(staff_api, lambda_context, entry_id="kb-b")
    call(staff_api, lambda_context, "POST", "/knowledge/{entry_id}/retire", "kb-b")

    # WHEN the list is read with and without a status
    _, everything = call(staff_api, lambda_context, "GET", "/knowledge")
    _, active = call(staff_api, lambda_context, "GET", "/knowledge", query={"status": "active"})
    _, retired = call(staff_api, lambda_context, "GET", "/knowledge", query={"status": "retired"})

    # THEN each filter returns its entries
    assert [item["entry_id"] for item in everything["items"]] == ["kb-a", "kb-b"]
    assert [item["entry_id"] for item in active["items"]] == ["kb-a"]
    assert [item["entry_id"] for item in retired["items"]] == ["kb-b"]


def test_update_with_current_version_then_stale_version(staff_api: Any, lambda_context: Any) -> None:
    # GIVEN an entry at version 1
    create(staff_api, lambda_context, entry_id="kb-residence")

    # WHEN it is updated naming version 1, and then again naming version 1
    first_status, first = call(
        staff_api,
        lambda_context,
        "PUT",
        "/knowledge/{entry_id}",
        "kb-residence",
        body=ENTRY | {"answer": "新的示例答复。", "version": 1},
    )
    second_status, second = call(
        staff_api,
        lambda_context,
        "PUT",
        "/knowledge/{entry_id}",
        "kb-residence",
        body=ENTRY | {"answer": "过时的修改。", "version": 1},
    )

    # THEN the first makes version 2 and the second is a 409 that leaves version 2 in place
    _, stored = call(staff_api, lambda_context, "GET", "/knowledge/{entry_id}", "kb-residence")
    assert (first_status, first["version"]) == (200, 2)
    assert second_status == 409
    assert "当前版本 2" in second["message"]
    assert stored["answer"] == "新的示例答复。"


def test_update_with_one_character_keyword_is_400(staff_api: Any, lambda_context: Any) -> None:
    # GIVEN an entry at version 1
    create(staff_api, lambda_context, entry_id="kb-residence")

    # WHEN it is updated with a keyword of one character
    status, answer = call(
        staff_api,
        lambda_context,
        "PUT",
        "/knowledge/{entry_id}",
        "kb-residence",
        body=ENTRY | {"keywords": ["证"], "version": 1},
    )

    # THEN 400 names the keywords, and the stored entry keeps its keywords
    _, stored = call(staff_api, lambda_context, "GET", "/knowledge/{entry_id}", "kb-residence")
    assert status == 400
    assert "keywords" in answer["message"], answer
    assert stored["keywords"] == ["居住证"]
    assert stored["version"] == 1


def test_update_of_unknown_entry_is_404(staff_api: Any, lambda_context: Any) -> None:
    # GIVEN / WHEN an unknown entry is updated
    status, body = call(
        staff_api, lambda_context, "PUT", "/knowledge/{entry_id}", "kb-missing", body=ENTRY | {"version": 1}
    )

    # THEN 404 names it
    assert status == 404
    assert "kb-missing" in body["message"]


def test_retire_then_history_lists_who_changed_what(staff_api: Any, lambda_context: Any) -> None:
    # GIVEN an entry that was updated
    create(staff_api, lambda_context, entry_id="kb-residence")
    call(
        staff_api,
        lambda_context,
        "PUT",
        "/knowledge/{entry_id}",
        "kb-residence",
        body=ENTRY | {"synonyms": ["居住证在哪里办"], "version": 1},
    )

    # WHEN it is retired and its history read
    retire_status, retired = call(
        staff_api, lambda_context, "POST", "/knowledge/{entry_id}/retire", "kb-residence"
    )
    status, history = call(staff_api, lambda_context, "GET", "/knowledge/{entry_id}/history", "kb-residence")

    # THEN it is kept as retired and the history contains three changes by the caller, oldest first
    assert (retire_status, retired["status"]) == (200, "retired")
    assert status == 200
    assert [(item["action"], item["version"], item["actor"]) for item in history["items"]] == [
        ("created", 1, CALLER_ARN),
        ("updated", 2, CALLER_ARN),
        ("retired", 3, CALLER_ARN),
    ]
    assert history["items"][1]["changes"] == {
        "synonyms": {"from": ["办居住证需要什么材料"], "to": ["居住证在哪里办"]}
    }


def test_retire_with_stale_version_is_409(staff_api: Any, lambda_context: Any) -> None:
    # GIVEN an entry at version 1
    create(staff_api, lambda_context, entry_id="kb-residence")

    # WHEN it is retired naming version 5
    status, _ = call(
        staff_api,
        lambda_context,
        "POST",
        "/knowledge/{entry_id}/retire",
        "kb-residence",
        query={"version": "5"},
    )

    # THEN 409, and the entry stays active
    _, stored = call(staff_api, lambda_context, "GET", "/knowledge/{entry_id}", "kb-residence")
    assert status == 409
    assert stored["status"] == "active"


MALFORMED_BODIES = [
    ("{not json", "body"),
    ({"question": "缺少答复和关键词"}, "answer"),
    (ENTRY | {"keywords": []}, "keywords"),
    (ENTRY | {"entry_id": "含有中文的编号"}, "entry_id"),
    (ENTRY | {"valid_from": "2026-13-01"}, "valid_from"),
    (ENTRY | {"unexpected": 1}, "unexpected"),
    # `import` is the literal route /knowledge/import: the entry could never be read or changed.
    (ENTRY | {"entry_id": "import"}, "entry_id"),
    # A one-character keyword is in nearly every message.
    (ENTRY | {"keywords": ["居住证", "证"]}, "keywords"),
]


def test_create_with_malformed_body_is_400_and_logged(
    staff_api: Any, lambda_context: Any, table: Any, caplog: pytest.LogCaptureFixture
) -> None:
    for body, field in MALFORMED_BODIES:
        caplog.clear()

        # GIVEN / WHEN a malformed body is posted
        status, answer = call(staff_api, lambda_context, "POST", "/knowledge", body=body)

        # THEN 400 names the field in Chinese, a warning is logged and nothing is written
        assert status == 400, body
        assert answer["code"] == "bad_request"
        assert answer["message"].startswith("请求参数有误"), answer
        assert field in answer["message"], answer
        assert "request rejected as invalid" in caplog.text, body
        assert knowledge_items(table) == [], body


def test_create_with_unknown_code_is_400(
    staff_api: Any, lambda_context: Any, table: Any, caplog: pytest.LogCaptureFixture
) -> None:
    for field, code in [("category", "no_such_category"), ("department", "no_such_dept")]:
        caplog.clear()

        # GIVEN / WHEN an entry names a code that workflow_config.json lacks
        status, answer = call(staff_api, lambda_context, "POST", "/knowledge", body=ENTRY | {field: code})

        # THEN 400 names the code, a warning is logged and nothing is written
        assert status == 400
        assert f"{field}={code}" in answer["message"]
        assert "unknown codes" in caplog.text
        assert knowledge_items(table) == []


def test_import_csv_twice_changes_nothing_the_second_time(
    staff_api: Any, lambda_context: Any, table: Any
) -> None:
    # GIVEN a CSV document with two entries
    document = (
        CSV_HEADER
        + CSV_ROW
        + "kb-1002,驾驶证怎么换证,驾驶证|驾照,,示例答复。,road_traffic,gaj,2026-01-01,,active\n"
    )

    # WHEN it is imported twice
    first_status, first = call(staff_api, lambda_context, "POST", "/knowledge/import", body=document)
    items_after_first = knowledge_items(table)
    second_status, second = call(staff_api, lambda_context, "POST", "/knowledge/import", body=document)

    # THEN the first import creates both and the second changes nothing, audit included
    assert (first_status, first["created"]) == (200, ["kb-1001", "kb-1002"])
    assert (second_status, second) == (
        200,
        {"created": [], "updated": [], "unchanged": ["kb-1001", "kb-1002"]},
    )
    assert knowledge_items(table) == items_after_first
    assert sum(item["item_type"] == "knowledge_audit" for item in items_after_first) == 2


def test_import_json_upserts_by_entry_id(staff_api: Any, lambda_context: Any) -> None:
    # GIVEN an entry created through the API
    create(staff_api, lambda_context, entry_id="kb-residence")

    # WHEN a JSON import replaces it and adds another
    rows = [ENTRY | {"entry_id": "kb-residence", "answer": "导入的新答复。"}, ENTRY | {"entry_id": "kb-new"}]
    status, summary = call(staff_api, lambda_context, "POST", "/knowledge/import", body=rows)

    # THEN the existing entry is updated to version 2 and the new one created
    _, stored = call(staff_api, lambda_context, "GET", "/knowledge/{entry_id}", "kb-residence")
    assert (status, summary) == (200, {"created": ["kb-new"], "updated": ["kb-residence"], "unchanged": []})
    assert (stored["version"], stored["answer"]) == (2, "导入的新答复。")


INVALID_DOCUMENTS = [
    (CSV_HEADER + CSV_ROW + "kb-1002,驾驶证怎么换证,驾驶证,,,,gaj,,,active\n", "第 2 行"),
    (CSV_HEADER + CSV_ROW + "kb-1002,驾驶证怎么换证,驾驶证,,示例答复。,,no_such_dept,,,active\n", "第 2 行"),
    (CSV_HEADER + CSV_ROW + CSV_ROW, "第 2 行"),
    (CSV_HEADER + CSV_ROW + "kb-1003,多一列,护照,,示例答复。,,gaj,,,active,extra\n", "第 2 行"),
    ("question,answer\n问题,答复\n", "第 0 行"),
    ('[{"entry_id": "kb-1", "question": "问题"', "第 0 行"),
    ('{"entry_id": "kb-1"}', "第 0 行"),
    ("[]", "第 0 行"),
    ("", "第 0 行"),
    (CSV_HEADER + CSV_ROW + "import,驾驶证怎么换证,驾驶证,,示例答复。,,gaj,,,active\n", "第 2 行"),
    (CSV_HEADER + CSV_ROW + "kb-1004,驾驶证怎么换证,驾驶证|证,,示例答复。,,gaj,,,active\n", "第 2 行"),
]


def test_import_invalid_row_writes_nothing(
    staff_api: Any, lambda_context: Any, table: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN an entry already stored
    create(staff_api, lambda_context, entry_id="kb-residence")
    before = knowledge_items(table)

    for document, row_text in INVALID_DOCUMENTS:
        caplog.clear()

        # WHEN a document with an invalid row (or none) is imported
        status, answer = call(staff_api, lambda_context, "POST", "/knowledge/import", body=document)

        # THEN 400 names the row in Chinese, a warning is logged, and the table is exactly as before
        assert status == 400, document
        assert row_text in answer["message"], answer
        assert "knowledge import rejected, nothing written" in caplog.text, document
        assert knowledge_items(table) == before, document


def test_import_with_too_many_rows_is_400(staff_api: Any, lambda_context: Any, table: Any) -> None:
    # GIVEN a JSON document with one row more than the limit
    rows = [ENTRY | {"entry_id": f"kb-{number:04d}"} for number in range(201)]

    # WHEN it is imported
    status, answer = call(staff_api, lambda_context, "POST", "/knowledge/import", body=rows)

    # THEN 400 states the row limit of one request, and nothing is written
    assert status == 400
    assert "200" in answer["message"]
    assert knowledge_items(table) == []


def test_unsigned_request_is_403(staff_api: Any, lambda_context: Any, table: Any) -> None:
    # GIVEN / WHEN an unsigned create
    event = rest_event("POST", "/knowledge", "/knowledge", body=ENTRY, signed=False)
    response = staff_api.lambda_handler(event, lambda_context)

    # THEN 403 and nothing written
    assert response["statusCode"] == 403
    assert knowledge_items(table) == []
