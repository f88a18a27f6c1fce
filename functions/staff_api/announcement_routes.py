"""Staff API routes for announcements (公告), published to every follower by WeChat mass send.

The staff API calls WeChat itself rather than handing the send to reply-push. So the caller learns at
once whether the send went out, and the monthly quota of 4 mass sends is checked and taken in the
same request (rules in `intake.announcements`). The function reads the shared access
token that token-refresh keeps fresh (the token item in the tickets table, decrypted with the data
key) and never fetches one, so it needs no kms:Encrypt and never calls `cgi-bin/stable_token`; it
reads the WeChat secret only for the AppID that names the token item.

Routes: `POST /announcements`, `GET /announcements`, `GET /announcements/{announcement_id}`,
`POST /announcements/{announcement_id}/publish`.
"""

from __future__ import annotations

from functools import cache
from http import HTTPStatus
from typing import Annotated, Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from pydantic import BaseModel, Field
from staff_responses import caller_arn, json_error

from intake import clock, texts
from intake.access_token import AccessTokenProvider, AccessTokenUnavailableError, FetchedToken
from intake.announcements import (
    Announcement,
    AnnouncementNotFoundError,
    AnnouncementNotPublishableError,
    AnnouncementStore,
    AnnouncementTooLongError,
    MassSendQuotaUsedError,
    NewAnnouncement,
)
from intake.credentials import get_wechat_credentials
from intake.settings import get_settings
from intake.wechat_api import WeChatApiClient

ANNOUNCEMENT_ID_PATTERN = r"^A\d{14}-[0-9a-f]{6}$"

logger = Logger(child=True)
router = Router()

settings = get_settings()
store = AnnouncementStore(boto3.resource("dynamodb").Table(settings.table_name))


class PublishRequest(BaseModel):
    actor: str = Field(min_length=1, max_length=128, description="Staff member who publishes it")


class AnnouncementList(BaseModel):
    items: list[Announcement] = Field(description="Newest first")


def _no_fetch() -> FetchedToken:
    raise AccessTokenUnavailableError(
        "staff-api only reads the stored access token; check that token-refresh runs and stores one"
    )


@cache
def wechat_client() -> WeChatApiClient:
    """Return the WeChat client with the shared token, built at the first publish of this process."""
    tokens = AccessTokenProvider(
        app_id=get_wechat_credentials().app_id,
        table=boto3.resource("dynamodb").Table(settings.table_name),
        kms=boto3.client("kms"),
        kms_key_id=settings.media_kms_key_id,
        fetch=_no_fetch,
    )
    return WeChatApiClient(settings.wechat_api_base, tokens)


def _caller() -> str:
    return caller_arn(router.current_event.raw_event) or ""


@router.exception_handler(AnnouncementNotFoundError)
def handle_not_found(error: AnnouncementNotFoundError) -> Response[str]:
    logger.info("announcement not found", extra={"announcement_id": error.announcement_id})
    message = texts.text("api_error.not_found", detail=f"公告 {error.announcement_id}")
    return json_error(HTTPStatus.NOT_FOUND, "not_found", message)


@router.exception_handler(MassSendQuotaUsedError)
def handle_quota_used(error: MassSendQuotaUsedError) -> Response[str]:
    logger.info("publish rejected: monthly mass-send quota used", extra={"month": error.month})
    return json_error(
        HTTPStatus.CONFLICT, "conflict", texts.text("announcement.quota_used", limit=error.limit)
    )


@router.exception_handler(AnnouncementNotPublishableError)
def handle_not_publishable(error: AnnouncementNotPublishableError) -> Response[str]:
    logger.info(
        "publish rejected: announcement not in draft or failed",
        extra={"announcement_id": error.announcement_id, "status": error.status},
    )
    status = texts.lookup("announcement.status").get(error.status, error.status)
    return json_error(
        HTTPStatus.CONFLICT, "conflict", texts.text("announcement.not_publishable", status=status)
    )


@router.exception_handler(AnnouncementTooLongError)
def handle_too_long(error: AnnouncementTooLongError) -> Response[str]:
    logger.info("announcement rejected as too long", extra={"size": error.size})
    return json_error(
        HTTPStatus.BAD_REQUEST, "bad_request", texts.text("announcement.too_long", size=error.size)
    )


# The error responses, documented with app.py's `Error` model ({code, message}).
_ERRORS: dict[int, Any] = {
    code: {
        "description": HTTPStatus(code).phrase,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    for code in (400, 403, 404, 409)
}


@router.post("/announcements", responses={200: {"description": "The new draft"}, **_ERRORS})
def create_announcement(request: Annotated[NewAnnouncement, Body()]) -> Announcement:
    return store.create(request, clock.now())


@router.get("/announcements", responses={200: {"description": "Announcements, newest first"}, **_ERRORS})
def list_announcements(limit: Annotated[int, Query(ge=1, le=100)] = 20) -> AnnouncementList:
    return AnnouncementList(items=store.newest(limit))


@router.get(
    "/announcements/<announcement_id>", responses={200: {"description": "One announcement"}, **_ERRORS}
)
def get_announcement(
    announcement_id: Annotated[str, Path(pattern=ANNOUNCEMENT_ID_PATTERN)],
) -> Announcement:
    return store.get(announcement_id)


@router.post(
    "/announcements/<announcement_id>/publish",
    description=(
        "Mass-send the announcement to every follower. `published` means WeChat accepted the send job; "
        "WeChat reports the job's result later in a MASSSENDJOBFINISH event, which this backend does not "
        "record yet. A send without an answer is `failed` and keeps its monthly slot (`held_slot_month`); "
        "publishing it again that month reuses the slot, and WeChat does not send it twice."
    ),
    responses={200: {"description": "The announcement with the recorded send"}, **_ERRORS},
)
def publish_announcement(
    announcement_id: Annotated[str, Path(pattern=ANNOUNCEMENT_ID_PATTERN)],
    request: Annotated[PublishRequest, Body()],
) -> Announcement:
    return store.publish(announcement_id, wechat_client().call_json, request.actor, _caller(), clock.now())
