"""staff-api: the REST API through which staff and the 12345 platform read and act on tickets.

API Gateway authorizes every route with AWS_IAM (SigV4). The handler also rejects, with 403, any
request whose `requestContext.identity` names no caller, so an unsigned request cannot act even if
the authorizer were removed from the template. Powertools validates parameters and bodies against
the models below, which are also the source of the OpenAPI document (`openapi.json` at the
repository root; regenerate it with `python -m functions.staff_api.export_openapi`).

Routes: the tickets and their actions, `GET /tickets/{ticket_id}/similar` (possible duplicates,
`intake.duplicate_suggestions`), `GET /stats` (assessment figures, `intake.ticket_stats`) and the
Open311 GeoReport v2 read endpoints under `/open311/v2/` (`intake.open311`).

Errors are `{"code": ..., "message": ...}` with the message in Simplified Chinese from the
`[api_error]` texts: 400 invalid input, 403 no caller, 404 unknown ticket or route, 409 an action
that the ticket's status (or a concurrent change) does not allow. The Open311 routes answer errors
in the same shape, not in GeoReport's error list.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Annotated, Any, Literal

import boto3
from announcement_routes import router as announcement_router
from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from botocore.config import Config
from knowledge_routes import RAW_BODY_RESOURCES
from knowledge_routes import router as knowledge_router
from pydantic import BaseModel, Field
from staff_responses import caller_arn, json_error

from intake import clock, open311, texts
from intake.answer_media import InvalidAnswerMediaError, check_answer_media
from intake.duplicate_suggestions import (
    DEFAULT_DAYS,
    DEFAULT_RADIUS_M,
    MAX_SUGGESTIONS,
    SimilarityCriteria,
    SimilarTicket,
    similar_open_tickets,
)
from intake.event_bus import EventPublisher
from intake.media_storage import presigned_media_url
from intake.records import EVENT_SOURCE_STAFF
from intake.settings import get_settings
from intake.ticket_actions import MergeTargetError, TicketActions, TicketNotFoundError
from intake.ticket_repository import ConcurrentTicketChangeError, TicketRepository
from intake.ticket_search import InvalidPageTokenError, TicketFilter, TicketSearch, ticket_children
from intake.ticket_stats import StatsFilter, TicketStats, ticket_stats
from intake.ticket_status import TicketStatus
from intake.ticket_view import Ticket, TicketSummary, ticket_detail, ticket_summary
from intake.workflow import (
    InvalidActionInputError,
    ReplyRequest,
    StaffActionRequest,
    TransitionNotAllowedError,
)
from intake.workflow_config import get_workflow_config
from intake.working_days import get_calendar

# Presigned media URLs expire after this many seconds.
MEDIA_URL_SECONDS = 300
# Maximum days between the two dates of one /stats or Open311 requests.json call.
MAX_PERIOD_DAYS = 366
# Dates outside these years are typing errors (and some overflow Python's datetime when shifted).
EARLIEST_DATE = datetime(2000, 1, 1, tzinfo=clock.CHINA_TZ)
LATEST_DATE = datetime(2100, 1, 1, tzinfo=clock.CHINA_TZ)
APPEAL_TYPE_PATTERN = "^(consultation|help|complaint|report|suggestion)$"

logger = Logger()
app = APIGatewayRestResolver(enable_validation=True)

settings = get_settings()
table = boto3.resource("dynamodb").Table(settings.table_name)
s3 = boto3.client("s3", config=Config(signature_version="s3v4"))
events = boto3.client("events")

actions = TicketActions(
    repository=TicketRepository(table=table, client=table.meta.client),
    publisher=EventPublisher(events, settings.event_bus_name, source=EVENT_SOURCE_STAFF),
    config=get_workflow_config(),
    calendar=get_calendar(),
)
search = TicketSearch(table)
app.include_router(knowledge_router)
app.include_router(announcement_router)


class Error(BaseModel):
    code: str = Field(description="bad_request, forbidden, not_found, conflict or internal")
    message: str = Field(description="What went wrong, in Simplified Chinese")


class TicketPage(BaseModel):
    items: list[TicketSummary]
    next_token: str | None = Field(description="Pass as next_token for the next page; null on the last page")


class SimilarTickets(BaseModel):
    ticket_id: str
    radius_m: int
    days: int
    items: list[SimilarTicket] = Field(description="Best match first, at most 5")


class InvalidQueryError(ValueError):
    """A query parameter is well-formed but not acceptable (HTTP 400)."""

    def __init__(self, field_name: str, value: object, reason: str) -> None:
        self.field_name = field_name
        self.value = value
        self.reason = reason
        super().__init__(f"{field_name}={value!r}: {reason}")


class ActionResult(BaseModel):
    ticket: Ticket
    history_entry_id: str = Field(description="Sort key of the history entry this action appended")
    events_published: bool = Field(description="False when the event bus rejected the change's events")


_ERROR_RESPONSES: dict[int, Any] = {
    code: {"description": HTTPStatus(code).phrase, "content": {"application/json": {"model": Error}}}
    for code in (400, 403, 404, 409)
}


def error_response(status: HTTPStatus, code: str, **params: object) -> Response[str]:
    return json_error(status, code, texts.text(f"api_error.{code}", **params))


def media_url(s3_key: str) -> str | None:
    """Return a presigned GET URL, or None for a key outside the media prefix (logged, never served)."""
    try:
        return presigned_media_url(s3_key, MEDIA_URL_SECONDS, s3_client=s3, bucket=settings.media_bucket)
    except ValueError:
        logger.warning("media key outside the media prefix not presigned", extra={"s3_key": s3_key})
        return None


def iso_bound(value: datetime | None) -> str | None:
    """Return a query bound as UTC ISO 8601; a value without a zone is China Standard Time."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=clock.CHINA_TZ)
    return clock.iso_utc(value.astimezone(UTC).timestamp())


def aware(value: datetime) -> datetime:
    """Return the datetime with its zone; a value without a zone is China Standard Time."""
    return value if value.tzinfo is not None else value.replace(tzinfo=clock.CHINA_TZ)


def checked_period(
    start: datetime | None,
    end: datetime | None,
    names: tuple[str, str],
    max_days: int | None = MAX_PERIOD_DAYS,
) -> tuple[str | None, str | None]:
    """Return the bounds as UTC ISO text; raises InvalidQueryError when implausible, reversed or too long."""
    for name, value in zip(names, (start, end), strict=True):
        if value is not None and not EARLIEST_DATE <= aware(value) < LATEST_DATE:
            raise InvalidQueryError(name, value.isoformat(), "日期须在 2000 年至 2099 年之间")
    if start is not None and end is not None:
        if aware(start) > aware(end):
            raise InvalidQueryError(names[0], start.isoformat(), f"晚于 {names[1]}")
        if max_days is not None and aware(end) - aware(start) > timedelta(days=max_days):
            raise InvalidQueryError(names[1], end.isoformat(), f"时间范围超过 {max_days} 天")
    return iso_bound(start), iso_bound(end)


@app.exception_handler(RequestValidationError)
def handle_validation_error(error: RequestValidationError) -> Response[str]:
    fields = sorted({".".join(str(part) for part in item["loc"]) for item in error.errors()})
    logger.warning("request rejected as invalid", extra={"fields": fields, "path": app.current_event.path})
    return error_response(HTTPStatus.BAD_REQUEST, "bad_request", detail=", ".join(fields))


@app.exception_handler([InvalidActionInputError, InvalidPageTokenError])
def handle_invalid_value(error: ValueError) -> Response[str]:
    logger.warning("request rejected as invalid", extra={"error": str(error)})
    detail = (
        f"{error.field_name}={error.value}" if isinstance(error, InvalidActionInputError) else "next_token"
    )
    return error_response(HTTPStatus.BAD_REQUEST, "bad_request", detail=detail)


@app.exception_handler(UnicodeDecodeError)
def handle_undecodable_body(error: UnicodeDecodeError) -> Response[str]:
    logger.warning(
        "request rejected as invalid", extra={"reason": "body is not UTF-8", "path": app.current_event.path}
    )
    return error_response(HTTPStatus.BAD_REQUEST, "bad_request", detail="body（须为 UTF-8 编码的 JSON）")


@app.exception_handler(InvalidQueryError)
def handle_invalid_query(error: InvalidQueryError) -> Response[str]:
    logger.warning("request rejected as invalid", extra={"field": error.field_name, "reason": error.reason})
    return error_response(
        HTTPStatus.BAD_REQUEST, "bad_request", detail=f"{error.field_name}（{error.reason}）"
    )


@app.exception_handler(InvalidAnswerMediaError)
def handle_invalid_answer_media(error: InvalidAnswerMediaError) -> Response[str]:
    logger.warning("reply media rejected", extra={"s3_key": error.s3_key, "reason": error.reason})
    return error_response(HTTPStatus.BAD_REQUEST, "bad_request", detail=f"media={error.s3_key}")


@app.exception_handler(TicketNotFoundError)
def handle_ticket_not_found(error: TicketNotFoundError) -> Response[str]:
    logger.info("ticket not found", extra={"ticket_id": error.ticket_id})
    return error_response(HTTPStatus.NOT_FOUND, "not_found", detail=f"工单 {error.ticket_id}")


@app.not_found
def handle_unknown_route(error: NotFoundError) -> Response[str]:
    logger.info("route not found", extra={"path": app.current_event.path})
    return error_response(HTTPStatus.NOT_FOUND, "not_found", detail=app.current_event.path)


@app.exception_handler([TransitionNotAllowedError, ConcurrentTicketChangeError, MergeTargetError])
def handle_conflict(error: Exception) -> Response[str]:
    logger.info("action conflicts with the ticket", extra={"error": str(error)})
    if isinstance(error, TransitionNotAllowedError):
        detail = f"工单状态为「{texts.status_label(error.status)}」，不能执行 {error.action}"
    elif isinstance(error, MergeTargetError) and error.auto_answer:
        detail = texts.text("api_error.merge_into_auto_answer", ticket_id=error.into)
    elif isinstance(error, MergeTargetError):
        detail = f"目标工单 {error.into} 状态为「{texts.status_label(error.status or '')}」，不能合并"
    else:
        detail = "工单已被他人修改，请刷新后重试"
    return error_response(HTTPStatus.CONFLICT, "conflict", detail=detail)


@app.exception_handler(Exception)
def handle_unexpected(error: Exception) -> Response[str]:
    logger.error("request failed", exc_info=error)
    return error_response(HTTPStatus.INTERNAL_SERVER_ERROR, "internal")


@app.get("/tickets", responses={200: {"description": "A page of tickets"}, **_ERROR_RESPONSES})
def list_tickets(
    status: Annotated[TicketStatus | None, Query()] = None,
    appeal_type: Annotated[str | None, Query(pattern=APPEAL_TYPE_PATTERN)] = None,
    department: Annotated[str | None, Query(max_length=64)] = None,
    overdue: Annotated[bool | None, Query()] = None,
    citizen: Annotated[str | None, Query(max_length=128, description="The citizen's OpenID")] = None,
    created_from: Annotated[datetime | None, Query(description="ISO 8601; no zone means China time")] = None,
    created_to: Annotated[datetime | None, Query(description="ISO 8601; no zone means China time")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    next_token: Annotated[str | None, Query(max_length=4096)] = None,
) -> TicketPage:
    start, end = checked_period(created_from, created_to, ("created_from", "created_to"), max_days=None)
    filters = TicketFilter(
        status=status.value if status else None,
        appeal_type=appeal_type,
        department=department,
        overdue=overdue,
        citizen=citizen,
        created_from=start,
        created_to=end,
    )
    now = clock.now()
    items, token = search.find(filters, limit, next_token, now)
    config = get_workflow_config()
    return TicketPage(items=[ticket_summary(item, config, now) for item in items], next_token=token)


@app.get("/tickets/<ticket_id>", responses={200: {"description": "The ticket"}, **_ERROR_RESPONSES})
def get_ticket(ticket_id: Annotated[str, Path(max_length=64)]) -> Ticket:
    item = actions.get_ticket_item(ticket_id)
    children = ticket_children(table, ticket_id)
    return ticket_detail(item, children, get_workflow_config(), clock.now(), media_url)


@app.post("/tickets/<ticket_id>/actions", responses={200: {"description": "Applied"}, **_ERROR_RESPONSES})
def act_on_ticket(
    ticket_id: Annotated[str, Path(max_length=64)],
    request: Annotated[StaffActionRequest, Body()],
) -> ActionResult:
    caller = caller_arn(app.current_event.raw_event) or ""
    if isinstance(request, ReplyRequest) and request.media:
        # An unknown ticket is a 404 before any complaint about its files.
        actions.get_ticket_item(ticket_id)
        check_answer_media(s3, settings.media_bucket, ticket_id, request.media)
    result = actions.apply(ticket_id, request, caller)
    children = ticket_children(table, ticket_id)
    ticket = ticket_detail(result.ticket, children, get_workflow_config(), clock.now(), media_url)
    return ActionResult(
        ticket=ticket,
        history_entry_id=str(result.history_entry["SK"]),
        events_published=result.events_published,
    )


@app.get(
    "/tickets/<ticket_id>/similar",
    responses={200: {"description": "Open tickets that may be duplicates"}, **_ERROR_RESPONSES},
)
def get_similar_tickets(
    ticket_id: Annotated[str, Path(max_length=64)],
    radius_m: Annotated[
        int, Query(ge=10, le=10_000, description="Search radius in metres")
    ] = DEFAULT_RADIUS_M,
    days: Annotated[int, Query(ge=1, le=365, description="Days before and after the ticket's creation")] = (
        DEFAULT_DAYS
    ),
    limit: Annotated[int, Query(ge=1, le=MAX_SUGGESTIONS)] = MAX_SUGGESTIONS,
) -> SimilarTickets:
    item = actions.get_ticket_item(ticket_id)
    criteria = SimilarityCriteria(radius_m=radius_m, days=days, limit=limit)
    found = similar_open_tickets(table, item, criteria)
    logger.info("similar tickets found", extra={"ticket_id": ticket_id, "count": len(found)})
    return SimilarTickets(ticket_id=ticket_id, radius_m=radius_m, days=days, items=found)


@app.get("/stats", responses={200: {"description": "Assessment figures"}, **_ERROR_RESPONSES})
def get_stats(
    created_from: Annotated[datetime | None, Query(description="ISO 8601; no zone means China time")] = None,
    created_to: Annotated[datetime | None, Query(description="ISO 8601; no zone means China time")] = None,
    department: Annotated[str | None, Query(max_length=64, description="A department code")] = None,
    appeal_type: Annotated[str | None, Query(pattern=APPEAL_TYPE_PATTERN)] = None,
) -> TicketStats:
    if department is not None and get_workflow_config().department_name(department) is None:
        raise InvalidQueryError("department", department, "未配置的部门代码")
    start, end = checked_period(created_from, created_to, ("created_from", "created_to"))
    filters = StatsFilter(created_from=start, created_to=end, department=department, appeal_type=appeal_type)
    return ticket_stats(table, filters, clock.now())


@app.get("/open311/v2/services.json", responses={200: {"description": "GeoReport v2 service list"}})
def open311_services() -> list[open311.Service]:
    return open311.services(get_workflow_config())


@app.get(
    "/open311/v2/requests.json",
    responses={200: {"description": "GeoReport v2 service requests, newest first"}, **_ERROR_RESPONSES},
)
def open311_requests(
    start_date: Annotated[
        datetime | None, Query(description="ISO 8601; default end_date minus 90 days")
    ] = None,
    end_date: Annotated[datetime | None, Query(description="ISO 8601; default now")] = None,
    status: Annotated[Literal["open", "closed"] | None, Query()] = None,
    service_code: Annotated[str | None, Query(max_length=1000, description="Comma-separated codes")] = None,
    limit: Annotated[int, Query(ge=1, le=open311.MAX_REQUESTS)] = open311.MAX_REQUESTS,
) -> list[open311.ServiceRequest]:
    config = get_workflow_config()
    codes = [code.strip() for code in (service_code or "").split(",") if code.strip()]
    unknown = sorted(set(codes) - open311.service_codes(config))
    if unknown:
        raise InvalidQueryError("service_code", ",".join(unknown), "未知的服务代码")
    end = end_date or datetime.fromtimestamp(clock.now(), tz=clock.CHINA_TZ)
    # Check end_date alone first: the default start_date is computed from it.
    checked_period(None, end, ("start_date", "end_date"))
    start = start_date or aware(end) - timedelta(days=open311.DEFAULT_WINDOW_DAYS)
    created_from, created_to = checked_period(start, end, ("start_date", "end_date"))
    return open311.find_requests(table, config, created_from, created_to, status, codes, limit)


@app.get(
    "/open311/v2/requests/<service_request_id>.json",
    responses={200: {"description": "One GeoReport v2 service request, in a list"}, **_ERROR_RESPONSES},
)
def open311_request(service_request_id: Annotated[str, Path(max_length=64)]) -> list[open311.ServiceRequest]:
    item = actions.get_ticket_item(service_request_id)
    if not open311.is_published(item):
        logger.info("unpublished ticket asked for over Open311", extra={"ticket_id": service_request_id})
        raise TicketNotFoundError(service_request_id)
    return [open311.service_request(item, get_workflow_config())]


def forbidden() -> dict[str, Any]:
    # No caller identity means the request was not signed, so the message says authentication failed.
    body = {"code": "forbidden", "message": texts.text("api_error.unauthorized")}
    return {
        "statusCode": HTTPStatus.FORBIDDEN,
        "headers": {"Content-Type": content_types.APPLICATION_JSON},
        "body": json.dumps(body, ensure_ascii=False),
        "isBase64Encoded": False,
    }


def json_array_body(event: dict[str, Any]) -> bool:
    """Return whether the request body is a JSON array.

    Every validated body of this API is an object. Powertools' request validation reads an array body
    as its first element, so `[action1, action2]` would apply action1 and silently drop the rest.
    The routes in RAW_BODY_RESOURCES (the knowledge import) parse their body themselves and accept arrays.
    """
    if event.get("resource") in RAW_BODY_RESOURCES:
        return False
    body = event.get("body")
    if not isinstance(body, str):
        return False
    if event.get("isBase64Encoded") is True:
        try:
            body = base64.b64decode(body, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False  # the resolver answers these as invalid bodies
    return body.lstrip().startswith("[")


def array_body_rejected() -> dict[str, Any]:
    body = {
        "code": "bad_request",
        "message": texts.text("api_error.bad_request", detail="body（须为 JSON 对象）"),
    }
    return {
        "statusCode": HTTPStatus.BAD_REQUEST,
        "headers": {"Content-Type": content_types.APPLICATION_JSON},
        "body": json.dumps(body, ensure_ascii=False),
        "isBase64Encoded": False,
    }


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if caller_arn(event) is None:
        logger.warning("request without an IAM caller rejected", extra={"path": event.get("path")})
        return forbidden()
    if json_array_body(event):
        logger.warning(
            "request rejected as invalid", extra={"reason": "body is a JSON array", "path": event.get("path")}
        )
        return array_body_rejected()
    return app.resolve(event, context)
