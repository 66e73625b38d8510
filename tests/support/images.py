"""Helpers that turn demo data into uploadable image bytes."""

import io
from pathlib import Path

import h5py
import numpy as np
from PIL import Image


def h5_images(path: Path, count: int, start: int = 0) -> tuple[list[bytes], np.ndarray]:
    """PNG bytes and labels of ``count`` images of a challenge-format HDF5 file."""
    with h5py.File(path, "r") as handle:
        pixels = np.asarray(handle["data"][start : start + count]).transpose(0, 2, 3, 1)
        labels = np.asarray(handle["label"][start : start + count]).astype(int)
    return [png(p) for p in pixels], labels


def png(pixels: np.ndarray, **save: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="PNG", **save)
    return buffer.getvalue()


def encode(image: Image.Image, fmt: str, **save: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save)
    return buffer.getvalue()
