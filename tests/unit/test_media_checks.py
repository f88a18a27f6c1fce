"""Magic bytes, size caps, key layout, presigned URLs and EXIF handling, without WeChat."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from devstack.wechat_emulator import SAMPLE_MEDIA
from intake.media_download import InspectingReader, MediaRejectedError
from intake.media_storage import media_key, presigned_media_url
from intake.media_types import AMR, AMR_WB, GIF, JPEG, MP4, PNG, SPEEX, accepted_for, sniff
from intake.photo_exif import read_gps_position, write_clean_copy
from intake.voice_transcode import TranscodeError, transcode_to_mp3

SPEEX_HEAD = b"OggS\x00\x02" + b"\x00" * 20 + b"\x01" + b"\x50" + b"Speex   1.2" + b"\x00" * 30


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\xff\xd8\xff\xe0" + b"\x00" * 60, JPEG),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 56, PNG),
        (b"GIF89a" + b"\x00" * 58, GIF),
        (b"#!AMR\n" + b"\x00" * 58, AMR),
        (b"#!AMR-WB\n" + b"\x00" * 55, AMR_WB),
        (SPEEX_HEAD, SPEEX),
        (b"\x00\x00\x00\x20ftypisom" + b"\x00" * 52, MP4),
        (b'{"errcode":40007,"errmsg":"invalid media_id"}', None),
        (b"OggS\x00\x02" + b"\x00" * 20 + b"\x01\x50" + b"OpusHead" + b"\x00" * 30, None),
    ],
)
def test_sniff_recognises_magic_bytes(head: bytes, expected: object) -> None:
    assert sniff(head) is expected


def test_reader_hashes_and_counts() -> None:
    data = (SAMPLE_MEDIA / "sample.jpg").read_bytes()
    accepted, cap = accepted_for("image")
    reader = InspectingReader(io.BytesIO(data), accepted, cap)

    copied = reader.read(10) + reader.read()

    assert copied == data
    assert reader.size == len(data)
    assert reader.media_type is JPEG


def test_reader_rejects_json_body() -> None:
    accepted, cap = accepted_for("image")
    reader = InspectingReader(io.BytesIO(b'{"errcode":40007}'), accepted, cap)

    with pytest.raises(MediaRejectedError) as caught:
        reader.read(1024)

    assert caught.value.reason == "unexpected_type"


def test_reader_rejects_over_cap() -> None:
    accepted, _cap = accepted_for("voice")
    reader = InspectingReader(io.BytesIO(b"#!AMR\n" + b"\x00" * 5000), accepted, 1000)

    with pytest.raises(MediaRejectedError) as caught:
        reader.read()

    assert caught.value.reason == "too_large"


def test_reader_rejects_empty_body() -> None:
    accepted, cap = accepted_for("video")

    with pytest.raises(MediaRejectedError) as caught:
        InspectingReader(io.BytesIO(b""), accepted, cap).read(10)

    assert caught.value.reason == "empty"


def test_media_key_uses_china_date() -> None:
    # 2026-12-04 17:00 UTC is 2026-12-05 01:00 in China.
    key = media_key(1796403600, "DG20261205-0001", "123", "clean.jpg")

    assert key == "media/2026/12/05/DG20261205-0001/123.clean.jpg"


@pytest.mark.parametrize("ticket_id", ["../etc", "DG/1", ""])
def test_media_key_rejects_unsafe_ids(ticket_id: str) -> None:
    with pytest.raises(ValueError, match="ticket_id"):
        media_key(1796403600, ticket_id, "123", "jpg")


def test_presigned_url_short_lived_sigv4() -> None:
    url = presigned_media_url("media/2026/12/05/DG1/1.jpg", bucket="media-bucket")

    assert "X-Amz-Expires=300" in url
    assert "X-Amz-Signature=" in url


@pytest.mark.parametrize(("key", "expires_in"), [("other/1.jpg", 300), ("media/1.jpg", 86400)])
def test_presigned_url_rejects_bad_request(key: str, expires_in: int) -> None:
    with pytest.raises(ValueError, match=r"s3_key|expires_in"):
        presigned_media_url(key, expires_in=expires_in, s3_client=object(), bucket="media-bucket")


def test_exif_gps_read_and_clean_copy_stripped(tmp_path: Path) -> None:
    clean = tmp_path / "clean.jpg"

    position = read_gps_position(SAMPLE_MEDIA / "sample.jpg")
    write_clean_copy(SAMPLE_MEDIA / "sample.jpg", clean)

    assert position is not None
    assert position.latitude == pytest.approx(23.0207, abs=0.001)
    assert position.longitude == pytest.approx(113.7518, abs=0.001)
    assert len(Image.open(clean).getexif()) == 0


def test_exif_missing_gps_is_none(tmp_path: Path) -> None:
    photo = tmp_path / "plain.png"
    Image.new("RGBA", (8, 8), (255, 0, 0, 128)).save(photo)

    assert read_gps_position(photo) is None


def test_transcode_garbage_raises(tmp_path: Path) -> None:
    source = tmp_path / "voice.amr"
    source.write_bytes(b"#!AMR\n" + b"\xff" * 10)

    with pytest.raises(TranscodeError):
        transcode_to_mp3(source, tmp_path / "voice.mp3")
