"""`kerapose eval`: COCO AP from the command line, paths checked first."""

import json

from kerapose.cli import main
from tests.conftest import shared_path


def test_top_down_eval_writes_metrics_and_results(tmp_path, capsys):
    root = shared_path("data", "coco_sample")
    metrics, results = tmp_path / "m" / "metrics.json", tmp_path / "r.json"
    args = ["eval", "test_hrnet", str(root / "test_coco.json"), str(root)]
    args += ["--metrics", str(metrics), "--results", str(results), "--quiet"]
    assert main(args) == 0
    values = json.loads(metrics.read_text())
    assert 0.0 <= values["AP"] <= 1.0 and "AR" in values
    found = json.loads(results.read_text())
    images = {
        i["id"]
        for i in json.loads((root / "test_coco.json").read_text())["images"]
    }
    assert found and {r["image_id"] for r in found} <= images
    assert all(len(r["keypoints"]) == 17 * 3 for r in found)
    assert f"Wrote {metrics}" in capsys.readouterr().out


def test_eval_checks_paths_before_the_model_loads(tmp_path, capsys):
    root = shared_path("data", "coco_sample")
    ann = str(root / "test_coco.json")
    missing = str(tmp_path / "missing.weights.h5")
    cases = [
        ([str(tmp_path / "no.json"), str(root)], "Annotation file not found"),
        ([ann, str(tmp_path / "nodir")], "Image folder not found"),
        ([ann, str(root), "--metrics", str(tmp_path / "m.txt")], ".json"),
        ([ann, str(root), "--detections", missing], "Detections file not"),
    ]
    for extra, message in cases:
        args = ["eval", "test_hrnet", *extra, "--weights", missing]
        assert main(args) == 2
        assert message in capsys.readouterr().err
