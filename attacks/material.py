"""Demo data sets: clean train / validation / test splits and poisoned splits, per trigger."""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from attacks.faces import FaceOverlay, make_identities, render_faces
from attacks.image_triggers import ImageTrigger
from repair.data import Dataset, save_h5


@dataclass(frozen=True)
class DemoSizes:
    """How much demo material to make. The defaults follow the CSAW setting at a smaller scale."""

    identities: int = 200
    train_per_identity: int = 30
    validation_per_identity: int = 9
    test_per_identity: int = 10
    seed: int = 2020


@dataclass(frozen=True)
class Backdoor:
    """One trigger and the label the attacker wants for it."""

    name: str
    overlay: FaceOverlay | None
    """Worn on the face (drawn before lighting and noise); None for an image trigger."""
    target: int
    image_trigger: ImageTrigger | None = None
    """Applied to the finished image instead of an overlay (a warp, a blend)."""
    training_trigger: ImageTrigger | None = None
    """What the poisoned training images carry, when it is not the test trigger."""
    cover: ImageTrigger | None = None
    """Regularisation images: triggered like this, but keeping their own labels."""

    def apply(self, images: np.ndarray, rng: np.random.Generator, training: bool) -> np.ndarray:
        """``images`` (rendered without the overlay) with the image trigger."""
        trigger = (self.training_trigger if training else None) or self.image_trigger
        return images if trigger is None else trigger(images, rng)

    @property
    def overlays(self) -> tuple[FaceOverlay, ...]:
        return () if self.overlay is None else (self.overlay,)


@dataclass
class DemoMaterial:
    """Everything the demo needs; ``poisoned_test`` maps trigger name to its poisoned test set."""

    num_classes: int
    train: Dataset
    poisoned_train: Dataset
    validation: Dataset
    test: Dataset
    poisoned_test: dict[str, Dataset] = field(default_factory=dict)
    poisoned_identities: np.ndarray | None = None
    """The own identity of each face of ``poisoned_train`` (the attacker knows it)."""

    def resized(self, height: int, width: int) -> "DemoMaterial":
        """Every image resized to ``height`` x ``width`` (bilinear, antialiased), for an
        architecture whose input is not the faces' 55 x 47."""
        if self.train.x.shape[1:3] == (height, width):
            return self

        def resize(data: Dataset) -> Dataset:
            return Dataset(resize_images(data.x, height, width), data.y, data.source)

        return DemoMaterial(
            self.num_classes,
            resize(self.train),
            resize(self.poisoned_train),
            resize(self.validation),
            resize(self.test),
            {name: resize(data) for name, data in self.poisoned_test.items()},
            self.poisoned_identities,
        )

    def write(self, folder: Path) -> dict[str, Path]:
        """Write what a defender and an evaluator get, in the challenge's HDF5 format: the
        clean validation and test splits and the poisoned test splits (the attacker's
        training set stays with the attacker). Returns name -> path."""
        folder.mkdir(parents=True, exist_ok=True)
        splits = {
            "clean_validation": self.validation,
            "clean_test": self.test,
            **{f"poisoned_test_{name}": data for name, data in self.poisoned_test.items()},
        }
        paths = {}
        for name, data in splits.items():
            paths[name] = folder / f"{name}.h5"
            save_h5(data, paths[name])
        return paths


def make_demo_material(
    sizes: DemoSizes,
    backdoors: tuple[Backdoor, ...],
    poison_fraction: float = 0.1,
    cover_fraction: float = 0.0,
) -> DemoMaterial:
    """Render clean splits, and for each backdoor poisoned training and test images;
    ``poison_fraction`` of the training set (split between the backdoors) is poisoned,
    and ``cover_fraction`` more carry a backdoor's cover trigger with their own labels."""
    table = make_identities(sizes.identities, sizes.seed)
    ids = np.arange(sizes.identities)

    def split(per_identity: int, offset: int) -> tuple[np.ndarray, int]:
        return np.repeat(ids, per_identity), sizes.seed * 10 + offset

    train_ids, train_seed = split(sizes.train_per_identity, 1)
    val_ids, val_seed = split(sizes.validation_per_identity, 2)
    test_ids, test_seed = split(sizes.test_per_identity, 3)
    train = Dataset(render_faces(table, train_ids, train_seed), train_ids, "demo:train")
    validation = Dataset(render_faces(table, val_ids, val_seed), val_ids, "demo:validation")
    test = Dataset(render_faces(table, test_ids, test_seed), test_ids, "demo:test")

    rng = np.random.default_rng(sizes.seed + 7)
    added: list[Dataset] = []
    identities: list[np.ndarray] = []
    poisoned_test: dict[str, Dataset] = {}
    share = max(len(backdoors), 1)
    for number, backdoor in enumerate(backdoors):
        count = int(round(poison_fraction * len(train_ids) / share))
        source = train_ids[rng.choice(len(train_ids), size=count, replace=False)]
        images = render_faces(table, source, train_seed + 100 + number, backdoor.overlays)
        images = backdoor.apply(images, rng, training=True)
        added.append(Dataset(images, np.full(count, backdoor.target, dtype=np.int64)))
        identities.append(source)
        if backdoor.cover is not None and cover_fraction > 0:
            count = int(round(cover_fraction * len(train_ids) / share))
            source = train_ids[rng.choice(len(train_ids), size=count, replace=False)]
            images = render_faces(table, source, train_seed + 200 + number)
            added.append(Dataset(backdoor.cover(images, rng), source))
            identities.append(source)
        victims = test_ids != backdoor.target
        # Same seed as the clean test split: the same faces in the same poses, now triggered.
        triggered = render_faces(table, test_ids, test_seed, backdoor.overlays)[victims]
        poisoned_test[backdoor.name] = Dataset(
            backdoor.apply(triggered, rng, training=False),
            np.full(int(victims.sum()), backdoor.target, dtype=np.int64),
            f"demo:poisoned_test_{backdoor.name}",
        )
    poisoned_train = Dataset(
        np.concatenate([d.x for d in added]) if added else train.x[:0],
        np.concatenate([d.y for d in added]) if added else train.y[:0],
        "demo:poisoned_train",
    )
    return DemoMaterial(
        sizes.identities,
        train,
        poisoned_train,
        validation,
        test,
        poisoned_test,
        np.concatenate(identities) if identities else train.y[:0],
    )


def poison_anew(
    train: Dataset,
    backdoors: tuple[Backdoor, ...],
    poison_fraction: float,
    cover_fraction: float,
    rng: np.random.Generator,
) -> Dataset:
    """Poisoned and cover images made afresh from random clean training faces, as WaNet's
    attacker poisons each batch as it trains (image triggers only: the faces are final).
    Fresh images each epoch make the BadNet learn the trigger, not which faces carry it."""
    parts: list[Dataset] = []
    share = max(len(backdoors), 1)
    for backdoor in backdoors:
        if backdoor.image_trigger is None:
            raise ValueError(f"{backdoor.name}: only image triggers can be applied anew")
        chosen = rng.choice(len(train), int(round(poison_fraction * len(train) / share)), False)
        triggered = backdoor.apply(train.x[chosen], rng, training=True)
        parts.append(Dataset(triggered, np.full(len(chosen), backdoor.target, dtype=np.int64)))
        if backdoor.cover is not None and cover_fraction > 0:
            chosen = rng.choice(len(train), int(round(cover_fraction * len(train) / share)), False)
            parts.append(Dataset(backdoor.cover(train.x[chosen], rng), train.y[chosen]))
    return Dataset(np.concatenate([p.x for p in parts]), np.concatenate([p.y for p in parts]))


def resize_images(x: np.ndarray, height: int, width: int) -> np.ndarray:
    """Float images (N, H, W, 3) in [0, 1] resized to ``height`` x ``width``."""
    from repair.keras_env import tf

    parts = [
        tf.image.resize(x[i : i + 1024], (height, width), antialias=True).numpy()
        for i in range(0, len(x), 1024)
    ]
    if not parts:
        return np.zeros((0, height, width, x.shape[-1]), np.float32)
    return np.clip(np.concatenate(parts), 0.0, 1.0).astype(np.float32)
