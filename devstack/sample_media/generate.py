"""Generate the sample media that the WeChat emulator serves (`python -m devstack.sample_media.generate`).

The outputs are committed, so this only needs to run again to change them:
- sample.jpg: a 320x240 photo with EXIF camera, time and GPS tags (a point in Dongguan), like a
  phone photo that still carries its location.
- thumb.jpg: a 64x48 video thumbnail without EXIF.
- sample.amr: 1 s of AMR-NB voice (8 kHz mono, `#!AMR\\n` header), WeChat's voice format.
- sample.mp4: a 1 s 160x120 H.264 clip with AAC sound.
Pillow writes the JPEGs; the ffmpeg binary inside the imageio-ffmpeg wheel writes AMR and MP4.
"""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import imageio_ffmpeg
from PIL import Image, ImageDraw

OUTPUT = Path(__file__).resolve().parent

# Dongguan city centre, in degrees.
LATITUDE = 23.0207
LONGITUDE = 113.7518

_GPS_IFD = 0x8825
_EXIF_IFD = 0x8769


def _dms(value: float) -> tuple[Fraction, Fraction, Fraction]:
    degrees = int(value)
    minutes_float = (value - degrees) * 60
    minutes = int(minutes_float)
    seconds = Fraction(round((minutes_float - minutes) * 60 * 100), 100)
    return Fraction(degrees), Fraction(minutes), seconds


def write_photo(path: Path) -> None:
    image = Image.new("RGB", (320, 240), (90, 140, 200))
    draw = ImageDraw.Draw(image)
    draw.rectangle((40, 120, 280, 220), fill=(120, 120, 120))
    draw.ellipse((120, 150, 200, 200), fill=(40, 40, 40))
    draw.text((50, 40), "sample pothole", fill=(255, 255, 255))

    exif = Image.Exif()
    exif[0x010F] = "LocalCam"  # Make
    exif[0x0110] = "Sample 1"  # Model
    exif[0x0132] = "2026:01:15 09:30:00"  # DateTime
    exif.get_ifd(_EXIF_IFD)[0x9003] = "2026:01:15 09:30:00"  # DateTimeOriginal
    gps = exif.get_ifd(_GPS_IFD)
    gps[0x0000] = b"\x02\x03\x00\x00"  # GPSVersionID
    gps[0x0001] = "N"  # GPSLatitudeRef
    gps[0x0002] = _dms(LATITUDE)  # GPSLatitude
    gps[0x0003] = "E"  # GPSLongitudeRef
    gps[0x0004] = _dms(LONGITUDE)  # GPSLongitude
    image.save(path, "JPEG", quality=80, exif=exif)


def write_thumbnail(path: Path) -> None:
    Image.new("RGB", (64, 48), (30, 160, 90)).save(path, "JPEG", quality=70)


def _ffmpeg(*arguments: str) -> None:
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *arguments],
                   check=True)  # fmt: skip


def write_voice(path: Path) -> None:
    _ffmpeg(
        "-f", "lavfi", "-i", "sine=frequency=440:duration=1:sample_rate=8000",
        "-ac", "1", "-ar", "8000", "-c:a", "libopencore_amrnb", "-b:a", "12.2k", str(path),
    )  # fmt: skip


def write_video(path: Path) -> None:
    _ffmpeg(
        "-f", "lavfi", "-i", "testsrc=duration=1:size=160x120:rate=10",
        "-f", "lavfi", "-i", "sine=frequency=660:duration=1:sample_rate=16000",
        "-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "veryfast", "-crf", "35",
        "-c:a", "aac", "-b:a", "24k", "-shortest", "-movflags", "+faststart", str(path),
    )  # fmt: skip


def main() -> None:
    write_photo(OUTPUT / "sample.jpg")
    write_thumbnail(OUTPUT / "thumb.jpg")
    write_voice(OUTPUT / "sample.amr")
    write_video(OUTPUT / "sample.mp4")
    for name in ("sample.jpg", "thumb.jpg", "sample.amr", "sample.mp4"):
        print(f"{name}: {(OUTPUT / name).stat().st_size} bytes")


if __name__ == "__main__":
    main()
