"""Media types accepted from WeChat, recognised by their magic bytes, and their size caps.

The Content-Type that WeChat sends is not trusted: a file is stored only when its first bytes match
a type allowed for its message type and its size stays under that type's cap.
"""

from __future__ import annotations

from dataclasses import dataclass

MB = 1024 * 1024

# WeChat accepts images of at most 10 MB from its clients, so a larger download is not a photo.
IMAGE_MAX_BYTES = 10 * MB
# WeChat voice notes are at most 60 s of AMR or Speex (a few hundred KB); WeChat's own limit is 2 MB.
VOICE_MAX_BYTES = 2 * MB
# Videos are recompressed by the WeChat client before sending; 50 MB bounds the download time within
# media-store's 120 s timeout and the Lambda's /tmp use, with a wide margin over what WeChat sends.
VIDEO_MAX_BYTES = 50 * MB

# Bytes needed to recognise every type below (an Ogg page header with its segment table plus the
# 8-byte Speex identification string).
SNIFF_BYTES = 64


@dataclass(frozen=True)
class MediaType:
    name: str
    content_type: str
    extension: str


JPEG = MediaType("jpeg", "image/jpeg", "jpg")
PNG = MediaType("png", "image/png", "png")
GIF = MediaType("gif", "image/gif", "gif")
AMR = MediaType("amr", "audio/amr", "amr")
AMR_WB = MediaType("amr-wb", "audio/amr-wb", "awb")
SPEEX = MediaType("speex", "audio/ogg", "spx")
MP4 = MediaType("mp4", "video/mp4", "mp4")
MP3 = MediaType("mp3", "audio/mpeg", "mp3")

_IMAGES = frozenset({JPEG, PNG, GIF})
_VOICES = frozenset({AMR, AMR_WB, SPEEX})
_VIDEOS = frozenset({MP4})

# msg_type -> (types accepted, size cap in bytes)
ACCEPTED: dict[str, tuple[frozenset[MediaType], int]] = {
    "image": (_IMAGES, IMAGE_MAX_BYTES),
    "thumb": (_IMAGES, IMAGE_MAX_BYTES),
    "voice": (_VOICES, VOICE_MAX_BYTES),
    "video": (_VIDEOS, VIDEO_MAX_BYTES),
    "shortvideo": (_VIDEOS, VIDEO_MAX_BYTES),
}


def _is_speex(head: bytes) -> bool:
    """Whether `head` starts an Ogg stream whose first packet is a Speex header."""
    if not head.startswith(b"OggS") or len(head) < 27:
        return False
    packet_start = 27 + head[26]  # header, then one byte per segment of the first page
    return head[packet_start : packet_start + 8] == b"Speex   "


# Leading bytes of each type; AMR-WB comes before AMR because "#!AMR" is a prefix of both headers.
_PREFIXES: tuple[tuple[tuple[bytes, ...], MediaType], ...] = (
    ((b"\xff\xd8\xff",), JPEG),
    ((b"\x89PNG\r\n\x1a\n",), PNG),
    ((b"GIF87a", b"GIF89a"), GIF),
    ((b"#!AMR-WB\n",), AMR_WB),
    ((b"#!AMR\n",), AMR),
)


def sniff(head: bytes) -> MediaType | None:
    """Return the media type that the first bytes of a file show, or None when none matches."""
    for prefixes, media_type in _PREFIXES:
        if head.startswith(prefixes):
            return media_type
    if _is_speex(head):
        return SPEEX
    # ISO base media (MP4): a box size, then the `ftyp` box type.
    if head[4:8] == b"ftyp":
        return MP4
    return None


def accepted_for(msg_type: str) -> tuple[frozenset[MediaType], int]:
    """Return the accepted types and the size cap for a MediaJob's `msg_type`."""
    return ACCEPTED[msg_type]
