"""Fine-pruning end to end: load, rank, sweep, prune, fine-tune, export, calibrate, evaluate,
check the export, publish.

This is repair/'s public entry point for other programs (the service calls it in a
worker process); the command line in :mod:`repair.cli` is a thin layer over it.
"""

import resource
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

import modelstore
from repair.channels import choose_depth, mean_channel_activations, pruning_sweep, zero_channels
from repair.data import Dataset, check_fits_model, load_dataset
from repair.errors import RepairError, RepairInputError
from repair.evaluate import (
    PairOutputs,
    PoisonedSet,
    evaluate_outputs,
    operating_points,
    pair_outputs,
)
from repair.export import OPSET, OUTPUTS, check_against_keras, label_graph, pair_graph
from repair.filter_rule import STRICT, calibrate_on
from repair.finetune import clone_model, fine_tune, fine_tune_epochs
from repair.model_io import (
    load_model_file,
    model_input_shape,
    model_num_classes,
    save_model_file,
    weights_digest,
)
from repair.options import RepairOptions
from repair.report import library_versions, plot_filter, plot_pruning

ONNX_CHECKS_PER_SET = 1000
"""Images of each set (all of the held-out part) on which the exported pair must give Keras'
labels: the figures come from the export, and this shows they are the nets' own."""

ProgressCallback = Callable[[str, float], None]
"""Called with a stage name and the overall fraction done (0..1)."""


@dataclass(frozen=True)
class RepairInputs:
    """Where the BadNet and the data are. Poisoned sets are optional (evaluation only)."""

    bad_model: Path
    clean_data: Path
    poisoned_data: tuple[Path, ...] = ()
    target: int | None = None
    clean_test: Path | None = None


def fine_prune_to_folder(
    inputs: RepairInputs,
    out: Path,
    options: RepairOptions | None = None,
    name: str | None = None,
    extra_manifest: dict | None = None,
    on_progress: ProgressCallback | None = None,
) -> dict:
    """Repair ``inputs.bad_model`` and publish ``bad.h5``, ``repaired.h5``, ``manifest.json``,
    ``pruning.png`` and ``filter.png`` as a new version of ``out``. Returns the manifest.

    Raises :class:`RepairInputError` for unusable input (nothing is written) and
    :class:`RepairError` for failures; ``out`` is untouched unless the run succeeds.
    """
    options = options or RepairOptions()
    report = on_progress or (lambda stage, fraction: None)
    timings: dict[str, float] = {}
    clock = _Stopwatch(timings)

    with clock("load"):  # reported once it succeeded: bad input gets one line, the error
        bad = load_model_file(inputs.bad_model)
        num_classes, input_shape = model_num_classes(bad), model_input_shape(bad)
        clean = load_dataset(inputs.clean_data)
        check_fits_model(clean, input_shape, num_classes, "clean data")
        poisoned = _load_poisoned(inputs, input_shape, num_classes)
        test = None
        if inputs.clean_test is not None:
            test = load_dataset(inputs.clean_test)
            check_fits_model(test, input_shape, num_classes, "clean test data")
    # B, B' (same size), the plots and the manifest: fail now, not after the training.
    try:
        modelstore.ensure_writable(out, 2 * Path(inputs.bad_model).stat().st_size + 4 * 2**20)
    except modelstore.PublishError as exc:
        raise RepairError(str(exc)) from exc
    tune, holdout = _split(clean, options.holdout_fraction, options.seed)
    evaluation = test if test is not None else holdout
    bad_digest = weights_digest(bad)

    with clock("rank_and_sweep"):
        report("inputs loaded; rank channels", 0.05)
        activations = mean_channel_activations(bad, options.layer, clean.x)
        order = np.argsort(activations, kind="stable")
        # Each depth reruns the layers above on every face: a sample keeps a CSAW-size
        # sweep to seconds, and 3,000 faces measure a 4-point drop to about 0.4 points.
        swept = _sample(clean, options.sweep_faces, options.seed)
        all_poisoned = _concat([item.data for item in poisoned])
        if all_poisoned is not None:
            all_poisoned = _sample(all_poisoned, options.sweep_faces, options.seed)
        sweep = pruning_sweep(
            bad,
            options.layer,
            order,
            swept.x,
            swept.y,
            None if all_poisoned is None else all_poisoned.x,
            None if all_poisoned is None else all_poisoned.y,
        )
        if options.prune_fraction is None:
            depth = choose_depth(sweep, options.max_accuracy_drop)
        else:
            depth = int(round(options.prune_fraction * len(order)))
        pruned_channels = [int(c) for c in order[:depth]]
        pruned = clone_model(bad)
        zero_channels(pruned, options.layer, pruned_channels)

    with clock("fine_tune"):
        report("fine-tune", 0.15)
        repaired = fine_tune(
            pruned,
            bad,
            options.layer,
            pruned_channels,
            tune,
            options,
            on_epoch=lambda done, total: report("fine-tune", 0.15 + 0.7 * done / total),
        )
    if weights_digest(bad) != bad_digest:
        raise RepairError("internal error: fine-tuning changed the original model's weights")

    with clock("export_onnx"):
        # Calibration and evaluation run the exported graph: the figures are the served one's.
        report("export", 0.86)
        pair = pair_graph(bad, repaired, options.overlap_temperature)

    with clock("calibrate"):
        report("calibrate", 0.87)
        held_out = pair_outputs(pair, holdout)
        calibrated = calibrate_on(
            held_out.overlap,
            held_out.support if options.support_check else None,
            options.false_flag_budget,
            options.overlap_temperature,
        )
        rule = calibrated if options.filter_rule == "calibrated" else STRICT

    with clock("evaluate"):
        report("evaluate", 0.88)
        evaluated = pair_outputs(pair, evaluation)
        attacked = {item.name: pair_outputs(pair, item.data) for item in poisoned}
        metrics = evaluate_outputs(evaluated, attacked, num_classes, rule)
        # Pruning only, against the same B outputs: only the pruned net runs again.
        pruned_graph = label_graph(pruned)

        def pruned_only_outputs(outputs: PairOutputs, data: Dataset) -> PairOutputs:
            labels = pruned_graph.run(data.x)["label"]
            return replace(outputs, repaired=labels, overlap=None, support=None)

        pruned_only = evaluate_outputs(
            pruned_only_outputs(evaluated, evaluation),
            {item.name: pruned_only_outputs(attacked[item.name], item.data) for item in poisoned},
            num_classes,
            STRICT,
        )
        metrics["pruned_only"] = pruned_only["repaired"]
        metrics["filter_pruned_only"] = pruned_only["filter"]
        metrics["evaluated_on"] = "clean test data" if test is not None else "held-out clean data"
        points = operating_points(
            held_out,
            evaluated,
            attacked,
            num_classes,
            options.overlap_temperature,
            options.support_check,
        )

    with clock("check_onnx"):
        report("check the export against Keras", 0.92)

        # The labels the export gave during evaluation are checked as they are; only the
        # fine-tuning part, which nothing else ran through it, runs through it here.
        def sampled(data: Dataset, outputs: PairOutputs) -> tuple:
            index = _sample_index(len(data), ONNX_CHECKS_PER_SET, options.seed)
            return data.x[index], outputs.bad[index], outputs.repaired[index]

        tuned = tune.subset(_sample_index(len(tune), ONNX_CHECKS_PER_SET, options.seed))
        checks = {
            "clean data (held-out part)": (holdout.x, held_out.bad, held_out.repaired),
            "clean data (fine-tuning part)": sampled(tuned, pair_outputs(pair, tuned)),
            "evaluation data": sampled(evaluation, evaluated),
            **{f"poisoned data {i.name}": sampled(i.data, attacked[i.name]) for i in poisoned},
        }
        onnx_checked = check_against_keras(bad, repaired, checks)

    report("write", 0.93)
    version = modelstore.new_version_id()
    staging = modelstore.staging_folder(out)
    try:
        (staging / modelstore.PAIR_ONNX).write_bytes(pair.model)
        with clock("write"):
            save_model_file(bad, staging / modelstore.BAD_MODEL)
            save_model_file(repaired, staging / modelstore.REPAIRED_MODEL)
            plot_pruning(sweep, depth, metrics, options.layer, staging / modelstore.PRUNING_PLOT)
            plot_filter(points, metrics, staging / modelstore.FILTER_PLOT)
        files = (
            modelstore.BAD_MODEL,
            modelstore.REPAIRED_MODEL,
            modelstore.PAIR_ONNX,
            modelstore.PRUNING_PLOT,
            modelstore.FILTER_PLOT,
        )
        manifest = modelstore.Manifest(
            name=name or out.name,
            version=version,
            created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            num_classes=num_classes,
            poisoned_label=num_classes,
            input_shape=list(input_shape),
            inputs=_input_hashes(inputs),
            parameters=options.model_dump(mode="json"),
            filter={
                **rule.to_dict(),
                "temperature": options.overlap_temperature,
                "calibrated": calibrated.to_dict(),
                "operating_points": points,
            },
            pruning={
                "layer": options.layer,
                "channels": int(len(order)),
                "pruned_channels": pruned_channels,
                "pruned_fraction": depth / len(order),
                "mean_activations": [float(a) for a in activations],
                "sweep": [asdict(point) for point in sweep],
                "sweep_clean_faces": len(swept),
            },
            fine_tuning={"epochs": fine_tune_epochs(options, len(tune))},
            onnx={
                "file": modelstore.PAIR_ONNX,
                "input": "images",
                "outputs": list(OUTPUTS),
                "opset": OPSET,
                "images_checked": onnx_checked,
            },
            data={
                "clean": len(clean),
                "fine_tune": len(tune),
                "held_out": len(holdout),
                "evaluation": len(evaluation),
            },
            metrics=metrics,
            timings_s=timings,
            peak_memory_mib=peak_memory_mib(),
            versions=library_versions(),
            files={f: modelstore.sha256_file(staging / f) for f in files},
            **(extra_manifest or {}),
        )
        manifest.write(staging / modelstore.MANIFEST)
        modelstore.publish(staging, out, version)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    report("done", 1.0)
    return manifest.model_dump(mode="json")


def peak_memory_mib() -> float:
    """The most resident memory this process has used so far (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _load_poisoned(
    inputs: RepairInputs, input_shape: tuple[int, ...], num_classes: int
) -> list[PoisonedSet]:
    sets = []
    for path in inputs.poisoned_data:
        data = load_dataset(path)
        if inputs.target is not None:
            if not 0 <= inputs.target < num_classes:
                raise RepairInputError(f"--target {inputs.target} is outside 0..{num_classes - 1}")
            data = Dataset(data.x, np.full(len(data), inputs.target, dtype=np.int64), data.source)
        check_fits_model(data, input_shape, num_classes, "poisoned data")
        sets.append(PoisonedSet(_trigger_name(path), data))
    return sets


def _trigger_name(path: Path) -> str:
    stem = Path(path).stem
    for prefix in ("poisoned_test_", "poisoned_"):
        if stem.startswith(prefix):
            return stem[len(prefix) :]
    return stem


def _split(clean: Dataset, holdout_fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """Split per label so that every identity keeps images on both sides where it can."""
    if not 0 < holdout_fraction < 1:
        raise RepairInputError(f"holdout fraction must be between 0 and 1, got {holdout_fraction}")
    rng = np.random.default_rng(seed)
    holdout = np.zeros(len(clean), dtype=bool)
    for label in np.unique(clean.y):
        members = rng.permutation(np.flatnonzero(clean.y == label))
        count = int(round(len(members) * holdout_fraction))
        holdout[members[:count]] = True
    if holdout.all() or not holdout.any():
        raise RepairInputError(f"{clean.source}: too few clean images to hold some out")
    return clean.subset(~holdout), clean.subset(holdout)


def _sample(data: Dataset, size: int, seed: int) -> Dataset:
    """At most ``size`` images of ``data``, drawn at random without replacement."""
    if len(data) <= size:
        return data
    return data.subset(_sample_index(len(data), size, seed))


def _sample_index(count: int, size: int, seed: int) -> np.ndarray:
    """At most ``size`` of ``range(count)``, drawn at random without replacement, in order."""
    if count <= size:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).choice(count, size, replace=False))


def _concat(sets: list[Dataset]) -> Dataset | None:
    if not sets:
        return None
    return Dataset(np.concatenate([s.x for s in sets]), np.concatenate([s.y for s in sets]))


def _input_hashes(inputs: RepairInputs) -> dict:
    def entry(path: Path) -> dict:
        path = Path(path)
        hashed = modelstore.sha256_file(path) if path.is_file() else None
        return {"path": str(path), "sha256": hashed}

    result = {"bad_model": entry(inputs.bad_model), "clean_data": entry(inputs.clean_data)}
    result["poisoned_data"] = [entry(p) for p in inputs.poisoned_data]
    if inputs.clean_test is not None:
        result["clean_test"] = entry(inputs.clean_test)
    return result


class _Stopwatch:
    """``with clock("stage"):`` records the stage's wall time in seconds."""

    def __init__(self, timings: dict[str, float]) -> None:
        self._timings = timings

    def __call__(self, stage: str) -> "_Stopwatch":
        self._stage = stage
        return self

    def __enter__(self) -> None:
        self._start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self._timings[self._stage] = round(time.perf_counter() - self._start, 3)
