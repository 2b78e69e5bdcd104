"""`kerapose train`: the three recipes from the command line, resume, and
bad input refused before the model builds.

Tiny presets at 64x64 on 4 synthetic images, one step per epoch; SGD
(tracing Adam's update costs more than these runs) and, on TensorFlow,
eager steps (tracing an HRNet step takes longer than a few steps).
"""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import pytest

from kerapose.cli import build_parser
from kerapose.cli import main
from kerapose.data.synthetic import write_synthetic_coco

ROOT = Path(__file__).resolve().parents[1]
TINY = "--input-size 64 64 --batch-size 2 --steps-per-epoch 1 --optimizer sgd"
TINY = TINY.split() + ["--quiet"]
if keras.backend.backend() == "tensorflow":
    TINY.append("--run-eagerly")


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    """4 synthetic images (one without people) and their annotations."""
    data = tmp_path_factory.mktemp("coco")
    ann = write_synthetic_coco(data, num_images=4, max_people=2)
    return str(ann), str(data / "images")


@pytest.fixture
def no_training(monkeypatch):
    """Fails the test if the model would be built and trained."""
    from kerapose.training import run

    def refuse(settings, **kwargs):
        raise AssertionError("the checks let bad input through")

    monkeypatch.setattr(run, "train", refuse)


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _wrote(out_text):
    return [
        Path(line[len("Wrote ") :]).name
        for line in out_text.splitlines()
        if line.startswith("Wrote ")
    ]


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["train", "--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    sub = next(
        a
        for a in build_parser()._actions
        if hasattr(a, "choices") and a.choices
    )
    parser = sub.choices["train"]
    for action in parser._actions:
        assert action.help, action.dest
        for flag in action.option_strings:
            assert flag in text, flag
    for word in ("top-down", "bottom-up", "single-stage", "resume"):
        assert word in text


def test_bad_input_is_refused_before_the_model_builds(
    coco, tmp_path, capsys, no_training, monkeypatch
):
    ann, images = coco
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    out = ["--out", str(tmp_path / "out")]
    cases = [
        (["test_hrnet", str(tmp_path / "no.json"), images, *out], "Annotation"),
        (["test_hrnet", ann, str(tmp_path / "nodir"), *out], "Image folder"),
        (["test_hrnet", ann, images, "--out", str(a_file)], "is a file"),
        (["test_hrnet", ann, images, "--out", str(a_file / "x")], "under the"),
        (["no_such_model", ann, images, *out], "no_such_model"),
        (["test_hrnet", *out], "--synthetic N"),
        (["test_hrnet", ann, *out], "both ANN and IMAGES"),
        (["test_hrnet", ann, images, "--val-ann", ann, *out], "--val-images"),
        (["test_hrnet", ann, images, "--epochs", "0", *out], "--epochs"),
        (
            ["test_higherhrnet", ann, images, "--input-size", "64", "96"] + out,
            "square",
        ),
        (
            ["test_yolo_pose", ann, images, "--det-file", ann, *out],
            "top-down",
        ),
    ]
    for argv, message in cases:
        assert main(["train", *argv]) == 2, argv
        err = capsys.readouterr().err
        assert "kerapose train: error:" in err and message in err, (argv, err)

    # An interrupted run of another model: resuming it would mix the two.
    other = tmp_path / "other"
    (other / "backup").mkdir(parents=True)
    (other / "config.json").write_text(
        json.dumps({"model": "test_rsn", "input_size": None})
    )
    assert main(["train", "test_hrnet", ann, images, "--out", str(other)]) == 2
    assert "interrupted run of test_rsn" in capsys.readouterr().err

    # A folder that cannot be written (as root os.access says yes to
    # everything, so the answer is forced here).
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, m: Path(p) != locked and real_access(p, m)
    )
    assert main(["train", "test_hrnet", ann, images, "--out", str(locked)]) == 2
    assert "not writable" in capsys.readouterr().err


def test_bad_input_in_a_fresh_process_loads_no_keras(tmp_path):
    code = (
        "import sys\n"
        "from kerapose.cli import main\n"
        f"status = main(['train', 'test_hrnet', {str(tmp_path / 'no.json')!r},"
        f" {str(tmp_path)!r}, '--out', {str(tmp_path / 'out')!r}])\n"
        "heavy = [m for m in ('keras', 'tensorflow', 'jax', 'torch')"
        " if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "sys.exit(status)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "KERAPOSE_HOME": str(tmp_path / "home")},
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "Annotation file not found" in done.stderr


class _Interrupt(keras.callbacks.Callback):
    """Fails at the end of `epoch`, after that epoch's backup."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise RuntimeError("power cut")


def test_top_down_resumes_after_an_interruption(
    coco, tmp_path, capsys, monkeypatch
):
    from kerapose.training import run

    results = []
    real_train = run.train

    def train(settings, callbacks=(), **kwargs):
        extra = [_Interrupt(0)] if not results else []
        results.append(None)
        results[-1] = real_train(settings, callbacks=extra, **kwargs)
        return results[-1]

    monkeypatch.setattr(run, "train", train)
    ann, images = coco
    out = tmp_path / "run"
    argv = ["train", "test_hrnet", ann, images, "--out", str(out)]
    argv += TINY + ["--epochs", "2", "--lr", "0.01", "--lr-steps", "1"]

    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "training failed: RuntimeError: power cut" in err
    assert "resume at epoch 2" in err
    assert [r["epoch"] for r in _rows(out / "log.csv")] == ["0"]

    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "Resumed at epoch 2." in text
    result = results[-1]
    # One epoch in this call, after the one restored with the optimizer
    # state (one step each): not from scratch.
    assert result["epochs_run"] == 1 and result["first_epoch"] == 1
    assert int(result["model"].optimizer.iterations) == 2
    rows = _rows(out / "log.csv")
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    lrs = [float(r["learning_rate"]) for r in rows]
    assert lrs == pytest.approx([0.01, 0.001], rel=1e-6)
    assert not (out / "backup").exists()
    # No validation set: no best weights, and none claimed.
    written = _wrote(text)
    assert written == [
        "last.weights.h5",
        "log.csv",
        "final_metrics.json",
        "config.json",
    ]
    assert not (out / "best.weights.h5").exists()

    # A third run would start over: refused unless --overwrite.
    assert main(argv) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_bottom_up_trains_and_evaluates(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "test_higherhrnet", "--synthetic", "4", "--out", str(out)]
    assert main(argv + TINY + ["--epochs", "1", "--no-flip"]) == 0
    written = _wrote(capsys.readouterr().out)
    assert written == [
        "last.weights.h5",
        "best.weights.h5",
        "log.csv",
        "final_metrics.json",
        "config.json",
    ]
    config = json.loads((out / "config.json").read_text())
    assert config["task"] == "bottom_up" and config["input_size"] == [64, 64]
    rows = _rows(out / "log.csv")
    assert [int(r["epoch"]) for r in rows] == [0]
    assert 0.0 <= float(rows[0]["val_AP"]) <= 1.0
    assert float(rows[0]["loss"]) > 0
    final = json.loads((out / "final_metrics.json").read_text())
    assert final["AP"] == float(rows[0]["val_AP"])

    from kerapose import zoo

    model = zoo.load("test_higherhrnet", input_shape=(64, 64, 3), compile=False)
    model.load_weights(out / "best.weights.h5")


def test_single_stage_trains(coco, tmp_path, capsys):
    # No validation set: building the YOLO-Pose pipeline is the slow part,
    # and the evaluator's dispatch is checked below.
    ann, images = coco
    out = tmp_path / "run"
    argv = ["train", "test_yolo_pose", ann, images, "--out", str(out)]
    assert main(argv + TINY + ["--epochs", "1"]) == 0
    assert "best.weights.h5" not in _wrote(capsys.readouterr().out)
    config = json.loads((out / "config.json").read_text())
    assert config["task"] == "single_stage"
    rows = _rows(out / "log.csv")
    assert [int(r["epoch"]) for r in rows] == [0]
    assert float(rows[0]["loss"]) > 0

    from kerapose import zoo

    model = zoo.load("test_yolo_pose", input_shape=(64, 64, 3), compile=False)
    model.load_weights(out / "last.weights.h5")


def test_each_task_gets_its_evaluator():
    from kerapose.eval.bottom_up import evaluate_bottom_up
    from kerapose.eval.single_stage import evaluate_single_stage
    from kerapose.eval.top_down import evaluate_top_down
    from kerapose.training.recipes import evaluator

    class Model:
        def __init__(self, task):
            self.task = task

    top = evaluator(Model("top_down"), flip_test=False, det_file="d.json")
    assert top.func is evaluate_top_down
    assert top.keywords["det_file"] == "d.json"
    assert not top.keywords["flip_test"]
    bottom = evaluator(Model("bottom_up"), flip_test=False)
    assert bottom.func is evaluate_bottom_up and not bottom.keywords["flip"]
    assert evaluator(Model("single_stage")).func is evaluate_single_stage
    with pytest.raises(ValueError, match="top-down"):
        evaluator(Model("single_stage"), det_file="d.json")
