"""Decode uploaded images safely and shape them for the model.

One case is the common one: an 8-bit RGB PNG already at the model's size. Its header is
read here, much faster than opening the image with Pillow, and imagecodecs (libpng) decodes
it without holding the GIL, so decoding threads and the event loop run side by side
(docs/performance.md). Pillow takes every other image: it names the format, gives the size
for the pixel limit, and decodes it.
"""

import io
import struct
import warnings
from dataclasses import dataclass

import imagecodecs
import numpy as np
from PIL import Image, UnidentifiedImageError

from app.api.errors import ServiceError

ALLOWED_FORMATS = frozenset({"PNG", "JPEG", "BMP", "WEBP"})
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_IHDR_START = struct.pack(">I", 13) + b"IHDR"
_RGB8 = (8, 2)  # bit depth 8, colour type 2 (RGB, no alpha, no palette)


@dataclass(frozen=True)
class DecodedImage:
    """RGB pixels as uint8 (H, W, 3) at the model's size, and whether it was resized."""

    rgb: np.ndarray
    resized: bool


def decode_image(data: bytes, name: str, size_hw: tuple[int, int], max_pixels: int) -> DecodedImage:
    """Decode ``data`` into the model's input, or raise :class:`ServiceError`.

    400: empty, not an image, truncated or corrupt. 415: an image format we do not take.
    413: more pixels than ``max_pixels`` (checked from the header, before decoding).
    """
    if not data:
        raise ServiceError(400, f"{name}: empty upload")
    try:
        if size_hw[0] * size_hw[1] <= max_pixels and _is_model_sized_rgb8_png(data, size_hw):
            return DecodedImage(_decode_rgb8_png(data, size_hw), resized=False)
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=None)
            if image.format not in ALLOWED_FORMATS:
                raise ServiceError(
                    415,
                    f"{name}: {image.format} images are not supported; send "
                    f"{', '.join(sorted(ALLOWED_FORMATS))}",
                )
            width, height = image.size
            if width * height > max_pixels:
                raise ServiceError(
                    413, f"{name}: {width}x{height} pixels exceeds the limit of {max_pixels}"
                )
            image.load()
    except ServiceError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ServiceError(413, f"{name}: image too large ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise ServiceError(400, f"{name}: not an image (unrecognised format)") from exc
    except (OSError, SyntaxError, ValueError, EOFError, imagecodecs.PngError) as exc:
        raise ServiceError(400, f"{name}: truncated or corrupt image ({exc})") from exc
    return _to_model_input(image, size_hw)


def _is_model_sized_rgb8_png(data: bytes, size_hw: tuple[int, int]) -> bool:
    """A PNG of 8-bit RGB pixels (no palette, alpha, tRNS transparency or 16-bit) at the
    model's size, from its IHDR and the chunks before its first IDAT. Anything unusual
    (including a malformed chunk list) is left to Pillow, which reports it."""
    if len(data) < 33 or data[:8] != _PNG_SIGNATURE or data[8:16] != _IHDR_START:
        return False
    width, height, depth, colour = struct.unpack_from(">IIBB", data, 16)
    if (height, width) != tuple(size_hw) or (depth, colour) != _RGB8:
        return False
    offset = 33  # signature 8, IHDR 25
    while offset + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, offset)
        if kind == b"IDAT":
            return True
        if kind == b"tRNS":  # a transparent colour: Pillow's RGB keeps it as info
            return False
        offset += 12 + length  # length, type, data, CRC
    return False


def _decode_rgb8_png(data: bytes, size_hw: tuple[int, int]) -> np.ndarray:
    """libpng's pixels for a PNG :func:`_is_model_sized_rgb8_png` accepted; raises
    ``imagecodecs.PngError`` or ``ValueError`` for corrupt data."""
    rgb = imagecodecs.png_decode(data)
    if rgb.shape != (*size_hw, 3) or rgb.dtype != np.uint8:
        raise ValueError(f"PNG header and pixels disagree: {rgb.shape} {rgb.dtype}")
    return rgb


def _to_model_input(image: Image.Image, size_hw: tuple[int, int]) -> DecodedImage:
    if image.mode == "I" or image.mode.startswith("I;16"):
        # 16-bit greyscale: PIL's own conversion clips at 255; scale the range instead.
        grey = np.asarray(image, dtype=np.float32) / np.float32(65535.0)
        image = Image.fromarray((np.clip(grey, 0.0, 1.0) * 255.0).round().astype(np.uint8))
    if image.mode != "RGB":
        # Any mode (RGBA, palette, greyscale, CMYK) to RGB; alpha is dropped, as the
        # training images were plain RGB.
        image = image.convert("RGB")
    height, width = size_hw
    resized = image.size != (width, height)
    if resized:
        image = image.resize((width, height), Image.Resampling.BILINEAR)
    return DecodedImage(np.asarray(image, dtype=np.uint8), resized)
