"""Face data sets: the challenge's HDF5 format and folders of images, validated."""

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
from PIL import Image, UnidentifiedImageError

from repair.errors import RepairInputError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp"})


@dataclass(frozen=True)
class Dataset:
    """Images as float32 (N, H, W, 3) in [0, 1] with integer labels (N,)."""

    x: np.ndarray
    y: np.ndarray
    source: str = ""

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def subset(self, index: np.ndarray) -> "Dataset":
        """The images at ``index`` (an index array or boolean mask)."""
        return Dataset(self.x[index], self.y[index], self.source)


def load_dataset(path: str | Path) -> Dataset:
    """Load an HDF5 file (``data`` N x 3 x H x W in 0..255, ``label``) or an image folder."""
    path = Path(path)
    if path.is_dir():
        return _load_image_folder(path)
    if path.is_file():
        return _load_h5(path)
    raise RepairInputError(f"{path}: data not found (expected an HDF5 file or a folder)")


def save_h5(dataset: Dataset, path: str | Path) -> None:
    """Write ``dataset`` in the challenge's format: uint8 ``data`` N x 3 x H x W, ``label``."""
    pixels = np.clip(np.rint(dataset.x * 255.0), 0, 255).astype(np.uint8)
    with h5py.File(path, "w") as handle:
        handle.create_dataset("data", data=pixels.transpose(0, 3, 1, 2), compression="gzip")
        handle.create_dataset("label", data=dataset.y.astype(np.float64))


def check_fits_model(
    dataset: Dataset, input_shape: tuple[int, ...], num_classes: int, what: str = "data"
) -> None:
    """Raise :class:`RepairInputError` unless images and labels fit the model."""
    if len(dataset) == 0:
        raise RepairInputError(f"{dataset.source}: {what} holds no images")
    if tuple(dataset.x.shape[1:]) != tuple(input_shape):
        raise RepairInputError(
            f"{dataset.source}: {what} images are {tuple(dataset.x.shape[1:])} (H, W, C) but the "
            f"model expects {tuple(input_shape)}"
        )
    low, high = int(dataset.y.min()), int(dataset.y.max())
    if low < 0 or high >= num_classes:
        raise RepairInputError(
            f"{dataset.source}: {what} labels span {low}..{high}, outside the model's "
            f"0..{num_classes - 1}"
        )


def _load_h5(path: Path) -> Dataset:
    try:
        with h5py.File(path, "r") as handle:
            missing = [key for key in ("data", "label") if key not in handle]
            if missing:
                raise RepairInputError(
                    f"{path}: HDF5 file lacks dataset(s) {missing}; expected 'data' "
                    "(N x 3 x H x W, 0..255) and 'label' (N)"
                )
            data = np.asarray(handle["data"])
            labels = np.asarray(handle["label"])
    except OSError as exc:
        raise RepairInputError(f"{path}: not a readable HDF5 file ({exc})") from exc
    return Dataset(_to_unit_nhwc(path, data), _to_labels(path, labels, len(data)), str(path))


def _to_unit_nhwc(path: Path, data: np.ndarray) -> np.ndarray:
    if data.ndim != 4 or data.shape[1] != 3:
        raise RepairInputError(
            f"{path}: 'data' has shape {data.shape}; expected N x 3 x H x W (channel-first RGB)"
        )
    if not np.issubdtype(data.dtype, np.number):
        raise RepairInputError(f"{path}: 'data' is {data.dtype}, not numeric pixels")
    if data.size and (float(data.min()) < 0 or float(data.max()) > 255):
        raise RepairInputError(
            f"{path}: 'data' values span {data.min()}..{data.max()}; expected pixels in 0..255"
        )
    return (data.transpose(0, 2, 3, 1).astype(np.float32)) / np.float32(255.0)


def _to_labels(path: Path, labels: np.ndarray, count: int) -> np.ndarray:
    labels = labels.reshape(-1)
    if labels.shape[0] != count:
        raise RepairInputError(f"{path}: {labels.shape[0]} labels for {count} images")
    if not np.issubdtype(labels.dtype, np.number) or not np.all(np.isfinite(labels)):
        raise RepairInputError(f"{path}: 'label' must hold finite numbers")
    if np.any(labels != np.round(labels)):
        raise RepairInputError(f"{path}: 'label' holds non-integer values")
    return labels.astype(np.int64)


def _load_image_folder(path: Path) -> Dataset:
    images: list[np.ndarray] = []
    labels: list[int] = []
    folders = sorted(p for p in path.iterdir() if p.is_dir())
    if not folders:
        raise RepairInputError(f"{path}: folder has no sub-folders; expected one per label")
    for folder in folders:
        if not folder.name.isdigit():
            raise RepairInputError(f"{folder}: sub-folder names must be integer labels")
        for file in sorted(folder.iterdir()):
            if file.suffix.lower() in IMAGE_SUFFIXES:
                images.append(_read_image(file))
                labels.append(int(folder.name))
    if not images:
        raise RepairInputError(f"{path}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found")
    shapes = {image.shape for image in images}
    if len(shapes) != 1:
        raise RepairInputError(f"{path}: images differ in size {sorted(shapes)}")
    x = np.stack(images).astype(np.float32) / np.float32(255.0)
    return Dataset(x, np.asarray(labels, dtype=np.int64), str(path))


def _read_image(file: Path) -> np.ndarray:
    try:
        with Image.open(file) as image:
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as exc:
        raise RepairInputError(f"{file}: not a readable image ({exc})") from exc
