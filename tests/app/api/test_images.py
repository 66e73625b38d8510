"""The fast PNG path (libpng through imagecodecs) gives exactly Pillow's pixels, and every
PNG it does not take still decodes through Pillow."""

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.api import images
from app.api.images import decode_image
from tests.support.images import h5_images, png

MODEL_HW = (55, 47)


def _pillow_rgb(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _with_chunk(data: bytes, kind: bytes, body: bytes) -> bytes:
    """``data`` with an ancillary chunk inserted right after IHDR."""
    chunk = struct.pack(">I", len(body)) + kind + body
    chunk += struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    return data[:33] + chunk + data[33:]


def _face_pngs(tiny_root: Path) -> list[bytes]:
    faces, _ = h5_images(tiny_root / "data" / "demo" / "clean_test.h5", 16)
    return faces


def test_fast_path_matches_pillow_on_faces_and_png_variants(
    tiny_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 256, (*MODEL_HW, 3), dtype=np.uint8)
    variants = [
        *_face_pngs(tiny_root),
        png(noise),
        png(noise, optimize=True),
        png(noise, compress_level=0),
        png(noise, interlace=1),
        _with_chunk(png(noise), b"gAMA", struct.pack(">I", 100_000)),  # gamma 1.0: not applied
        _with_chunk(png(noise), b"sRGB", b"\x00"),
        png(noise, icc_profile=b"\x00" * 128),
    ]
    calls = 0
    real = images._decode_rgb8_png

    def counted(data: bytes, size_hw: tuple[int, int]) -> np.ndarray:
        nonlocal calls
        calls += 1
        return real(data, size_hw)

    monkeypatch.setattr(images, "_decode_rgb8_png", counted)
    for index, data in enumerate(variants):
        decoded = decode_image(data, f"v{index}", MODEL_HW, 10**7)
        assert not decoded.resized
        np.testing.assert_array_equal(decoded.rgb, _pillow_rgb(data), err_msg=f"variant {index}")
    assert calls == len(variants)  # every one of them took the fast path


def test_pngs_the_fast_path_does_not_take_still_decode(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(2)
    noise = rng.integers(0, 256, (*MODEL_HW, 3), dtype=np.uint8)
    transparent = io.BytesIO()
    Image.fromarray(noise).save(transparent, format="PNG", transparency=(0, 0, 0))
    others = {
        "rgba": png(np.dstack([noise, noise[..., :1]])),
        "palette": _palette_png(noise),
        "grey": png(noise[..., 0]),
        "rgb_with_trns": transparent.getvalue(),
        "other_size": png(noise[:40, :40]),
    }

    def refuse(data: bytes, size_hw: tuple[int, int]) -> np.ndarray:
        raise AssertionError("the fast path took a PNG it should leave to Pillow")

    monkeypatch.setattr(images, "_decode_rgb8_png", refuse)
    for name, data in others.items():
        decoded = decode_image(data, name, MODEL_HW, 10**7)
        assert decoded.rgb.shape == (*MODEL_HW, 3) and decoded.rgb.dtype == np.uint8, name
        if name != "other_size":
            np.testing.assert_array_equal(decoded.rgb, _pillow_rgb(data), err_msg=name)


def _palette_png(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).convert("P").save(buffer, format="PNG")
    return buffer.getvalue()


def test_corrupt_pixel_data_in_a_fast_path_png_is_a_400() -> None:
    data = bytearray(png(np.full((*MODEL_HW, 3), 7, dtype=np.uint8)))
    idat = data.index(b"IDAT")
    data[idat + 6 : idat + 12] = b"\xff" * 6  # inside the zlib stream; the chunk CRC breaks too
    with pytest.raises(images.ServiceError) as caught:
        decode_image(bytes(data), "broken.png", MODEL_HW, 10**7)
    assert caught.value.status == 400


def test_fast_path_pngs_cut_short_or_with_a_broken_header_are_400s() -> None:
    """Its header is read here, not by Pillow: a PNG cut before its pixel data ends, or with
    an IHDR that does not match its CRC, still gets a 400 (from libpng or from Pillow)."""
    data = png(np.full((*MODEL_HW, 3), 9, dtype=np.uint8))
    broken_ihdr = bytearray(data)
    broken_ihdr[29] ^= 0x01  # the interlace byte, under the IHDR CRC
    idat_end = data.index(b"IEND") - 8  # the last IDAT's CRC ends here
    cuts = [data[:length] for length in (8, 20, 33, 40, len(data) // 2, idat_end - 6)]
    for index, sample in enumerate([*cuts, bytes(broken_ihdr)]):
        with pytest.raises(images.ServiceError) as caught:
            decode_image(sample, f"cut{index}.png", MODEL_HW, 10**7)
        assert caught.value.status == 400, index
