"""EXIF of citizen photos: the GPS position as a location hint, and a copy without metadata for staff.

The original keeps its EXIF as evidence. Staff open a re-encoded JPEG that carries no EXIF (no GPS
position, camera serial or timestamps), with the EXIF orientation applied to the pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

# Pillow refuses larger images as decompression bombs; 40 megapixels is above any phone camera.
MAX_PIXELS = 40_000_000
CLEAN_JPEG_QUALITY = 88


class PhotoProcessingError(Exception):
    """Pillow could not read or re-encode the photo."""


@dataclass(frozen=True)
class GpsPosition:
    """A position from EXIF, in WGS-84 (the GPS datum), unlike WeChat's GCJ-02 positions."""

    latitude: float
    longitude: float


def _degrees(value: Any, reference: Any, negative: str) -> float:
    degrees, minutes, seconds = (float(part) for part in value)
    result = degrees + minutes / 60 + seconds / 3600
    return -result if str(reference).upper().startswith(negative) else result


def _open(path: Path) -> Image.Image:
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        return Image.open(path)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError) as err:
        raise PhotoProcessingError(f"photo cannot be read: {type(err).__name__}") from err


def read_gps_position(path: Path) -> GpsPosition | None:
    """Return the photo's EXIF GPS position, or None when it has none or an invalid one."""
    with _open(path) as image:
        gps = image.getexif().get_ifd(ExifTags.IFD.GPSInfo)
    try:
        latitude = _degrees(gps[ExifTags.GPS.GPSLatitude], gps.get(ExifTags.GPS.GPSLatitudeRef, "N"), "S")
        longitude = _degrees(gps[ExifTags.GPS.GPSLongitude], gps.get(ExifTags.GPS.GPSLongitudeRef, "E"), "W")
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None
    # Cameras without a fix write 0/0; that is no position.
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180) or (latitude == 0 and longitude == 0):
        return None
    return GpsPosition(latitude=round(latitude, 6), longitude=round(longitude, 6))


def write_clean_copy(source: Path, target: Path) -> None:
    """Write a JPEG of the photo without EXIF, ICC or other metadata; raises PhotoProcessingError."""
    try:
        with _open(source) as image:
            upright = ImageOps.exif_transpose(image)
            if upright.mode in ("RGBA", "LA", "P"):
                rgba = upright.convert("RGBA")
                flattened = Image.new("RGB", rgba.size, (255, 255, 255))
                flattened.paste(rgba, mask=rgba.getchannel("A"))
                upright = flattened
            elif upright.mode != "RGB":
                upright = upright.convert("RGB")
            # Pillow writes EXIF only when `exif=` is passed, so the copy carries none.
            upright.save(target, "JPEG", quality=CLEAN_JPEG_QUALITY, optimize=True)
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise PhotoProcessingError(f"photo cannot be re-encoded: {type(err).__name__}") from err
