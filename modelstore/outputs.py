"""What the fused pair graph gives per image, as one typed batch: the contract between the
exported graph, every serving runtime and the repair's evaluation."""

from dataclasses import dataclass, fields

import numpy as np

from modelstore.layout import PAIR_OUTPUTS


@dataclass(frozen=True)
class PairOutputs:
    """The two nets' answers for a batch, one array per output of :data:`PAIR_OUTPUTS`, in
    its order. ``overlap`` and ``support`` are None only where no calibrated rule reads
    them (B pruned but not fine-tuned, say)."""

    bad_label: np.ndarray
    repaired_label: np.ndarray
    confidence: np.ndarray | None
    overlap: np.ndarray | None
    support: np.ndarray | None

    def __len__(self) -> int:
        return len(self.bad_label)

    @classmethod
    def from_named(cls, named: dict[str, np.ndarray]) -> "PairOutputs":
        """From a runtime's outputs by name (ONNX Runtime's, a SavedModel's)."""
        return cls(*(np.asarray(named[name]) for name in PAIR_OUTPUTS))

    def take(self, index: np.ndarray | slice) -> "PairOutputs":
        """The outputs of the images at ``index`` only."""
        return PairOutputs(
            *(None if (v := getattr(self, f.name)) is None else v[index] for f in fields(self))
        )

    @classmethod
    def concat(cls, parts: list["PairOutputs"]) -> "PairOutputs":
        return cls(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)))
