"""Bad inputs get a one-line error and exit code 2, and nothing is written."""

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from repair.architecture import build_deepid
from repair.cli import main
from repair.data import Dataset, load_dataset, save_h5
from repair.model_io import load_model_file, save_model_file
from tests.support.service import ROOT


@pytest.fixture(scope="module")
def small_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny 10-class model and matching data, and variants that are wrong in one way."""
    root = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    files = {"model": root / "model.h5", "other_shape": root / "other_shape.h5"}
    save_model_file(build_deepid(10), files["model"])
    save_model_file(build_deepid(10, (64, 64, 3)), files["other_shape"])
    x = rng.uniform(0, 1, size=(40, 55, 47, 3)).astype(np.float32)
    files["data"] = root / "data.h5"
    save_h5(Dataset(x, np.arange(40) % 10), files["data"])
    files["labels_out_of_range"] = root / "labels_out_of_range.h5"
    save_h5(Dataset(x, np.arange(40) % 10 + 5), files["labels_out_of_range"])
    files["no_data"] = root / "no_data.h5"
    with h5py.File(files["no_data"], "w") as handle:
        handle.create_dataset("label", data=np.zeros(3))
    files["text"] = root / "model.txt"
    files["text"].write_text("this is not a model\n")
    return files


def _run(files: dict[str, Path], out: Path, model: str, data: str) -> int:
    return main(
        [
            "fine-prune",
            "--bad-model",
            str(files[model]),
            "--clean-data",
            str(files[data]),
            "--out",
            str(out),
            "--epochs",
            "1",
        ]
    )


@pytest.mark.parametrize(
    ("model", "data", "message"),
    [
        ("text", "data", "not a model file"),
        ("other_shape", "data", "model expects (64, 64, 3)"),
        ("model", "no_data", "lacks dataset(s) ['data']"),
        ("model", "labels_out_of_range", "outside the model's 0..9"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    small_files: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    model: str,
    data: str,
    message: str,
) -> None:
    out = tmp_path / "models" / "x"
    assert _run(small_files, out, model, data) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert not out.exists() and not (tmp_path / "models" / ".versions").exists()


def test_options_that_contradict_each_other_exit_2(
    small_files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "models" / "x"
    args = ["--bad-model", str(small_files["model"]), "--clean-data", str(small_files["data"])]
    assert main(["fine-prune", *args, "--out", str(out), "--frozen-layers", "conv_2,fc_1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: frozen layers ['fc_1'] are pruned, re-initialised or made sparse"
    assert not out.exists()


def test_real_cli_process_exit_code_and_help(small_files: dict[str, Path], tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "repair",
        "fine-prune",
        "--bad-model",
        str(small_files["text"]),
        "--clean-data",
        str(small_files["data"]),
        "--out",
        str(tmp_path / "m"),
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "model.txt" in done.stderr and "not a model file" in done.stderr
    helped = subprocess.run(
        [sys.executable, "-m", "repair", "fine-prune", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert helped.returncode == 0 and "--max-accuracy-drop" in helped.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "repair", "fine-prune"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 2


def test_weights_only_file_is_detected_and_loaded(
    small_files: dict[str, Path], tmp_path: Path
) -> None:
    model = load_model_file(small_files["model"])
    weights = tmp_path / "weights.h5"
    model.save_weights(str(weights), save_format="h5")
    loaded = load_model_file(weights)
    assert loaded.output_shape == (None, 10)
    for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_lambda_layer_model_is_refused(tmp_path: Path) -> None:
    from repair.errors import RepairInputError
    from repair.keras_env import keras

    inputs = keras.Input((55, 47, 3))
    x = keras.layers.Lambda(lambda t: t * 2)(inputs)
    outputs = keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(x))
    path = tmp_path / "lambda.h5"
    keras.Model(inputs, outputs).save(str(path), save_format="h5")
    with pytest.raises(RepairInputError, match="Lambda"):
        load_model_file(path)


def test_image_folder_loads_with_labels_from_folder_names(tmp_path: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(1)
    for label in (3, 7):
        (tmp_path / str(label)).mkdir()
        for i in range(2):
            pixels = rng.integers(0, 256, size=(55, 47, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / str(label) / f"{i}.png")
    data = load_dataset(tmp_path)
    assert data.x.shape == (4, 55, 47, 3)
    assert sorted(data.y.tolist()) == [3, 3, 7, 7]
    (tmp_path / "faces").mkdir()
    from repair.errors import RepairInputError

    with pytest.raises(RepairInputError, match="integer labels"):
        load_dataset(tmp_path)
