"""Copy of a notice's media file from the S3 bucket to WeChat's temporary media store.

A customer-service image or voice message refers to a `media_id`, which `cgi-bin/media/upload`
returns (`WeChatApiClient.upload_media`); WeChat keeps the file for 3 days. This module reads the S3
object, rejecting one larger than WeChat accepts before any byte is downloaded, and hands it to the
client, which owns the access token, its refresh and the errcodes.
"""

from __future__ import annotations

import mimetypes
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from intake.records import NoticeMedia

if TYPE_CHECKING:
    from intake.wechat_api import WeChatApiClient

logger = Logger(child=True)

# WeChat's limits for temporary media: images up to 10 MB, voice up to 2 MB.
MAX_MEDIA_BYTES = {"image": 10 * 1024 * 1024, "voice": 2 * 1024 * 1024}


class MediaTooLargeError(ValueError):
    """The S3 object is larger than WeChat accepts for its media type."""


class MediaUploader:
    """Copies one S3 object to WeChat and returns its `media_id`."""

    def __init__(self, wechat: WeChatApiClient, s3_client: Any, bucket: str) -> None:
        self._wechat = wechat
        self._s3 = s3_client
        self._bucket = bucket

    def upload(self, media: NoticeMedia) -> str:
        """Upload `media` and return its media_id.

        Raises MediaTooLargeError, and the exceptions of `WeChatApiClient.upload_media`.
        """
        limit = MAX_MEDIA_BYTES[media.media_type]
        obj = self._s3.get_object(Bucket=self._bucket, Key=media.s3_key)
        if int(obj.get("ContentLength", 0)) > limit:
            obj["Body"].close()
            raise MediaTooLargeError(
                f"S3 object {media.s3_key} is larger than WeChat's {limit} byte limit for {media.media_type}"
            )
        filename = media.s3_key.rsplit("/", 1)[-1]
        content_type = (
            obj.get("ContentType") or mimetypes.guess_type(filename)[0] or "application/octet-stream"
        )
        with obj["Body"] as body:
            media_id = self._wechat.upload_media(media.media_type, filename, body.read(), content_type)
        logger.info(
            "media uploaded to WeChat", extra={"s3_key": media.s3_key, "media_type": media.media_type}
        )
        return media_id
