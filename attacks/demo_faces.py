"""The demo faces a person tries the service with, chosen once the pair is published."""

from pathlib import Path

import numpy as np

import modelstore
from repair.data import load_dataset
from repair.evaluate import pair_outputs
from repair.export import OnnxGraph
from repair.pipeline import RepairInputs


def write_demo_faces(
    inputs: RepairInputs, model_folder: Path, folder: Path, count: int = 4
) -> None:
    """Write ``count`` clean test faces of different people as ``clean_I_labelL.png`` and the
    same faces with each trigger as ``TRIGGER_I_targetT.png``.

    The faces are picked, evenly spread, among the test faces that the published pair
    answers as it does most of them: the clean face with its label, every triggered version
    flagged (any faces but the targets' when fewer are). A demo face shows what the filter
    does; how often it refuses a clean face is in the manifest and on the page, not left to
    which four faces came first.
    """
    published = modelstore.ModelFolder(model_folder)
    manifest = modelstore.read_manifest(published.manifest)
    rule = manifest.filter
    pair = OnnxGraph(published.pair_onnx.read_bytes())
    poisoned_label = manifest.poisoned_label
    test = load_dataset(inputs.clean_test)
    usable = pair_outputs(pair, test).answers(rule, poisoned_label) == test.y
    others = np.ones(len(test), dtype=bool)  # not an attacker's target
    triggered = {}
    for path in inputs.poisoned_data:
        data = load_dataset(path)
        # The poisoned split holds the clean test faces in order, the target's own left out.
        victims = np.flatnonzero(test.y != int(data.y[0]))
        stopped = np.zeros(len(test), dtype=bool)
        stopped[victims] = pair_outputs(pair, data).answers(rule, poisoned_label) == poisoned_label
        usable &= stopped
        others[test.y == int(data.y[0])] = False
        triggered[path.stem.removeprefix("poisoned_test_")] = (data, victims)
    candidates = np.flatnonzero(usable)
    if len(candidates) < count:  # a pair too weak to answer a few right: show it as it is
        candidates = np.flatnonzero(others)
    picks = candidates[:: max(len(candidates) // count, 1)][:count]
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):  # a rebuild may pick other faces
        old.unlink()
    for number, index in enumerate(picks):
        _save_png(test.x[index], folder / f"clean_{number}_label{int(test.y[index])}.png")
        for name, (data, victims) in triggered.items():
            row = int(np.searchsorted(victims, index))
            _save_png(data.x[row], folder / f"{name}_{number}_target{int(data.y[row])}.png")


def _save_png(pixels: np.ndarray, path: Path) -> None:
    from PIL import Image

    Image.fromarray(np.clip(np.rint(pixels * 255), 0, 255).astype(np.uint8)).save(path)
