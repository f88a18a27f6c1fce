"""A stream wrapper that checks a WeChat download while it flows to S3.

`InspectingReader` sits between the HTTP response and `s3.upload_fileobj`: it recognises the type
from the first bytes, stops at the size cap, hashes every byte with SHA-256 and, for files that need
local work (voice transcoding, photo EXIF), copies them to a temporary file. Nothing is read whole
into memory, so a 50 MB video costs one upload part of memory.
"""

from __future__ import annotations

import hashlib
from typing import BinaryIO, Protocol

from intake.media_types import SNIFF_BYTES, MediaType, sniff

_CHUNK_BYTES = 1024 * 1024


class Readable(Protocol):
    def read(self, amt: int = -1) -> bytes: ...


class MediaRejectedError(Exception):
    """The downloaded bytes are not a file this service keeps (wrong type, empty or over the cap).

    `reason` is `unexpected_type`, `empty` or `too_large`; retrying would fetch the same bytes.
    """

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"media rejected ({reason}): {detail}")


class InspectingReader:
    """A read-only, non-seekable stream over `source` that enforces type and size as it is read."""

    def __init__(
        self,
        source: Readable,
        accepted: frozenset[MediaType],
        max_bytes: int,
        copy_to: BinaryIO | None = None,
    ) -> None:
        self._source = source
        self._accepted = accepted
        self._max_bytes = max_bytes
        self._copy_to = copy_to
        self._hash = hashlib.sha256()
        self._pending = b""
        self._sniffed = False
        self.media_type: MediaType | None = None
        self.size = 0

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def readable(self) -> bool:
        return True

    def _sniff(self) -> None:
        """Read the first SNIFF_BYTES (or the whole file when shorter) and check their type."""
        head = b""
        while len(head) < SNIFF_BYTES:
            chunk = self._source.read(SNIFF_BYTES - len(head))
            if not chunk:
                break
            head += chunk
        self._sniffed = True
        if not head:
            raise MediaRejectedError("empty", "WeChat returned an empty file")
        media_type = sniff(head)
        if media_type is None or media_type not in self._accepted:
            found = media_type.name if media_type else f"unknown (first bytes {head[:8].hex()})"
            allowed = ", ".join(sorted(accepted.name for accepted in self._accepted))
            raise MediaRejectedError("unexpected_type", f"content is {found}, expected one of {allowed}")
        self.media_type = media_type
        self._pending = head

    def _account(self, data: bytes) -> bytes:
        self.size += len(data)
        if self.size > self._max_bytes:
            raise MediaRejectedError(
                "too_large", f"file exceeds the cap of {self._max_bytes} bytes for this message type"
            )
        self._hash.update(data)
        if self._copy_to is not None:
            self._copy_to.write(data)
        return data

    def read(self, size: int = -1) -> bytes:
        """Return `size` bytes, fewer only at the end of the file (s3transfer takes a short read as EOF)."""
        if not self._sniffed:
            self._sniff()
        unbounded = size is None or size < 0
        parts: list[bytes] = []
        wanted = _CHUNK_BYTES if unbounded else size
        if self._pending:
            taken, self._pending = self._pending[:wanted], self._pending[wanted:]
            parts.append(self._account(taken))
            wanted -= len(taken)
        while unbounded or wanted > 0:
            # Read in bounded pieces so that the cap stops an endless body early.
            chunk = self._source.read(_CHUNK_BYTES if unbounded else min(wanted, _CHUNK_BYTES))
            if not chunk:
                break
            parts.append(self._account(chunk))
            if not unbounded:
                wanted -= len(chunk)
        return b"".join(parts)
