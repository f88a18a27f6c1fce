"""Staff API routes for the knowledge base (知识库) that answers consultations at once.

Routes: `GET /knowledge` (every entry, or those of one status), `POST /knowledge`,
`GET /knowledge/{entry_id}`, `PUT /knowledge/{entry_id}` (with the `version` that was read: 409 when
another change came first), `POST /knowledge/{entry_id}/retire`, `GET /knowledge/{entry_id}/history`
(who changed what, when) and `POST /knowledge/import` (a JSON array or CSV text with a header row, at
most MAX_IMPORT_ROWS rows; every row is checked first and nothing is written when one is invalid;
entries are created or replaced by `entry_id`, rows equal to the stored entry write nothing, and a row
without `status` keeps the stored entry's status).

Every change records the IAM caller as the actor, as the ticket actions do, and writes one audit item
in the same transaction (`intake.knowledge_base`).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated, Any, Literal

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from pydantic import BaseModel, Field, field_validator
from staff_responses import caller_arn, json_error

from intake import texts
from intake.knowledge_base import (
    ENTRY_ID_PATTERN,
    KnowledgeAuditRecord,
    KnowledgeContent,
    KnowledgeEntry,
    KnowledgeEntryExistsError,
    KnowledgeEntryNotFoundError,
    KnowledgeImportError,
    KnowledgeInput,
    KnowledgeRepository,
    KnowledgeVersionConflictError,
    check_entry_id,
    parse_import_text,
    validate_rows,
)
from intake.settings import get_settings
from intake.workflow_config import get_workflow_config

# Rows of one import request; larger files go through `python -m devstack.ops knowledge-import`.
MAX_IMPORT_ROWS = 200
# API Gateway resources whose body this module parses itself (a JSON array or CSV text), so app.py's
# rejection of JSON array bodies, which protects the routes that Powertools validates, skips them.
RAW_BODY_RESOURCES = frozenset({"/knowledge/import"})

logger = Logger(child=True)
router = Router()

settings = get_settings()
repository = KnowledgeRepository(boto3.resource("dynamodb").Table(settings.table_name))


class NewKnowledgeEntry(KnowledgeInput):
    entry_id: str | None = Field(
        default=None, pattern=ENTRY_ID_PATTERN, description="Omit to have one assigned (kb-...); not `import`"
    )

    _entry_id = field_validator("entry_id")(check_entry_id)


class KnowledgeUpdate(KnowledgeInput):
    version: int = Field(ge=1, description="The version that was read; 409 when the entry changed since")


class KnowledgeList(BaseModel):
    items: list[KnowledgeEntry] = Field(description="Ordered by entry_id")


class KnowledgeHistory(BaseModel):
    entry_id: str
    items: list[KnowledgeAuditRecord] = Field(description="Oldest first")


class ImportSummary(BaseModel):
    created: list[str]
    updated: list[str]
    unchanged: list[str] = Field(description="Rows equal to the stored entry; nothing was written for them")


class UnknownCodeError(ValueError):
    def __init__(self, codes: list[str]) -> None:
        self.codes = codes
        super().__init__(f"unknown codes {codes}")


class TooManyRowsError(ValueError):
    def __init__(self, count: int) -> None:
        self.count = count
        super().__init__(f"{count} rows, at most {MAX_IMPORT_ROWS}")


def _caller() -> str:
    return caller_arn(router.current_event.raw_event) or ""


def _checked(content: KnowledgeContent) -> KnowledgeContent:
    unknown = content.unknown_codes(get_workflow_config())
    if unknown:
        raise UnknownCodeError(unknown)
    return content


def _content(request: KnowledgeContent) -> KnowledgeContent:
    return _checked(
        KnowledgeContent.model_validate(request.model_dump(include=set(KnowledgeContent.model_fields)))
    )


@router.exception_handler(KnowledgeEntryNotFoundError)
def handle_not_found(error: KnowledgeEntryNotFoundError) -> Response[str]:
    logger.info("knowledge entry not found", extra={"entry_id": error.entry_id})
    message = texts.text("api_error.not_found", detail=f"知识库条目 {error.entry_id}")
    return json_error(HTTPStatus.NOT_FOUND, "not_found", message)


@router.exception_handler(KnowledgeVersionConflictError)
def handle_version_conflict(error: KnowledgeVersionConflictError) -> Response[str]:
    logger.info(
        "knowledge change rejected: stale version",
        extra={"entry_id": error.entry_id, "expected": error.expected, "current": error.current},
    )
    message = texts.text(
        "knowledge.version_conflict",
        entry_id=error.entry_id,
        expected=error.expected,
        current=error.current if error.current is not None else "未知",
    )
    return json_error(HTTPStatus.CONFLICT, "conflict", message)


@router.exception_handler(KnowledgeEntryExistsError)
def handle_exists(error: KnowledgeEntryExistsError) -> Response[str]:
    logger.info("knowledge entry id already taken", extra={"entry_id": error.entry_id})
    return json_error(
        HTTPStatus.CONFLICT, "conflict", texts.text("knowledge.exists", entry_id=error.entry_id)
    )


@router.exception_handler(UnknownCodeError)
def handle_unknown_code(error: UnknownCodeError) -> Response[str]:
    logger.warning("knowledge entry rejected: unknown codes", extra={"codes": error.codes})
    message = texts.text("knowledge.unknown_codes", detail="、".join(error.codes))
    return json_error(HTTPStatus.BAD_REQUEST, "bad_request", message)


@router.exception_handler(KnowledgeImportError)
def handle_import_error(error: KnowledgeImportError) -> Response[str]:
    logger.warning(
        "knowledge import rejected, nothing written",
        extra={
            "rows": [row.row for row in error.errors],
            "reasons": sorted({row.reason for row in error.errors}),
        },
    )
    message = texts.text("knowledge.import_invalid", detail=error.describe())
    return json_error(HTTPStatus.BAD_REQUEST, "bad_request", message)


@router.exception_handler(TooManyRowsError)
def handle_too_many_rows(error: TooManyRowsError) -> Response[str]:
    logger.warning("knowledge import rejected: too many rows", extra={"count": error.count})
    message = texts.text("knowledge.too_many_rows", limit=MAX_IMPORT_ROWS, count=error.count)
    return json_error(HTTPStatus.BAD_REQUEST, "bad_request", message)


# The error responses, documented with app.py's `Error` model ({code, message}).
_ERRORS: dict[int, Any] = {
    code: {
        "description": HTTPStatus(code).phrase,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    for code in (400, 403, 404, 409)
}
EntryId = Annotated[str, Path(pattern=ENTRY_ID_PATTERN)]


@router.get("/knowledge", responses={200: {"description": "Knowledge entries"}, **_ERRORS})
def list_knowledge(status: Annotated[Literal["active", "retired"] | None, Query()] = None) -> KnowledgeList:
    entries = repository.all_entries(consistent=True)
    return KnowledgeList(items=[entry for entry in entries if status is None or entry.status == status])


@router.post("/knowledge", responses={200: {"description": "The new entry (version 1)"}, **_ERRORS})
def create_knowledge(request: Annotated[NewKnowledgeEntry, Body()]) -> KnowledgeEntry:
    return repository.create(_content(request), _caller(), entry_id=request.entry_id)


@router.get("/knowledge/<entry_id>", responses={200: {"description": "One entry"}, **_ERRORS})
def get_knowledge(entry_id: EntryId) -> KnowledgeEntry:
    entry = repository.get(entry_id)
    if entry is None:
        raise KnowledgeEntryNotFoundError(entry_id)
    return entry


@router.put("/knowledge/<entry_id>", responses={200: {"description": "The entry's new version"}, **_ERRORS})
def update_knowledge(entry_id: EntryId, request: Annotated[KnowledgeUpdate, Body()]) -> KnowledgeEntry:
    return repository.update(entry_id, _content(request), request.version, _caller())


@router.post(
    "/knowledge/<entry_id>/retire",
    responses={200: {"description": "The retired entry (kept, never deleted)"}, **_ERRORS},
)
def retire_knowledge(
    entry_id: EntryId,
    version: Annotated[int | None, Query(ge=1, description="The version that was read (optional)")] = None,
) -> KnowledgeEntry:
    return repository.retire(entry_id, _caller(), expected_version=version)


@router.get(
    "/knowledge/<entry_id>/history",
    responses={200: {"description": "Audit records, oldest first"}, **_ERRORS},
)
def knowledge_history(entry_id: EntryId) -> KnowledgeHistory:
    if repository.get(entry_id) is None:
        raise KnowledgeEntryNotFoundError(entry_id)
    return KnowledgeHistory(entry_id=entry_id, items=repository.history(entry_id))


@router.post(
    "/knowledge/import",
    responses={200: {"description": "Entries created, replaced and left unchanged"}, **_ERRORS},
    description=(
        "The body is a JSON array of entries (each with entry_id) or CSV text with a header row; in CSV, "
        "keywords and synonyms are separated by |. A row without status keeps the stored entry's status "
        "(a new entry is active). Nothing is written when any row is invalid."
    ),
)
def import_knowledge() -> ImportSummary:
    raw_rows = parse_import_text(router.current_event.decoded_body or "")
    if len(raw_rows) > MAX_IMPORT_ROWS:
        raise TooManyRowsError(len(raw_rows))
    rows = validate_rows(raw_rows, get_workflow_config())
    result = repository.upsert(rows, _caller())
    return ImportSummary(**result.as_dict())
