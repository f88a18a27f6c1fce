"""The committed openapi.json is the document the staff API code generates."""

from __future__ import annotations

import json
from typing import Any

from functions.staff_api.export_openapi import OPENAPI_FILE, openapi_document


def test_openapi_file_matches_code(stack: Any) -> None:
    # GIVEN the document generated from app.py now
    generated = openapi_document()

    # WHEN compared with the committed file
    committed = OPENAPI_FILE.read_text(encoding="utf-8")

    # THEN they are equal; regenerate with `python -m functions.staff_api.export_openapi`
    assert committed == generated


def test_openapi_lists_routes_and_error_shape() -> None:
    # GIVEN the committed document
    document = json.loads(OPENAPI_FILE.read_text(encoding="utf-8"))

    # WHEN / THEN it has the ticket, stats and Open311 routes and documents 400 with the error model, not 422
    assert set(document["paths"]) == {
        "/tickets",
        "/tickets/{ticket_id}",
        "/tickets/{ticket_id}/actions",
        "/tickets/{ticket_id}/similar",
        "/stats",
        "/open311/v2/services.json",
        "/open311/v2/requests.json",
        "/open311/v2/requests/{service_request_id}.json",
        "/announcements",
        "/announcements/{announcement_id}",
        "/announcements/{announcement_id}/publish",
        "/knowledge",
        "/knowledge/import",
        "/knowledge/{entry_id}",
        "/knowledge/{entry_id}/history",
        "/knowledge/{entry_id}/retire",
    }
    responses = document["paths"]["/tickets/{ticket_id}/actions"]["post"]["responses"]
    assert "422" not in responses
    assert responses["400"]["content"]["application/json"]["schema"]["$ref"] == "#/components/schemas/Error"
