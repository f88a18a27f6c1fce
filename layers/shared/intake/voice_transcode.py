"""Transcoding of WeChat voice notes (AMR, Speex) to MP3, which every browser plays.

Uses the static ffmpeg binary that the `imageio-ffmpeg` wheel ships (media layer only).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

MP3_EXTENSION = "mp3"
MP3_CONTENT_TYPE = "audio/mpeg"
# A 60 s voice note transcodes in well under a second; the timeout only stops a hung process.
FFMPEG_TIMEOUT_SECONDS = 30
# Speech only: mono at 32 kbit/s keeps a 60 s note near 240 KB.
_MP3_ARGUMENTS = ["-vn", "-ac", "1", "-codec:a", "libmp3lame", "-b:a", "32k", "-f", "mp3"]


class TranscodeError(Exception):
    """ffmpeg could not produce a playable copy; the original voice note is kept."""


def ffmpeg_executable() -> str:
    import imageio_ffmpeg

    executable: str = imageio_ffmpeg.get_ffmpeg_exe()
    return executable


def transcode_to_mp3(source: Path, target: Path) -> None:
    """Write an MP3 copy of the voice note at `source` to `target`; raises TranscodeError on failure."""
    command = [ffmpeg_executable(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", str(source)]
    command += [*_MP3_ARGUMENTS, str(target)]
    try:
        completed = subprocess.run(  # noqa: S603 - fixed arguments, paths created by media-store
            command, capture_output=True, timeout=FFMPEG_TIMEOUT_SECONDS, check=False
        )
    except subprocess.TimeoutExpired as err:
        raise TranscodeError(f"ffmpeg timed out after {FFMPEG_TIMEOUT_SECONDS} s") from err
    except OSError as err:
        raise TranscodeError(f"ffmpeg could not be started: {err.strerror}") from err
    if completed.returncode != 0:
        detail = completed.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no message"]
        raise TranscodeError(f"ffmpeg exited with status {completed.returncode}: {detail[0][:300]}")
    if not target.exists() or target.stat().st_size == 0:
        raise TranscodeError("ffmpeg exited successfully but wrote no audio")
