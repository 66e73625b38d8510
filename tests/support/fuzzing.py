"""Inputs for fuzzing the upload path: seed images in every accepted format, and
hypothesis strategies that break them (cut, flipped bytes, forged sizes)."""

import io
import struct
import zlib
from collections import Counter

import numpy as np
from hypothesis import strategies as st
from PIL import Image

CASES_RUN: Counter = Counter()
"""Fuzz cases run per test, printed in pytest's summary (and quoted in docs/reliability.md)."""


def seed_images(size_wh: tuple[int, int] = (47, 55)) -> dict[str, bytes]:
    """One small face-sized image encoded in each format the service takes, and some it
    refuses or converts (GIF, 16-bit, CMYK, animated)."""
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (size_wh[1], size_wh[0], 3), dtype=np.uint8))
    grey16 = Image.fromarray(rng.integers(0, 65536, (size_wh[1], size_wh[0]), dtype=np.uint16))
    frames = [rgb, rgb.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    return {
        "png": _encode(rgb, "PNG"),
        "jpeg": _encode(rgb, "JPEG", quality=90),
        "bmp": _encode(rgb, "BMP"),
        "webp": _encode(rgb, "WEBP"),
        "png16": _encode(grey16, "PNG"),
        "cmyk_jpeg": _encode(rgb.convert("CMYK"), "JPEG"),
        "apng": _encode(frames[0], "PNG", save_all=True, append_images=frames[1:]),
        "animated_webp": _encode(frames[0], "WEBP", save_all=True, append_images=frames[1:]),
        "animated_gif": _encode(frames[0], "GIF", save_all=True, append_images=frames[1:]),
        "palette_png": _encode(rgb.convert("P"), "PNG"),
        "rgba_png": _encode(rgb.convert("RGBA"), "PNG"),
    }


def png_with_declared_size(png: bytes, width: int, height: int) -> bytes:
    """``png`` with its IHDR chunk claiming ``width`` x ``height`` (CRC fixed, so the
    header is valid and only the body disagrees)."""
    ihdr_at = 8
    length = struct.unpack(">I", png[ihdr_at : ihdr_at + 4])[0]
    data = bytearray(png[ihdr_at + 8 : ihdr_at + 8 + length])
    data[0:8] = struct.pack(">II", width, height)
    chunk = b"IHDR" + bytes(data)
    crc = struct.pack(">I", zlib.crc32(chunk) & 0xFFFFFFFF)
    end = ihdr_at + 8 + length + 4
    return png[:ihdr_at] + struct.pack(">I", length) + chunk + crc + png[end:]


@st.composite
def broken_images(draw: st.DrawFn, seeds: dict[str, bytes]) -> bytes:
    """A seed image cut short, with bytes overwritten, or with a forged size."""
    name = draw(st.sampled_from(sorted(seeds)))
    data = bytearray(seeds[name])
    how = draw(st.sampled_from(["cut", "flip", "cut_and_flip", "forged_size"]))
    if how == "forged_size" and name.endswith("png"):
        side = st.one_of(st.integers(1, 64), st.integers(1, 100_000), st.just(10_000))
        return png_with_declared_size(bytes(data), draw(side), draw(side))
    if how in ("flip", "cut_and_flip"):
        for _ in range(draw(st.integers(1, 16))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    if how in ("cut", "cut_and_flip"):
        data = data[: draw(st.integers(0, len(data) - 1))]
    return bytes(data)


def any_upload(seeds: dict[str, bytes]) -> st.SearchStrategy[bytes]:
    """Random bytes, random bytes behind a real magic number, or a broken seed image."""
    magic = st.sampled_from([b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"BM", b"RIFF", b"GIF89a"])
    return st.one_of(
        st.binary(max_size=2048),
        st.builds(lambda m, rest: m + rest, magic, st.binary(max_size=2048)),
        broken_images(seeds),
    )


def _encode(image: Image.Image, fmt: str, **save: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save)
    return buffer.getvalue()
