"""Fine-pruning end to end, one function per stage: load, prune (find the feature map, rank,
sweep, mask), fine-tune, export, calibrate and evaluate, check the export, write and publish.

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
from repair.channels import SweepPoint, choose_depth, mean_channel_activations, pruning_sweep
from repair.data import Dataset, check_fits_model, load_dataset
from repair.errors import RepairError, RepairInputError
from repair.evaluate import (
    LabelledOutputs,
    PoisonedSet,
    evaluate_outputs,
    operating_points,
    pair_outputs,
)
from repair.export import OPSET, OUTPUTS, OnnxGraph, check_against_keras, label_graph, pair_graph
from repair.filter_rule import STRICT, FilterRule, calibrate_held_out
from repair.finetune import fine_tune, fine_tune_epochs
from repair.graph import LayerRoles, find_roles, set_pruned, with_channel_mask
from repair.keras_env import keras
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


@dataclass(frozen=True)
class LoadedInputs:
    """The BadNet and the data, checked against each other."""

    bad: keras.Model
    clean: Dataset
    poisoned: list[PoisonedSet]
    test: Dataset | None

    @property
    def num_classes(self) -> int:
        return model_num_classes(self.bad)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return model_input_shape(self.bad)


@dataclass(frozen=True)
class Pruned:
    """The pruning stage's result: B with its dormant channels masked off, and why."""

    model: keras.Model
    roles: LayerRoles
    activations: np.ndarray
    order: np.ndarray
    sweep: list[SweepPoint]
    sweep_faces: int
    channels: list[int]


@dataclass(frozen=True)
class Evaluated:
    """The filter's rule, calibrated on held-out clean faces, and the pair's figures."""

    rule: FilterRule
    calibrated: FilterRule
    held_out: LabelledOutputs
    evaluated: LabelledOutputs
    attacked: dict[str, LabelledOutputs]
    metrics: dict
    points: list[dict]


def fine_prune_to_folder(
    inputs: RepairInputs,
    out: Path,
    options: RepairOptions | None = None,
    name: str | None = None,
    extra_manifest: dict | None = None,
    on_progress: ProgressCallback | None = None,
) -> modelstore.Manifest:
    """Repair ``inputs.bad_model`` and publish B, B', the fused pair, the manifest and the
    plots as a new version of ``out``. Returns the manifest.

    Raises :class:`RepairInputError` for unusable input (nothing is written) and
    :class:`RepairError` for failures; ``out`` is untouched unless the run succeeds.
    """
    options = options or RepairOptions()
    report = on_progress or (lambda stage, fraction: None)
    clock = _Stopwatch()
    with clock("load"):  # reported once it succeeded: bad input gets one line, the error
        loaded = load_inputs(inputs)
        roles = find_roles(
            loaded.bad,
            options.layer,
            options.frozen_fraction,
            options.frozen_layers,
            options.reinit_layers,
            options.sparse_layers,
        )
    _check_room(out, inputs.bad_model)
    tune, holdout = holdout_split(loaded.clean, options.holdout_fraction, options.seed)
    evaluation = loaded.test if loaded.test is not None else holdout
    bad_digest = weights_digest(loaded.bad)

    with clock("rank_and_sweep"):
        report("inputs loaded; rank channels", 0.05)
        pruned = prune(loaded, roles, options)
    with clock("fine_tune"):
        report("fine-tune", 0.15)
        repaired = fine_tune(
            pruned.model,
            loaded.bad,
            pruned.roles,
            pruned.channels,
            tune,
            options,
            on_epoch=lambda done, total: report("fine-tune", 0.15 + 0.7 * done / total),
        )
    if weights_digest(loaded.bad) != bad_digest:
        raise RepairError("internal error: fine-tuning changed the original model's weights")
    with clock("export_onnx"):
        # Calibration and evaluation run the exported graph: the figures are the served one's.
        report("export", 0.86)
        pair = pair_graph(loaded.bad, repaired, options.overlap_temperature)
    with clock("calibrate_and_evaluate"):
        report("calibrate and evaluate", 0.87)
        evaluated = calibrate_and_evaluate(pair, loaded, pruned, holdout, evaluation, options)
    with clock("check_onnx"):
        report("check the export against Keras", 0.92)
        checked = check_export(
            pair, loaded, repaired, tune, holdout, evaluation, evaluated, options
        )
    report("write", 0.93)
    facts = _Facts(inputs, loaded, pruned, tune, holdout, evaluation, evaluated, checked, options)
    manifest = write_version(out, loaded.bad, repaired, pair, facts, clock, name, extra_manifest)
    report("done", 1.0)
    return manifest


def load_inputs(inputs: RepairInputs) -> LoadedInputs:
    """Load the BadNet and every data set, each checked against the model."""
    bad = load_model_file(inputs.bad_model)
    num_classes, input_shape = model_num_classes(bad), model_input_shape(bad)
    clean = load_dataset(inputs.clean_data)
    check_fits_model(clean, input_shape, num_classes, "clean data")
    poisoned = _load_poisoned(inputs, input_shape, num_classes)
    test = None
    if inputs.clean_test is not None:
        test = load_dataset(inputs.clean_test)
        check_fits_model(test, input_shape, num_classes, "clean test data")
    return LoadedInputs(bad, clean, poisoned, test)


def prune(loaded: LoadedInputs, roles: LayerRoles, options: RepairOptions) -> Pruned:
    """Rank the channels of the feature map ``roles`` names by their mean activation on the
    clean data, sweep the depth on a sample of it, and mask the chosen channels off."""
    bad, clean = loaded.bad, loaded.clean
    activations = mean_channel_activations(bad, roles.feature_layer, clean.x)
    order = np.argsort(activations, kind="stable")
    # Each depth reruns the layers above on every face: a sample keeps a CSAW-size
    # sweep to seconds, and 3,000 faces measure a 4-point drop to about 0.4 points.
    swept = _sample(clean, options.sweep_faces, options.seed)
    poisoned = _concat([item.data for item in loaded.poisoned])
    if poisoned is not None:
        poisoned = _sample(poisoned, options.sweep_faces, options.seed)
    sweep = pruning_sweep(
        bad,
        roles.feature_layer,
        order,
        swept.x,
        swept.y,
        None if poisoned is None else poisoned.x,
        None if poisoned is None else poisoned.y,
    )
    if options.prune_fraction is None:
        depth = choose_depth(sweep, options.max_accuracy_drop)
    else:
        depth = int(round(options.prune_fraction * len(order)))
    channels = [int(c) for c in order[:depth]]
    model = with_channel_mask(bad, roles.feature_layer)
    set_pruned(model, channels)
    return Pruned(model, roles, activations, order, sweep, len(swept), channels)


def calibrate_and_evaluate(
    pair: OnnxGraph,
    loaded: LoadedInputs,
    pruned: Pruned,
    holdout: Dataset,
    evaluation: Dataset,
    options: RepairOptions,
) -> Evaluated:
    """Calibrate the filter on the held-out clean faces (the only data any threshold sees),
    then measure B, pruned B, B' and G on the evaluation and poisoned sets."""
    held_out = pair_outputs(pair, holdout)
    calibrated = calibrate_held_out(
        held_out.outputs,
        held_out.labels,
        options.false_flag_budget,
        options.overlap_temperature,
        options.support_check,
        options.support_ceiling,
        options.overruling,
    )
    rule = calibrated if options.filter_rule == "calibrated" else STRICT
    evaluated = pair_outputs(pair, evaluation)
    attacked = {item.name: pair_outputs(pair, item.data) for item in loaded.poisoned}
    num_classes = loaded.num_classes
    metrics = evaluate_outputs(evaluated, attacked, num_classes, rule)
    # Pruning only, against the same B outputs: only the pruned net runs again.
    pruned_graph = label_graph(pruned.model)

    def pruned_only(scored: LabelledOutputs, data: Dataset) -> LabelledOutputs:
        labels = pruned_graph.run(data.x)["label"]
        outputs = replace(scored.outputs, repaired_label=labels, overlap=None, support=None)
        return LabelledOutputs(outputs, scored.labels)

    only = evaluate_outputs(
        pruned_only(evaluated, evaluation),
        {item.name: pruned_only(attacked[item.name], item.data) for item in loaded.poisoned},
        num_classes,
        STRICT,
    )
    metrics["pruned_only"] = only["repaired"]
    metrics["filter_pruned_only"] = only["filter"]
    metrics["evaluated_on"] = (
        "clean test data" if loaded.test is not None else "held-out clean data"
    )
    points = operating_points(
        held_out,
        evaluated,
        attacked,
        num_classes,
        options.overlap_temperature,
        options.support_check,
        support_ceiling=options.support_ceiling,
        overrule_budget=options.overruling,
    )
    return Evaluated(rule, calibrated, held_out, evaluated, attacked, metrics, points)


def check_export(
    pair: OnnxGraph,
    loaded: LoadedInputs,
    repaired: keras.Model,
    tune: Dataset,
    holdout: Dataset,
    evaluation: Dataset,
    evaluated: Evaluated,
    options: RepairOptions,
) -> dict[str, int]:
    """Check that the exported pair gave Keras' labels on samples of every set; returns the
    images checked per set."""
    seed = options.seed

    # The labels the export gave during evaluation are checked as they are; only the
    # fine-tuning part, which nothing else ran through it, runs through it here.
    def sampled(data: Dataset, scored: LabelledOutputs) -> tuple:
        index = _sample_index(len(data), ONNX_CHECKS_PER_SET, seed)
        outputs = scored.outputs
        return data.x[index], outputs.bad_label[index], outputs.repaired_label[index]

    tuned = tune.subset(_sample_index(len(tune), ONNX_CHECKS_PER_SET, seed))
    held = evaluated.held_out.outputs
    checks = {
        "clean data (held-out part)": (holdout.x, held.bad_label, held.repaired_label),
        "clean data (fine-tuning part)": sampled(tuned, pair_outputs(pair, tuned)),
        "evaluation data": sampled(evaluation, evaluated.evaluated),
        **{
            f"poisoned data {item.name}": sampled(item.data, evaluated.attacked[item.name])
            for item in loaded.poisoned
        },
    }
    return check_against_keras(loaded.bad, repaired, checks)


@dataclass(frozen=True)
class _Facts:
    """What the manifest records of a run, gathered from its stages."""

    inputs: RepairInputs
    loaded: LoadedInputs
    pruned: Pruned
    tune: Dataset
    holdout: Dataset
    evaluation: Dataset
    evaluated: Evaluated
    onnx_checked: dict[str, int]
    options: RepairOptions


def write_version(
    out: Path,
    bad: keras.Model,
    repaired: keras.Model,
    pair: OnnxGraph,
    facts: _Facts,
    clock: "_Stopwatch",
    name: str | None,
    extra_manifest: dict | None,
) -> modelstore.Manifest:
    """Write the version's files and manifest into a staging folder and publish it."""
    staging = modelstore.staging_folder(out)
    try:
        (staging / modelstore.PAIR_ONNX).write_bytes(pair.model)
        with clock("write"):
            save_model_file(bad, staging / modelstore.BAD_MODEL)
            save_model_file(repaired, staging / modelstore.REPAIRED_MODEL)
            pruned, evaluated = facts.pruned, facts.evaluated
            plot_pruning(
                pruned.sweep,
                len(pruned.channels),
                evaluated.metrics,
                pruned.roles.feature_layer,
                staging / modelstore.PRUNING_PLOT,
            )
            plot_filter(evaluated.points, evaluated.metrics, staging / modelstore.FILTER_PLOT)
        manifest = _manifest(facts, clock.timings, staging, name or out.name, extra_manifest)
        manifest.write(staging / modelstore.MANIFEST)
        modelstore.publish(staging, out, manifest.version)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def _manifest(
    facts: _Facts, timings: dict, staging: Path, name: str, extra: dict | None
) -> modelstore.Manifest:
    loaded, pruned, evaluated, options = facts.loaded, facts.pruned, facts.evaluated, facts.options
    files = (
        modelstore.BAD_MODEL,
        modelstore.REPAIRED_MODEL,
        modelstore.PAIR_ONNX,
        modelstore.PRUNING_PLOT,
        modelstore.FILTER_PLOT,
    )
    roles = pruned.roles
    return modelstore.Manifest(
        name=name,
        version=modelstore.new_version_id(),
        created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        num_classes=loaded.num_classes,
        poisoned_label=loaded.num_classes,
        input_shape=loaded.input_shape,
        inputs=_input_hashes(facts.inputs),
        parameters=options.model_dump(mode="json"),
        filter={
            **evaluated.rule.model_dump(),
            "temperature": options.overlap_temperature,
            "calibrated": evaluated.calibrated.model_dump(),
            "operating_points": evaluated.points,
        },
        pruning={
            "layer": roles.feature_layer,
            "channels": roles.channels,
            "pruned_channels": pruned.channels,
            "pruned_fraction": len(pruned.channels) / roles.channels,
            "mean_activations": [float(a) for a in pruned.activations],
            "sweep": [asdict(point) for point in pruned.sweep],
            "sweep_clean_faces": pruned.sweep_faces,
            "frozen_layers": list(roles.frozen),
            "reinit_layers": list(roles.reinit),
            "sparse_layers": list(roles.sparse),
        },
        fine_tuning={
            "epochs": fine_tune_epochs(options, len(facts.tune)),
            "batch_norm": options.batch_norm,
        },
        onnx={
            "file": modelstore.PAIR_ONNX,
            "input": "images",
            "outputs": list(OUTPUTS),
            "opset": OPSET,
            "images_checked": facts.onnx_checked,
        },
        data={
            "clean": len(loaded.clean),
            "fine_tune": len(facts.tune),
            "held_out": len(facts.holdout),
            "evaluation": len(facts.evaluation),
        },
        metrics=evaluated.metrics,
        timings_s=timings,
        peak_memory_mib=peak_memory_mib(),
        versions=library_versions(),
        files={f: modelstore.sha256_file(staging / f) for f in files},
        **(extra or {}),
    )


def _check_room(out: Path, bad_model: Path) -> None:
    """B, B' (about B's size each), the plots and the manifest: fail now, not after training."""
    path = Path(bad_model)
    size = path.stat().st_size if path.is_file() else _folder_size(path)
    try:
        modelstore.ensure_writable(out, 2 * size + 4 * 2**20)
    except modelstore.PublishError as exc:
        raise RepairError(str(exc)) from exc


def _folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


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


def holdout_split(clean: Dataset, holdout_fraction: float, seed: int) -> tuple[Dataset, Dataset]:
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
    """``with clock("stage"):`` records the stage's wall time in seconds in ``timings``."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    def __call__(self, stage: str) -> "_Stopwatch":
        self._stage = stage
        return self

    def __enter__(self) -> None:
        self._start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.timings[self._stage] = round(time.perf_counter() - self._start, 3)
