"""The `kerapose` command: start-up, listing, paths, progress, help.

In-process through `kerapose.cli.main` where possible; a subprocess only
where the process itself is checked (imported modules, native log lines).
"""

import argparse
import importlib
import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from kerapose.cli import build_parser
from kerapose.cli import main
from kerapose.cli_support import quiet_native_logs

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--input-size", "64", "64", "--quiet"]

# Runs commands that need no model, then fails if anything heavy loaded.
NO_KERAS = """
import sys
from kerapose.cli import main
assert main(["list", "rsn"]) == 0
assert main(["describe", "hrnet_w32.coco_256x192"]) == 0
for argv in (["--help"], ["export", "--help"], ["predict", "--help"]):
    try:
        main(argv)
    except SystemExit as e:
        assert e.code == 0, e
heavy = [m for m in ("keras", "tensorflow", "jax", "torch") if m in sys.modules]
assert not heavy, f"imported {heavy}"
"""


def _run(*args, **kwargs):
    # TensorFlow is imported on every backend (tf.data); its backend starts
    # fastest, and the CLI's logic is the same on all.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KERAS_BACKEND": "tensorflow"}
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        **kwargs,
    )


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "people.jpg"
    rng = np.random.default_rng(0)
    cv2.imwrite(str(path), rng.integers(0, 256, (60, 80, 3), np.uint8))
    return path


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    writer = cv2.VideoWriter(
        str(path), cv2.VideoWriter_fourcc(*"mp4v"), 5, (64, 48)
    )
    for i in range(3):
        writer.write(np.full((48, 64, 3), 40 * i, np.uint8))
    writer.release()
    return path


def test_list_describe_help_import_no_keras():
    done = _run("-c", NO_KERAS)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "rsn_18" in done.stdout and '"family": "hrnet"' in done.stdout


def test_predict_prints_no_tensorflow_log_lines(image, tmp_path):
    out = tmp_path / "r.json"
    done = _run(
        "-m", "kerapose", "predict", "test_hrnet", str(image), "--json",
        str(out), *SMALL,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr == ""
    assert out.is_file()


def test_native_logs_are_kept_back_and_replayed_on_error(capfd):
    with quiet_native_logs():
        os.write(2, b"native start-up line\n")
        print("our message", file=sys.stderr)
    err = capfd.readouterr().err
    assert "our message" in err and "native" not in err
    with pytest.raises(KeyError), quiet_native_logs():
        os.write(2, b"native line before a crash\n")
        raise KeyError("boom")
    assert "native line before a crash" in capfd.readouterr().err
    with quiet_native_logs(enabled=False):  # --verbose
        os.write(2, b"verbose line\n")
    assert "verbose line" in capfd.readouterr().err


def test_presets_read_as_data_equal_the_imported_ones():
    for path in sorted((ROOT / "kerapose" / "models").glob("*/*_presets.py")):
        module = f"kerapose.models.{path.parent.name}.{path.stem}"
        imported = importlib.import_module(module).presets
        assert runpy.run_path(str(path))["presets"] == imported, path
    # rsn_presets writes out the codec's sigmas, to stay free of Keras.
    from kerapose.codecs.multi_sigma_heatmap import RSN_SIGMAS
    from kerapose.models.rsn import rsn_presets

    assert rsn_presets.RSN_SIGMAS == RSN_SIGMAS


def test_list_matches_substrings_and_globs(capsys):
    assert main(["list", "rsn"]) == 0
    names = capsys.readouterr().out.split()
    assert "rsn_18" in names and "test_rsn" in names
    assert "hrnet_w32" not in names
    assert main(["list", "hrnet_w*"]) == 0
    names = capsys.readouterr().out.split()
    assert names == ["hrnet_w18_small", "hrnet_w32", "hrnet_w48"]
    assert main(["list", "nothing_like_it"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "No zoo model matching" in captured.err


def test_list_pretrained_lists_only_loadable_weights(capsys):
    from kerapose.zoo import kerapose_home

    # Tags with a download URL (the MMPose checkpoints) are listed; an
    # official-only tag only once its converted file is in the home.
    assert main(["list", "--pretrained", "hrnet_w32"]) == 0
    listed = capsys.readouterr().out.split()
    assert "hrnet_w32.coco_256x192" in listed
    assert main(["list", "--pretrained", "omnipose"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert str(kerapose_home() / "weights") in captured.err
    weights = kerapose_home() / "weights"
    weights.mkdir(parents=True, exist_ok=True)
    (weights / "omnipose_coco_256x192.weights.h5").write_bytes(b"x")
    assert main(["list", "--pretrained", "omnipose"]) == 0
    assert "omnipose.coco_256x192" in capsys.readouterr().out.split()


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--out", "x.gif", "unknown file type"),
        ("--out", "a_file/x.jpg", "is a file, not a folder"),
        ("--out", "clip.mp4", "unknown file type"),
        ("--json", "r.txt", "must end in .json"),
        ("--out", "people.jpg", "would overwrite the input"),
    ],
)
def test_bad_output_paths_fail_before_the_model_loads(
    image, tmp_path, capsys, option, value, message
):
    (tmp_path / "a_file").write_text("")
    source = tmp_path / "people.jpg"
    source.write_bytes(image.read_bytes())
    # Missing weights would fail the load: the path check comes first.
    args = ["predict", "test_hrnet", str(source), option, str(tmp_path / value)]
    args += ["--weights", str(tmp_path / "missing.weights.h5")]
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_video_into_a_new_folder_with_progress(video, tmp_path, capsys):
    out = tmp_path / "new_dir" / "drawn.avi"
    args = ["predict", "test_hrnet", str(video), "--out", str(out)]
    assert main([*args, "--input-size", "64", "64"]) == 0
    captured = capsys.readouterr()
    assert "3/3 frames" in captured.err  # the progress line
    assert f"Wrote {out}" in captured.out
    capture = cv2.VideoCapture(str(out))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 3


def test_missing_or_unreadable_sources_exit_2(tmp_path, capsys):
    for name in ("missing.mp4", "missing.jpg"):
        assert main(["predict", "test_hrnet", str(tmp_path / name)]) == 2
        assert "file not found" in capsys.readouterr().err
    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video")
    assert main(["predict", "test_hrnet", str(fake)]) == 2
    assert "Cannot open video" in capsys.readouterr().err


def test_predict_train_top_down_weights_into_new_folders(
    image, tmp_path, capsys
):
    """A Keras `save_weights` file with its own keypoints and input size;
    outputs in folders that do not exist yet."""
    from kerapose import zoo
    from kerapose.inference import predict_image

    model = zoo.load(
        "test_hrnet", num_keypoints=5, input_shape=(64, 32, 3), compile=False
    )
    rng = np.random.default_rng(1)
    for v in model.weights:  # peaked heatmaps, so keypoints are not ties
        if v.path.endswith("kernel"):
            std = np.sqrt(2.0 / np.prod(v.shape[:-1]))
            v.assign(rng.normal(0.0, std, v.shape).astype("float32"))
    weights = tmp_path / "best.weights.h5"
    model.save_weights(weights)
    drawn = tmp_path / "new_dir" / "deeper" / "x.jpg"
    results = tmp_path / "other_new_dir" / "r.json"
    args = ["predict", "test_hrnet", str(image), "--weights", str(weights)]
    args += ["--num-keypoints", "5", "--input-size", "64", "32"]
    args += ["--out", str(drawn), "--json", str(results), "--quiet"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert f"Wrote {drawn}" in printed and f"Wrote {results}" in printed
    assert cv2.imread(str(drawn)).shape == (60, 80, 3)
    (person,) = json.loads(results.read_text())
    model.run_eagerly = True  # no second trace of predict: faster here
    expected = predict_image(model, str(image)).keypoints[0]
    got = np.reshape(person["keypoints"], (5, 3))[:, :2]
    np.testing.assert_allclose(got, expected, atol=1e-3)


def _options(parser):
    sub = next(
        a for a in parser._actions if isinstance(a, argparse._SubParsersAction)
    )
    for command, subparser in sub.choices.items():
        for action in subparser._actions:
            if not isinstance(action, argparse._HelpAction):
                yield command, action


def test_every_option_has_help():
    parser = build_parser()
    missing = [
        f"{command} {action.dest}"
        for command, action in _options(parser)
        if not action.help
    ]
    assert not missing
    predict = parser._subparsers._group_actions[0].choices["predict"]
    assert "whole image" in predict.format_help()


def test_convert_checks_its_files_before_the_model_loads(tmp_path, capsys):
    checkpoint = tmp_path / "model.pth"
    checkpoint.write_bytes(b"")
    args = ["convert", "test_hrnet", str(checkpoint), "-o"]
    assert main([*args, str(tmp_path / "w.h5")]) == 2
    assert "must end in .weights.h5" in capsys.readouterr().err
    missing = ["convert", "test_hrnet", str(tmp_path / "missing.pth")]
    assert main([*missing, "-o", str(tmp_path / "w.weights.h5")]) == 2
    assert "No checkpoint file" in capsys.readouterr().err


def test_bad_boxes_fail_before_the_model_loads(image, tmp_path, capsys):
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps([[500, 500, 10, 10]]))  # off the 80x60 image
    args = ["predict", "test_hrnet", str(image), "--boxes", str(boxes)]
    args += ["--weights", str(tmp_path / "missing.weights.h5")]
    assert main(args) == 2
    assert "wholly outside" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["test_yolo_pose", "test_higherhrnet"])
def test_predict_finds_people_without_boxes(name, image, tmp_path, capsys):
    """Single-stage and bottom-up models need no boxes; the JSON loads."""
    out, results = tmp_path / "drawn.jpg", tmp_path / "people.json"
    args = ["predict", name, str(image), "--quiet"]
    assert main([*args, "--out", str(out), "--json", str(results)]) == 0
    assert cv2.imread(str(out)).shape == (60, 80, 3)
    people = json.loads(results.read_text())
    assert isinstance(people, list)
    assert all(len(p["keypoints"]) == 17 * 3 for p in people)
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps([[1, 1, 10, 10]]))
    assert main([*args, "--boxes", str(boxes)]) == 2
    assert "takes no boxes" in capsys.readouterr().err
