"""``python -m bench.applications [--nets MobileNetV3Small ...] [--work DIR]``: which
keras.applications nets the repair takes, end to end.

Each net is built with no pretrained weights (none can be downloaded here) for the demo's
faces at 80x80 (InceptionV3 and Xception need at least 75 and 71), trained one epoch on
them, saved as ``.keras`` and given to ``python -m repair fine-prune`` with a short
fine-tuning (``--steps 10``): what is measured is whether the repair loads, prunes,
fine-tunes, exports and checks the net, not how well it repairs it (an untrained net has
no backdoor). Each repair runs in its own process, as a user runs it; its exit code and
last line are reported. Writes ``bench/results/applications.json`` and prints a Markdown
table.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from bench.process import ROOT

RESULTS = ROOT / "bench" / "results"
NETS = (
    "MobileNet",
    "MobileNetV2",
    "MobileNetV3Small",
    "MobileNetV3Large",
    "EfficientNetB0",
    "EfficientNetV2B0",
    "ResNet50",
    "ResNet50V2",
    "DenseNet121",
    "NASNetMobile",
    "Xception",
    "InceptionV3",
    "VGG16",
    "RegNetX002",
    "ConvNeXtTiny",
)
IDENTITIES = 20
SIDE = 80


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.applications", description=__doc__)
    parser.add_argument("--nets", nargs="+", default=list(NETS))
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench-applications"))
    args = parser.parse_args(argv)
    clean = _write_faces(args.work)
    rows = [_repair(name, clean, args.work / name) for name in args.nets]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "applications.json").write_text(json.dumps(rows, indent=2) + "\n")
    print("| net | exit code | repair s | last line |")
    print("|---|---|---|---|")
    for row in rows:
        print(f"| {row['net']} | {row['exit_code']} | {row['seconds']:.0f} | {row['last_line']} |")
    return 0


def _write_faces(work: Path) -> Path:
    """The demo's clean faces at SIDE x SIDE for the defender, and the training faces (kept
    as ``.npz`` beside them) for the attacker's one epoch."""
    import numpy as np

    from attacks.material import DemoSizes, make_demo_material
    from repair.data import save_h5

    sizes = DemoSizes(identities=IDENTITIES, train_per_identity=10, validation_per_identity=10)
    faces = make_demo_material(sizes, ()).resized(SIDE, SIDE)
    work.mkdir(parents=True, exist_ok=True)
    save_h5(faces.validation, work / "clean.h5")
    np.savez(work / "train.npz", x=faces.train.x, y=faces.train.y)
    return work / "clean.h5"


def _repair(name: str, clean: Path, folder: Path) -> dict:
    """Build and train ``name`` in a child process, then repair it in another."""
    folder.mkdir(parents=True, exist_ok=True)
    build = subprocess.run(
        [sys.executable, "-c", _BUILD, name, str(clean.parent / "train.npz"), str(folder)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if build.returncode != 0:
        return _row(name, build, 0.0, "build failed: ")
    started = time.monotonic()
    repaired = subprocess.run(
        [
            sys.executable,
            "-m",
            "repair",
            "fine-prune",
            "--bad-model",
            str(folder / "bad.keras"),
            "--clean-data",
            str(clean),
            "--out",
            str(folder / "models"),
            "--steps",
            "10",
            "--sweep-faces",
            "100",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return _row(name, repaired, time.monotonic() - started)


def _row(name: str, run: subprocess.CompletedProcess, seconds: float, prefix: str = "") -> dict:
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    last = lines[-1].strip() if lines else ""
    return {
        "net": name,
        "exit_code": run.returncode,
        "seconds": seconds,
        "last_line": prefix + last.replace("|", "/")[:240],
    }


_BUILD = """
import sys
import numpy as np
import repair  # the Keras 2 environment before TensorFlow loads
from repair.keras_env import keras

name, train, folder = sys.argv[1:]
faces = np.load(train)
keras.utils.set_random_seed(0)
net = getattr(keras.applications, name)(
    weights=None, input_shape=faces["x"].shape[1:], classes=int(faces["y"].max()) + 1
)
net.compile("adam", "sparse_categorical_crossentropy")
net.fit(faces["x"], faces["y"], epochs=1, batch_size=32, verbose=0)
net.save(folder + "/bad.keras")
"""


if __name__ == "__main__":
    raise SystemExit(main())
