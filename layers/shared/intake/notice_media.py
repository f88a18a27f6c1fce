"""Upload of a notice's media file from the S3 bucket to WeChat's temporary media store.

A customer-service image or voice message refers to a `media_id`, which `cgi-bin/media/upload`
returns for a multipart upload (form field `media`). WeChat keeps the file for 3 days. The
JSON-only `WeChatApiClient` cannot send multipart bodies, so this module makes the request itself.
It keeps the client's rules: the token goes only in the query string and never into a log or an
exception, and a rejected token is refreshed and the upload retried once.
"""

from __future__ import annotations

import mimetypes
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import urllib3
from aws_lambda_powertools import Logger

from intake.records import NoticeMedia
from intake.wechat_api import (
    TOKEN_REJECTED_ERRCODES,
    WeChatProtocolError,
    WeChatTransportError,
    error_from_answer,
)

if TYPE_CHECKING:
    from intake.access_token import AccessTokenProvider

logger = Logger(child=True)

UPLOAD_PATH = "cgi-bin/media/upload"
# WeChat's limits for temporary media: images up to 10 MB, voice up to 2 MB.
MAX_MEDIA_BYTES = {"image": 10 * 1024 * 1024, "voice": 2 * 1024 * 1024}
MAX_ANSWER_BYTES = 64 * 1024


class MediaTooLargeError(ValueError):
    """The S3 object is larger than WeChat accepts for its media type."""


class MediaUploader:
    """Copies one S3 object to WeChat and returns its `media_id`."""

    def __init__(
        self,
        base_url: str,
        tokens: AccessTokenProvider,
        s3_client: Any,
        bucket: str,
        timeout: float = 10.0,
        http: urllib3.PoolManager | None = None,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._tokens = tokens
        self._s3 = s3_client
        self._bucket = bucket
        self._http = http or urllib3.PoolManager(num_pools=2, maxsize=4)
        self._timeout = urllib3.Timeout(connect=min(timeout, 3.0), read=timeout)

    def _read_object(self, media: NoticeMedia) -> bytes:
        limit = MAX_MEDIA_BYTES[media.media_type]
        obj = self._s3.get_object(Bucket=self._bucket, Key=media.s3_key)
        if int(obj.get("ContentLength", 0)) > limit:
            raise MediaTooLargeError(
                f"S3 object {media.s3_key} is larger than WeChat's {limit} byte limit for {media.media_type}"
            )
        data: bytes = obj["Body"].read()
        return data

    def _post_once(self, token: str, media: NoticeMedia, data: bytes) -> dict[str, Any]:
        filename = media.s3_key.rsplit("/", 1)[-1] or media.media_type
        content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        body, multipart_type = urllib3.encode_multipart_formdata({"media": (filename, data, content_type)})
        url = f"{self._base_url}/{UPLOAD_PATH}?{urlencode({'access_token': token, 'type': media.media_type})}"
        try:
            response = self._http.request(
                "POST",
                url,
                body=body,
                headers={"Content-Type": multipart_type},
                timeout=self._timeout,
                retries=False,
                redirect=False,
            )
        except urllib3.exceptions.HTTPError:
            # `from None`: urllib3's exception can carry the URL, and with it the access token.
            raise WeChatTransportError(f"WeChat API {UPLOAD_PATH} request failed; retry later") from None
        if response.status >= 500:
            raise WeChatTransportError(
                f"WeChat API {UPLOAD_PATH} returned HTTP {response.status}; retry later"
            )
        if response.status >= 400 or len(response.data) > MAX_ANSWER_BYTES:
            raise WeChatProtocolError(f"WeChat API {UPLOAD_PATH} returned HTTP {response.status}")
        try:
            document = response.json()
        except ValueError as err:
            raise WeChatProtocolError(f"WeChat API {UPLOAD_PATH} returned a body that is not JSON") from err
        if not isinstance(document, dict):
            raise WeChatProtocolError(f"WeChat API {UPLOAD_PATH} returned JSON that is not an object")
        return document

    def upload(self, media: NoticeMedia) -> str:
        """Upload `media` and return its media_id; raises the WeChatApiClient exceptions."""
        data = self._read_object(media)
        token = self._tokens.get()
        document = self._post_once(token, media, data)
        error = error_from_answer(document, UPLOAD_PATH)
        if error is not None and error.errcode in TOKEN_REJECTED_ERRCODES:
            logger.warning(
                "access token rejected, refreshing", extra={"path": UPLOAD_PATH, "errcode": error.errcode}
            )
            refreshed = self._tokens.refresh_after_rejection(token)
            if refreshed == token:
                raise error
            document = self._post_once(refreshed, media, data)
            error = error_from_answer(document, UPLOAD_PATH)
        if error is not None:
            raise error
        media_id = document.get("media_id")
        if not isinstance(media_id, str) or not media_id:
            raise WeChatProtocolError(f"WeChat API {UPLOAD_PATH} returned no media_id")
        return media_id
