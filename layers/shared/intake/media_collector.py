"""Copying one message's media from WeChat into S3, with the variants staff need.

A photo is stored as the original (evidence) and a copy without EXIF for staff, and its GPS position
becomes the ticket's location hint. A voice note is stored as WeChat sent it (the 16 kHz copy when
there is one) plus an MP3 that browsers play. A video is followed through `video_url` when WeChat
answers with a link, and stored with its thumbnail.
"""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from aws_lambda_powertools import Logger

from intake.media_download import InspectingReader, MediaRejectedError
from intake.media_storage import MediaRecords, StoredObject, media_key, upload_stream
from intake.media_types import accepted_for
from intake.photo_exif import PhotoProcessingError, read_gps_position, write_clean_copy
from intake.records import MediaJob
from intake.voice_transcode import MP3_CONTENT_TYPE, TranscodeError, transcode_to_mp3
from intake.wechat_api import WeChatApiClient, WeChatApiError

logger = Logger(child=True)

INVALID_MEDIA_ID_ERRCODE = 40007


def _open_copy(path: Path | None) -> contextlib.AbstractContextManager[BinaryIO | None]:
    return path.open("wb") if path is not None else contextlib.nullcontext()


class MediaCollector:
    """Stores a `MediaJob`'s files in the media bucket and returns the message's `media` map."""

    def __init__(
        self,
        s3: Any,
        bucket: str,
        kms_key_id: str,
        records: MediaRecords,
        wechat: Callable[[], WeChatApiClient],
    ) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._kms_key_id = kms_key_id
        self._records = records
        # A factory, because creating the client reads the WeChat secret.
        self._wechat = wechat

    def store(self, job: MediaJob) -> dict[str, Any]:
        """Store the job's files; raises MediaRejectedError or the WeChat client's errors."""
        store_by_type = {"image": self.store_image, "thumb": self.store_image, "voice": self.store_voice}
        with tempfile.TemporaryDirectory(prefix="media-") as workdir:
            return store_by_type.get(job.msg_type, self.store_video)(job, Path(workdir))

    # -- one file -----------------------------------------------------------------------------------

    def download_to_s3(
        self, job: MediaJob, media_id: str, kind: str, variant: str, copy_to: Path | None
    ) -> StoredObject:
        """Stream one WeChat media file to S3, checked by `kind`'s types and cap; optionally copy it locally.

        `variant` goes before the extension in the key (`thumb` gives `{msg_id}.thumb.jpg`).
        """
        accepted, max_bytes = accepted_for(kind)
        with self._wechat().open_media(media_id) as response, _open_copy(copy_to) as copy:
            reader = InspectingReader(response, accepted, max_bytes, copy_to=copy)
            # The first read checks the type, so nothing reaches S3 before the check has passed.
            reader.read(0)
            assert reader.media_type is not None
            suffix = f"{variant}.{reader.media_type.extension}" if variant else reader.media_type.extension
            key = media_key(job.create_time, job.ticket_id, job.msg_id, suffix)
            upload_stream(
                self._s3, self._bucket, key, reader, reader.media_type.content_type, self._kms_key_id
            )
        logger.info("media file stored", extra={"msg_id": job.msg_id, "s3_key": key, "size": reader.size})
        return StoredObject(key, reader.media_type.content_type, reader.size, reader.sha256)

    def upload_local(self, job: MediaJob, path: Path, suffix: str, content_type: str) -> StoredObject:
        """Upload a variant made in /tmp (clean JPEG, MP3) next to the original."""
        key = media_key(job.create_time, job.ticket_id, job.msg_id, suffix)
        with path.open("rb") as handle:
            sha256 = hashlib.file_digest(handle, "sha256").hexdigest()
            handle.seek(0)
            upload_stream(self._s3, self._bucket, key, handle, content_type, self._kms_key_id)
        return StoredObject(key, content_type, path.stat().st_size, sha256)

    # -- per message type ---------------------------------------------------------------------------

    def store_image(self, job: MediaJob, workdir: Path) -> dict[str, Any]:
        """Store the original photo (evidence), a copy without EXIF for staff, and the GPS hint."""
        original_path = workdir / "original"
        original = self.download_to_s3(job, job.media_id, job.msg_type, "", original_path)
        media: dict[str, Any] = {**original.as_item(), "variants": {}, "staff_s3_key": None}
        try:
            position = read_gps_position(original_path)
            clean_path = workdir / "clean.jpg"
            write_clean_copy(original_path, clean_path)
        except PhotoProcessingError as err:
            # Without a clean copy staff get no link: the original may carry the citizen's GPS position.
            logger.warning("photo copy without EXIF failed", extra={"msg_id": job.msg_id, "error": str(err)})
            media["clean_error"] = str(err)
            return media
        clean = self.upload_local(job, clean_path, "clean.jpg", "image/jpeg")
        media["variants"]["clean"] = clean.as_item()
        media["staff_s3_key"] = clean.s3_key
        if position is not None:
            media["exif_location"] = {"latitude": position.latitude, "longitude": position.longitude}
            self.set_photo_location(job, position.latitude, position.longitude)
        return media

    def set_photo_location(self, job: MediaJob, latitude: float, longitude: float) -> None:
        # NOTE: EXIF positions are WGS-84 while WeChat's are GCJ-02 (offset by a few hundred metres in
        # mainland China); `datum` marks the difference and no conversion is applied.
        location = {
            "latitude": latitude,
            "longitude": longitude,
            "label": "",
            "source": "photo_exif",
            "datum": "WGS-84",
            "reported_at": job.create_time,
        }
        if self._records.set_location_hint(job.ticket_id, location):
            logger.info(
                "ticket location set from photo EXIF",
                extra={"ticket_id": job.ticket_id, "msg_id": job.msg_id},
            )

    def store_voice(self, job: MediaJob, workdir: Path) -> dict[str, Any]:
        """Store the voice note (the 16 kHz copy when WeChat sent one) and an MP3 that browsers play."""
        original_path = workdir / "original"
        # The 16 kHz copy is the better recording, so it becomes the stored original when WeChat sent one.
        media_id, source = (job.media_id_16k, "MediaId16K") if job.media_id_16k else (job.media_id, "MediaId")
        try:
            original = self.download_to_s3(job, media_id, "voice", "", original_path)
        except WeChatApiError as err:
            if source != "MediaId16K" or err.errcode != INVALID_MEDIA_ID_ERRCODE:
                raise
            logger.info("16 kHz voice copy is gone, storing the 8 kHz original", extra={"msg_id": job.msg_id})
            original, source = self.download_to_s3(job, job.media_id, "voice", "", original_path), "MediaId"
        media: dict[str, Any] = {**original.as_item(), "variants": {}, "staff_s3_key": original.s3_key}
        media["source_media"] = source
        if job.recognition:
            media["recognition"] = job.recognition
        mp3_path = workdir / "voice.mp3"
        try:
            transcode_to_mp3(original_path, mp3_path)
        except TranscodeError as err:
            logger.warning(
                "voice transcoding failed, keeping the original",
                extra={"msg_id": job.msg_id, "error": str(err)},
            )
            media["transcode_error"] = str(err)
            return media
        mp3 = self.upload_local(job, mp3_path, "mp3", MP3_CONTENT_TYPE)
        media["variants"]["mp3"] = mp3.as_item()
        media["staff_s3_key"] = mp3.s3_key
        return media

    def store_video(self, job: MediaJob, workdir: Path) -> dict[str, Any]:
        """Store the video (followed through `video_url` when WeChat sends a link) and its thumbnail."""
        original = self.download_to_s3(job, job.media_id, job.msg_type, "", None)
        media: dict[str, Any] = {**original.as_item(), "variants": {}, "staff_s3_key": original.s3_key}
        if job.thumb_media_id:
            try:
                thumb = self.download_to_s3(job, job.thumb_media_id, "thumb", "thumb", None)
            except (WeChatApiError, MediaRejectedError) as err:
                # A thumbnail is a convenience, not evidence: its loss does not fail the video.
                if isinstance(err, WeChatApiError) and err.retryable:
                    raise
                logger.warning("video thumbnail not stored", extra={"msg_id": job.msg_id, "error": str(err)})
                media["thumb_error"] = str(err)
            else:
                media["variants"]["thumb"] = thumb.as_item()
        return media
