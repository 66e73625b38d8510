"""``python -m bench.backdoor_location [--work /tmp/repair-quality] [--label LABEL]``: where
a backdoor lives after the repair, for each repaired DeepID BadNet of ``bench.repair_quality``.

On 600 clean and 600 triggered test faces: the pruned feature map's channels that the
trigger drives most (mean activation, triggered minus clean), how many of the ten most
driven the repair pruned, how much of their response the repaired net keeps, and how much
the trigger moves the frozen ``conv_2``'s output.
"""

import argparse
from pathlib import Path

import numpy as np

import repair  # noqa: F401 - Keras 2 environment before TensorFlow loads
from modelstore import ModelFolder, read_manifest

FACES = 600


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.backdoor_location", description=__doc__)
    parser.add_argument("--work", type=Path, default=Path("/tmp/repair-quality"))
    parser.add_argument("--label", default="defaults", help="the repairs' label")
    args = parser.parse_args(argv)
    print("| BadNet | pruned | top-10 pruned | kept response in B' / B | conv_2 shift | B' ASR |")
    print("|---|---|---|---|---|---|")
    for work in sorted(args.work.iterdir()):
        folder = ModelFolder(work / "models" / args.label)
        if folder.manifest.is_file():
            print(_row(work, folder))
    return 0


def _row(work: Path, folder: ModelFolder) -> str:
    from repair.data import load_dataset
    from repair.inference import predict_scores
    from repair.keras_env import keras

    manifest = read_manifest(folder.manifest)
    pruning, layer = manifest.pruning, manifest.pruning["layer"]
    bad = keras.models.load_model(folder.bad_model, compile=False)
    repaired = keras.models.load_model(folder.repaired_model, compile=False)
    clean = load_dataset(manifest.inputs["clean_test"]["path"]).x[:FACES]
    triggered = load_dataset(manifest.inputs["poisoned_data"][0]["path"]).x[:FACES]

    def shift(model: keras.Model, name: str) -> np.ndarray:
        trunk = keras.Model(model.input, model.get_layer(name).output)
        means = [predict_scores(trunk, x).mean(axis=(0, 1, 2)) for x in (triggered, clean)]
        return means[0] - means[1]

    driven = shift(bad, layer)
    top = np.argsort(-driven)[:10]
    pruned = set(pruning["pruned_channels"])
    kept = [c for c in top if c not in pruned]
    kept_ratio = float(np.mean(shift(repaired, layer)[kept] / driven[kept])) if kept else 0.0
    frozen = shift(bad, "conv_2")
    clean_conv2 = predict_scores(keras.Model(bad.input, bad.get_layer("conv_2").output), clean)
    relative = float(np.abs(frozen).sum() / np.abs(clean_conv2.mean(axis=(0, 1, 2))).sum())
    asr = manifest.metrics.repaired.attack_success_rate if manifest.metrics else None
    return (
        f"| {work.name} | {len(pruned)} / {pruning['channels']} | "
        f"{sum(int(c in pruned) for c in top)} | {kept_ratio:.2f} | {relative:.2f} | "
        f"{'-' if asr is None else f'{100 * asr:.1f}'} |"
    )


if __name__ == "__main__":
    raise SystemExit(main())
