"""``python -m bench.explain_quality --labels LABEL [...] [--work DIR]``: how well the served
explanation points at the trigger (the pointing game), and what it costs.

For each BadNet repaired by ``python -m bench.repair_quality --label LABEL`` (under
``--work``; the first label that has a repair) whose trigger is worn on the face (an
accessory or a patch: a warp or a whole-image blend has no area to point at), it takes
the triggered test faces the filter flags and explains them as the service does
(:mod:`app.serving.explain`, ONNX Runtime). A hit is when the hottest window's centre
falls inside the trigger's area: the box around the pixels where the triggered face
differs from the same clean face (the demo renders both from one seed; two lenses and
their bridge make one area), widened by the pointing game's tolerance (15 pixels of 224
in Zhang et al., 2016: 7% of the side). The baseline is a window drawn uniformly at
random (its expected hit rate, exactly). Writes ``bench/results/explain_quality-LABELS.json``
and prints a Markdown table.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np

from bench.process import ROOT

RESULTS = ROOT / "bench" / "results"
CHUNK = 16
"""Faces explained per call (a request's worth; all at once would take gigabytes)."""
TOLERANCE = 0.07
"""The pointing game's tolerance, as a share of the image's side."""
TRIGGER_CHANGE = 0.05
"""A pixel is on the trigger when some channel moved more than this (in [0, 1])."""


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    rows = []
    for work in sorted(args.work.glob("*-s*-i*")):
        folders = [work / "models" / label for label in args.labels]
        folder = next((f for f in folders if (f / "pair.onnx").exists()), None)
        if folder is not None:
            rows += _score(work, folder, args.images)
            if args.figure is not None and not args.figure.exists():
                _figure(folder, args.figure)
    if not rows:
        print(f"no repairs labelled {args.labels} under {args.work}")
        return 1
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "-".join(args.labels)
    (RESULTS / f"explain_quality-{name}.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(_markdown(rows))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.explain_quality", description=__doc__)
    parser.add_argument("--work", type=Path, default=Path("/tmp/repair-quality"))
    parser.add_argument(
        "--labels", nargs="+", default=["defaults"], help="the repair_quality runs to explain"
    )
    parser.add_argument("--images", type=int, default=300, help="flagged faces per trigger")
    parser.add_argument(
        "--figure", type=Path, help="also draw the first BadNet's first explained faces here"
    )
    return parser


def _score(work: Path, folder: Path, images: int) -> list[dict]:
    """One row per trigger of one repaired BadNet."""
    import modelstore
    from app.serving.explain import Windows, explain
    from app.serving.onnx_backend import OnnxRuntime
    from repair.data import load_dataset

    model = modelstore.ModelFolder(folder)
    manifest = modelstore.read_manifest(model.manifest)
    runtime = OnnxRuntime(model.pair_onnx.read_bytes())
    clean = load_dataset(manifest.inputs["clean_test"]["path"])
    rule = manifest.filter.calibrated_rule() or manifest.filter
    windows = Windows.for_size(*manifest.input_shape[:2])
    rows = []
    for entry in manifest.inputs["poisoned_data"]:
        poisoned = load_dataset(entry["path"])
        target = int(poisoned.y[0])
        faces = clean.x[clean.y != target]  # the same faces, untriggered, in the same order
        if len(faces) != len(poisoned):
            continue
        changed = np.abs(poisoned.x - faces).max(axis=3) > TRIGGER_CHANGE
        if changed.mean() > 0.3:
            continue  # a whole-image trigger: nothing to point at
        masks = _areas(changed)
        outputs = runtime.run(poisoned.x)
        chosen = np.flatnonzero(rule.flags(outputs))[:images]
        if len(chosen) == 0:
            continue
        picked = outputs.take(chosen)
        started, found = time.perf_counter(), []
        for first in range(0, len(chosen), CHUNK):  # as the service explains a request's
            part = slice(first, first + CHUNK)
            found += explain(runtime.run, poisoned.x[chosen[part]], picked.take(part), windows)
        seconds = time.perf_counter() - started
        centres = [((t + b - 1) // 2, (le + r - 1) // 2) for t, le, b, r in windows.boxes]
        hits = [masks[i][centres_of(e.box)] for i, e in zip(chosen, found, strict=True)]
        chance = [np.mean([masks[i][c] for c in centres]) for i in chosen]
        rows.append(
            {
                "badnet": work.name,
                "trigger": Path(entry["path"]).stem.removeprefix("poisoned_test_"),
                "explained": len(chosen),
                "trigger_area": float(masks[chosen].mean()),
                "pointing_hits": float(np.mean(hits)),
                "random_window_hits": float(np.mean(chance)),
                "forward_passes_per_image": len(windows.boxes),
                "ms_per_image": 1000 * seconds / len(chosen),
            }
        )
    return rows


def _figure(folder: Path, path: Path, count: int = 3) -> None:
    """Flagged triggered faces beside their heat maps (red) and hottest windows (yellow)."""
    from PIL import Image, ImageDraw

    import modelstore
    from app.serving.explain import Windows, explain
    from app.serving.onnx_backend import OnnxRuntime
    from repair.data import load_dataset

    model = modelstore.ModelFolder(folder)
    manifest = modelstore.read_manifest(model.manifest)
    runtime = OnnxRuntime(model.pair_onnx.read_bytes())
    poisoned = load_dataset(manifest.inputs["poisoned_data"][0]["path"])
    outputs = runtime.run(poisoned.x[:200])
    chosen = np.flatnonzero((manifest.filter.calibrated_rule() or manifest.filter).flags(outputs))
    chosen = chosen[:count]
    picked = outputs.take(chosen)
    windows = Windows.for_size(*manifest.input_shape[:2])
    scale, tiles = 3, []
    for image, found in zip(
        poisoned.x[chosen], explain(runtime.run, poisoned.x[chosen], picked, windows), strict=True
    ):
        face = Image.fromarray((image * 255).astype(np.uint8))
        heat = np.clip(found.heat / max(found.heat.max(), 1e-9), 0, 1)
        size = face.size
        alpha = Image.fromarray((heat * 150).astype(np.uint8)).resize(size, Image.BILINEAR)
        red = Image.new("RGB", size, (230, 20, 20))
        tile = Image.composite(red, face, alpha).resize((size[0] * scale, size[1] * scale))
        top, left, bottom, right = (v * scale for v in found.box)
        ImageDraw.Draw(tile).rectangle((left, top, right - 1, bottom - 1), outline=(255, 212, 0))
        pair = Image.new("RGB", (tile.width * 2 + 4, tile.height), "white")
        pair.paste(face.resize(tile.size, Image.NEAREST), (0, 0))
        pair.paste(tile, (tile.width + 4, 0))
        tiles.append(pair)
    sheet = Image.new("RGB", (sum(t.width + 12 for t in tiles), tiles[0].height), "white")
    for index, tile in enumerate(tiles):
        sheet.paste(tile, (index * (tile.width + 12), 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


def _areas(changed: np.ndarray) -> np.ndarray:
    """Each image's changed pixels (N, H, W) filled out to their bounding box, widened by
    :data:`TOLERANCE` on every side."""
    areas = np.zeros_like(changed)
    height, width = changed.shape[1:]
    pad_y, pad_x = round(TOLERANCE * height), round(TOLERANCE * width)
    for area, pixels in zip(areas, changed, strict=True):
        rows, cols = np.flatnonzero(pixels.any(axis=1)), np.flatnonzero(pixels.any(axis=0))
        if len(rows):
            top, left = max(rows[0] - pad_y, 0), max(cols[0] - pad_x, 0)
            area[top : rows[-1] + 1 + pad_y, left : cols[-1] + 1 + pad_x] = True
    return areas


def centres_of(box: tuple[int, int, int, int]) -> tuple[int, int]:
    top, left, bottom, right = box
    return (top + bottom - 1) // 2, (left + right - 1) // 2


def _markdown(rows: list[dict]) -> str:
    lines = [
        "| BadNet | trigger | flagged faces explained | trigger area (with tolerance) | "
        "hottest window on the trigger | random window | extra passes | ms per image |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['badnet']} | {r['trigger']} | {r['explained']} | "
            f"{100 * r['trigger_area']:.0f}% | **{100 * r['pointing_hits']:.1f}%** | "
            f"{100 * r['random_window_hits']:.1f}% | {r['forward_passes_per_image']} | "
            f"{r['ms_per_image']:.1f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
