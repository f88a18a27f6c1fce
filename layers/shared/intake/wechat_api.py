"""HTTP client for the WeChat server API (api.weixin.qq.com) on urllib3, with the shared access token.

WeChat answers errors as JSON with HTTP 200 (`{"errcode": 40001, "errmsg": "..."}`), so every answer
is checked for `errcode` whatever its status. The access token travels in the query string; this
module keeps it out of every log line and exception message, which is why transport errors are
re-raised without their urllib3 cause (the cause can carry the request URL).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import urlencode, urlsplit

import urllib3
from aws_lambda_powertools import Logger

if TYPE_CHECKING:
    from intake.access_token import AccessTokenProvider

logger = Logger(child=True)

# errcodes that mean "this access token is not (or no longer) valid": invalid credential,
# invalid access_token, access_token expired.
TOKEN_REJECTED_ERRCODES = frozenset({40001, 40014, 42001})
# errcode -1: "system busy, try again later".
SYSTEM_BUSY_ERRCODE = -1
# errcode 40164: the caller's IP address is not on the account's IP allow-list (IP白名单).
IP_NOT_ALLOWED_ERRCODE = 40164
IP_ALLOW_LIST_HINT = (
    "add this deployment's egress IP to the WeChat console's IP allow-list (IP白名单); "
    "with EnableFixedEgressIp=true it is the stack output FixedEgressIp (see docs/egress-ip.md)"
)

# Largest JSON answer read into memory; WeChat's error and video_url answers are a few hundred bytes.
MAX_JSON_BYTES = 64 * 1024
# Content types under which WeChat sends JSON (it uses text/plain for some error answers).
_JSON_CONTENT_TYPES = ("application/json", "text/json", "text/plain")
JSON_BODY_TYPE = "application/json; charset=utf-8"

UPLOAD_PATH = "cgi-bin/media/upload"
# `type` values of cgi-bin/media/upload (temporary media, kept by WeChat for 3 days).
UPLOAD_MEDIA_TYPES = frozenset({"image", "voice", "video", "thumb"})


class WeChatApiError(Exception):
    """WeChat answered with `errcode` != 0. `errmsg` is WeChat's text and never contains the token."""

    def __init__(self, errcode: int, errmsg: str, path: str, answer: dict[str, Any] | None = None) -> None:
        self.errcode = errcode
        self.errmsg = errmsg
        self.path = path
        # The whole JSON answer: some errors carry data (45065 on a mass send names the earlier msg_id).
        self.answer = answer or {}
        super().__init__(f"WeChat API {path} returned errcode {errcode}: {errmsg}")

    @property
    def retryable(self) -> bool:
        """Whether the same request may succeed later (only "system busy" qualifies)."""
        return self.errcode == SYSTEM_BUSY_ERRCODE


class WeChatTransportError(Exception):
    """The request timed out, failed to connect or got HTTP 5xx; retry later."""


class WeChatProtocolError(Exception):
    """WeChat answered with something this client cannot use (HTTP 4xx, JSON that does not parse)."""


@dataclass
class MediaResponse:
    """A media file being streamed from WeChat; read it with `read(amt)` and always `close()` it."""

    raw: urllib3.BaseHTTPResponse
    content_type: str
    content_length: int | None
    # "media_get" when cgi-bin/media/get returned the bytes, "video_url" when it returned a link.
    source: str

    def read(self, amt: int = -1) -> bytes:
        """Return up to `amt` bytes; raises WeChatTransportError when the download breaks off."""
        try:
            return self.raw.read(None if amt is None or amt < 0 else amt)
        except urllib3.exceptions.HTTPError as err:
            raise WeChatTransportError(
                f"media download broke off ({type(err).__name__}); retry later"
            ) from None

    def close(self) -> None:
        self.raw.close()
        self.raw.release_conn()

    def __enter__(self) -> MediaResponse:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _content_type(response: urllib3.BaseHTTPResponse) -> str:
    return (response.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()


def _content_length(response: urllib3.BaseHTTPResponse) -> int | None:
    raw = response.headers.get("Content-Length")
    return int(raw) if raw and raw.isdigit() else None


def _scrub(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text


def _parse_json(body: bytes, path: str) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise WeChatProtocolError(f"WeChat API {path} returned a body that is not JSON") from err
    if not isinstance(document, dict):
        raise WeChatProtocolError(f"WeChat API {path} returned JSON that is not an object")
    return document


def error_from_answer(document: dict[str, Any], path: str) -> WeChatApiError | None:
    """Return the error in a JSON answer, or None when `errcode` is absent or 0."""
    errcode = document.get("errcode", 0)
    try:
        errcode = int(errcode)
    except (TypeError, ValueError):
        return WeChatApiError(-2, f"non-numeric errcode {errcode!r}", path)
    if errcode == 0:
        return None
    return WeChatApiError(errcode, str(document.get("errmsg", "")), path, answer=document)


class WeChatHttp:
    """urllib3 requests with explicit timeouts, no automatic retries and token-free error messages."""

    def __init__(self, timeout: float = 5.0, http: urllib3.PoolManager | None = None) -> None:
        self._http = http or urllib3.PoolManager(num_pools=4, maxsize=16)
        # Connect quickly or fail; the read timeout bounds each wait for bytes, not the whole download.
        self._timeout = urllib3.Timeout(connect=min(timeout, 3.0), read=timeout)

    def request(
        self,
        method: str,
        url: str,
        path: str,
        body: bytes | None = None,
        secret: str | None = None,
        content_type: str = JSON_BODY_TYPE,
    ) -> urllib3.BaseHTTPResponse:
        """Send one request; raises WeChatTransportError on timeouts, connection errors and HTTP 5xx.

        `path` names the endpoint in messages; `secret` (the access token) is removed from any text
        taken from urllib3. `content_type` describes `body` (JSON unless told otherwise).
        """
        headers = {"Content-Type": content_type} if body is not None else None
        try:
            response = self._http.request(
                method,
                url,
                body=body,
                headers=headers,
                timeout=self._timeout,
                retries=False,
                redirect=False,
                # Bodies are read by the caller: read_json caps JSON answers, media is streamed.
                preload_content=False,
            )
        except urllib3.exceptions.HTTPError as err:
            reason = _scrub(f"{type(err).__name__}: {err}", secret)
            # `from None`: urllib3's exception may carry the URL, and with it the access token.
            raise WeChatTransportError(f"WeChat API {path} request failed ({reason}); retry later") from None
        if response.status >= 500:
            response.drain_conn()
            response.release_conn()
            raise WeChatTransportError(f"WeChat API {path} returned HTTP {response.status}; retry later")
        if response.status >= 400:
            response.drain_conn()
            response.release_conn()
            raise WeChatProtocolError(f"WeChat API {path} returned HTTP {response.status}")
        return response

    def read_json(self, response: urllib3.BaseHTTPResponse, path: str) -> dict[str, Any]:
        """Read a JSON answer of at most MAX_JSON_BYTES and release the connection."""
        try:
            body = response.read(MAX_JSON_BYTES + 1)
        except urllib3.exceptions.HTTPError:
            raise WeChatTransportError(f"WeChat API {path} response was truncated; retry later") from None
        finally:
            response.release_conn()
        if len(body) > MAX_JSON_BYTES:
            raise WeChatProtocolError(f"WeChat API {path} returned more than {MAX_JSON_BYTES} bytes of JSON")
        return _parse_json(body, path)

    def post_json(
        self, url: str, path: str, payload: dict[str, Any], secret: str | None = None
    ) -> dict[str, Any]:
        """POST `payload` as UTF-8 JSON (Chinese text unescaped) and return the JSON answer."""
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        response = self.request("POST", url, path, body=body, secret=secret)
        return self.read_json(response, path)


class WeChatApiClient:
    """Calls the WeChat API with the shared access token and recovers once from a rejected token."""

    def __init__(
        self,
        base_url: str,
        tokens: AccessTokenProvider,
        timeout: float = 5.0,
        http: urllib3.PoolManager | None = None,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._tokens = tokens
        self._http = WeChatHttp(timeout=timeout, http=http)

    def _url(self, path: str, token: str, params: dict[str, str] | None) -> str:
        query = urlencode({**(params or {}), "access_token": token})
        return f"{self._base_url}/{path.lstrip('/')}?{query}"

    def _call_once(
        self,
        method: str,
        path: str,
        token: str,
        payload: dict[str, Any] | None,
        params: dict[str, str] | None,
    ) -> dict[str, Any]:
        url = self._url(path, token, params)
        body = None if payload is None else json.dumps(payload, ensure_ascii=False).encode("utf-8")
        response = self._http.request(method, url, path, body=body, secret=token)
        return self._http.read_json(response, path)

    def _refreshed_token(self, rejected: str, error: WeChatApiError) -> str:
        """Ask the token store for a token other than `rejected`; re-raise `error` when there is none."""
        logger.warning(
            "access token rejected, refreshing", extra={"path": error.path, "errcode": error.errcode}
        )
        token = self._tokens.refresh_after_rejection(rejected)
        if token == rejected:
            logger.error(
                "token store returned the rejected access token again",
                extra={"path": error.path, "errcode": error.errcode},
            )
            raise error
        return token

    def _with_token(self, path: str, call_once: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
        """Run `call_once(token)`; on a rejected token refresh it and run it once more; raise errcodes."""
        token = self._tokens.get()
        document = call_once(token)
        error = error_from_answer(document, path)
        if error is not None and error.errcode in TOKEN_REJECTED_ERRCODES:
            token = self._refreshed_token(token, error)
            document = call_once(token)
            error = error_from_answer(document, path)
        if error is not None:
            _log_api_error(error)
            raise error
        return document

    def call_json(
        self,
        method: str,
        path: str,
        payload: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Call `path` (for example `cgi-bin/message/custom/send`) and return its JSON answer.

        Raises WeChatApiError for errcode != 0 (after one refresh and retry on 40001/40014/42001),
        WeChatTransportError for timeouts, connection errors and HTTP 5xx, and WeChatProtocolError
        for answers that are not a JSON object.
        """
        return self._with_token(path, lambda token: self._call_once(method, path, token, payload, params))

    def upload_media(self, media_type: str, filename: str, data: bytes | BinaryIO, content_type: str) -> str:
        """Upload a file as temporary media (cgi-bin/media/upload, form field `media`); return its media_id.

        `media_type` is `image`, `voice`, `video` or `thumb`. A stream is read whole first, because a
        rejected token means sending the same bytes again. WeChat checks the file type and size
        (40005, 40006); errors are raised as in `call_json`.
        """
        if media_type not in UPLOAD_MEDIA_TYPES:
            raise ValueError(
                f"media_type {media_type!r} cannot be uploaded; use one of {', '.join(sorted(UPLOAD_MEDIA_TYPES))}"
            )
        content = data if isinstance(data, bytes) else data.read()
        body, multipart_type = urllib3.encode_multipart_formdata(
            {"media": (filename or media_type, content, content_type)}
        )

        def upload_once(token: str) -> dict[str, Any]:
            url = self._url(UPLOAD_PATH, token, {"type": media_type})
            response = self._http.request(
                "POST", url, UPLOAD_PATH, body=body, secret=token, content_type=multipart_type
            )
            return self._http.read_json(response, UPLOAD_PATH)

        document = self._with_token(UPLOAD_PATH, upload_once)
        media_id = document.get("media_id")
        if not isinstance(media_id, str) or not media_id:
            raise WeChatProtocolError(f"WeChat API {UPLOAD_PATH} returned no media_id")
        return media_id

    def _open_media_once(self, media_id: str, token: str) -> MediaResponse | dict[str, Any]:
        path = "cgi-bin/media/get"
        response = self._http.request(
            "GET", self._url(path, token, {"media_id": media_id}), path, secret=token
        )
        content_type = _content_type(response)
        if content_type in _JSON_CONTENT_TYPES:
            return self._http.read_json(response, path)
        return MediaResponse(response, content_type, _content_length(response), source="media_get")

    def _open_video_url(self, video_url: str) -> MediaResponse:
        """Stream the MP4 behind a `video_url` answer; the link carries no access token."""
        path = "video_url"
        if urlsplit(video_url).scheme not in {"http", "https"}:
            raise WeChatProtocolError("WeChat returned a video_url that is not an http(s) URL")
        response = self._http.request("GET", video_url, path)
        content_type = _content_type(response)
        if content_type in _JSON_CONTENT_TYPES:
            document = self._http.read_json(response, path)
            error = error_from_answer(document, path)
            raise error or WeChatProtocolError("video_url returned JSON instead of a video")
        return MediaResponse(response, content_type, _content_length(response), source="video_url")

    def open_media(self, media_id: str) -> MediaResponse:
        """Start downloading a temporary media file (cgi-bin/media/get) and return its byte stream.

        A JSON answer is never returned as media: an errcode raises WeChatApiError (after one
        refresh and retry on a rejected token), and a `video_url` answer is followed to the MP4.
        """
        token = self._tokens.get()
        answer = self._open_media_once(media_id, token)
        if isinstance(answer, dict):
            error = error_from_answer(answer, "cgi-bin/media/get")
            if error is not None and error.errcode in TOKEN_REJECTED_ERRCODES:
                token = self._refreshed_token(token, error)
                answer = self._open_media_once(media_id, token)
        if not isinstance(answer, dict):
            return answer
        error = error_from_answer(answer, "cgi-bin/media/get")
        if error is not None:
            _log_api_error(error)
            raise error
        video_url = answer.get("video_url")
        if isinstance(video_url, str) and video_url:
            return self._open_video_url(video_url)
        raise WeChatProtocolError("cgi-bin/media/get returned JSON without errcode or video_url")


def _log_api_error(error: WeChatApiError) -> None:
    if error.errcode == IP_NOT_ALLOWED_ERRCODE:
        logger.error(
            "WeChat rejected the caller's IP address (infrastructure error)",
            extra={"path": error.path, "errcode": error.errcode, "hint": IP_ALLOW_LIST_HINT},
        )
    else:
        logger.info(
            "WeChat API error", extra={"path": error.path, "errcode": error.errcode, "errmsg": error.errmsg}
        )
