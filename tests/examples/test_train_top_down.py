"""examples/train_top_down.py: the paper recipe script, on tiny data."""

import csv
import importlib.util
import json
from pathlib import Path

import keras
import numpy as np
import pytest

from kerapose.data.synthetic import write_synthetic_coco

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "train_top_down.py"
TINY = (
    "--model test_hrnet --input-size 64 64 --batch-size 8 "
    "--steps-per-epoch 1 --verbose 0"
).split()
# Tracing an HRNet train step into a tf.function takes tens of seconds on
# a CPU, far more than the one step per epoch trained here. On JAX eager
# is slower (one XLA compile per op) and on PyTorch it changes nothing.
if keras.backend.backend() == "tensorflow":
    TINY.append("--run-eagerly")


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("train_top_down", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _csv_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _event_tags(folder):
    import tensorflow as tf

    tags = set()
    for path in Path(folder).glob("events.out.tfevents.*"):
        for raw in tf.data.TFRecordDataset(str(path)):
            event = tf.compat.v1.Event.FromString(raw.numpy())
            tags.update(v.tag for v in event.summary.value)
    return tags


def test_defaults_are_the_paper_recipe(script):
    cfg = script.parse_args([])
    assert cfg == script.TrainConfig()
    assert (cfg.model, cfg.input_size, cfg.batch_size) == (
        "hrnet_w32",
        (256, 192),
        32,
    )
    assert (cfg.lr, cfg.lr_steps, cfg.lr_factor, cfg.epochs) == (
        1e-3,
        (170, 200),
        0.1,
        210,
    )
    assert cfg.flip_test


def test_every_field_has_a_flag(script, capsys):
    cfg = script.parse_args(
        ["--input-size", "64", "48", "--lr-steps", "5", "8", "--no-flip-test"]
        + ["--epochs", "9", "--lr", "0.01", "--det-file", "d.json"]
    )
    assert cfg.input_size == (64, 48) and cfg.lr_steps == (5, 8)
    assert not cfg.flip_test and cfg.epochs == 9 and cfg.lr == 0.01
    assert cfg.det_file == "d.json"
    with pytest.raises(SystemExit):
        script.parse_args(["--help"])
    helptext = capsys.readouterr().out
    for name in script.TrainConfig.__dataclass_fields__:
        assert "--" + name.replace("_", "-") in helptext, name


def test_step_schedule_boundaries(script):
    schedule = script.step_schedule(1e-3, (200, 170))
    expected = {
        0: 1e-3,
        169: 1e-3,
        170: 1e-4,
        199: 1e-4,
        200: 1e-5,
        209: 1e-5,
    }
    for epoch, lr in expected.items():
        assert schedule(epoch) == pytest.approx(lr, rel=1e-9)
        # LearningRateScheduler passes the current rate; it is ignored.
        assert schedule(epoch, 0.5) == pytest.approx(lr, rel=1e-9)
    assert isinstance(schedule(0), float)


def test_no_training_data_is_an_error(script, tmp_path):
    with pytest.raises(ValueError, match="--synthetic"):
        script.main(["--out", str(tmp_path)])


def test_train_and_evaluate(script, tmp_path):
    out = tmp_path / "run"
    result = script.main(
        TINY
        + ["--synthetic", "16", "--epochs", "2", "--eval-every", "2"]
        + ["--lr", "1e-3", "--lr-steps", "1", "--out", str(out)]
    )
    for name in ("best.weights.h5", "last.weights.h5", "config.json"):
        assert (out / name).is_file(), name
    assert not (out / "backup").exists()  # deleted after a full run

    rows = _csv_rows(out / "log.csv")
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    # The step at epoch 1 is applied by the fit itself.
    lrs = [float(r["learning_rate"]) for r in rows]
    np.testing.assert_allclose(lrs, [1e-3, 1e-4], rtol=1e-6)
    # Evaluated every 2nd epoch: epoch 0 has a NaN placeholder column.
    assert np.isnan(float(rows[0]["val_AP"]))
    assert 0.0 <= float(rows[1]["val_AP"]) <= 1.0

    assert {"epoch_loss", "epoch_learning_rate"} <= _event_tags(
        out / "tensorboard" / "train"
    )
    assert "epoch_AP" in _event_tags(out / "tensorboard" / "validation")

    final = json.loads((out / "final_metrics.json").read_text())
    assert 0.0 <= final["AP"] <= 1.0 and final["AP"] == result["AP"]
    # The last epoch was evaluated: its AP is the final one.
    assert final["best_AP"] == float(rows[1]["val_AP"]) == final["AP"]
    assert result["epochs_run"] == 2

    # The checkpoint loads into the model the script trained.
    from kerapose import zoo

    model = zoo.load("test_hrnet", input_shape=(64, 64, 3), compile=False)
    model.load_weights(out / "last.weights.h5")


def test_best_checkpoint_waits_for_the_metric(script, tmp_path):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    path = tmp_path / "best.weights.h5"
    best = script._BestCheckpoint(str(path), "val_AP")
    best.set_model(model)
    best.on_epoch_end(0, {"loss": 1.0})
    best.on_epoch_end(1, {"loss": 1.0, "val_AP": float("nan")})
    assert not path.exists()  # Keras' own would have saved twice
    best.on_epoch_end(2, {"val_AP": 0.5})
    assert path.is_file() and best.best == 0.5
    resumed = script._BestCheckpoint(str(path), "val_AP", 0.5)
    resumed.set_model(model)
    resumed.on_epoch_end(3, {"val_AP": 0.4})
    assert resumed.best == 0.5


class _Interrupt(keras.callbacks.Callback):
    """Fails at the end of `epoch`, after the backup of that epoch."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise RuntimeError("interrupted")


def test_resume_after_interruption(script, tmp_path):
    data = tmp_path / "data"
    ann = write_synthetic_coco(data, num_images=16, split="train")
    out = tmp_path / "run"
    argv = TINY + [
        "--train-ann",
        str(ann),
        "--train-images",
        str(data / "images"),
        "--epochs",
        "3",
        "--lr-steps",
        "2",
        "--out",
        str(out),
    ]
    with pytest.raises(RuntimeError, match="interrupted"):
        script.main(argv, callbacks=[_Interrupt(epoch=0)])
    backup = json.loads((out / "backup" / "training_metadata.json").read_text())
    assert backup["epoch"] == 1  # the next epoch to run
    assert [r["epoch"] for r in _csv_rows(out / "log.csv")] == ["0"]

    result = script.main(argv)
    # Epochs 1 and 2 only: the run went on from the backup, optimizer
    # state included (one step per epoch: 1 restored + 2 new).
    assert result["epochs_run"] == 2
    assert int(result["model"].optimizer.iterations) == 3
    rows = _csv_rows(out / "log.csv")
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    lrs = [float(r["learning_rate"]) for r in rows]
    np.testing.assert_allclose(lrs, [1e-3, 1e-3, 1e-4], rtol=1e-6)
    assert not (out / "backup").exists()
    assert result["best_AP"] is None  # no validation set
