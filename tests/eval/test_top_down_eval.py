"""The top-down evaluation path, end to end on real COCO images."""

import numpy as np
import pytest

from kerapose import zoo
from kerapose.codecs import MSRAHeatmap
from kerapose.data.coco import load_coco_instances
from kerapose.data.keypoint_specs import COCO_17
from kerapose.eval.top_down import evaluate_top_down
from kerapose.eval.top_down import score_predictions
from kerapose.inference.affine import apply_matrix
from kerapose.inference.affine import crop_matrix
from kerapose.inference.top_down import keypoints_to_image
from kerapose.testing.test_case import to_numpy
from tests.conftest import shared_path


def _oracle_predictions(ann_file, image_dir, codec, noise_px=0.0, seed=0):
    """Ground truth pushed through crop -> encode -> decode -> image."""
    inst, _ = load_coco_instances(
        ann_file, image_dir, mode="eval", input_size=codec.input_size
    )
    rng = np.random.default_rng(seed)
    heatmaps = []
    for c, s, k, v in zip(
        inst["center"], inst["scale"], inst["keypoints"], inst["visibility"]
    ):
        in_crop = apply_matrix(k, crop_matrix(c, s, 0.0, codec.input_size))
        in_crop = in_crop + rng.normal(scale=noise_px, size=in_crop.shape)
        heatmaps.append(codec.encode(in_crop, v)[0])
    keypoints, scores = codec.decode(np.stack(heatmaps))
    keypoints = keypoints_to_image(
        to_numpy(keypoints), inst["center"], inst["scale"], codec.input_size
    )
    return inst, {
        "keypoints": np.concatenate(
            [keypoints, to_numpy(scores)[..., None]], -1
        ),
        "image_id": inst["image_id"],
        "score": inst["score"],
        "area": np.prod(inst["scale"] * 200.0, axis=1),
    }


def test_ground_truth_through_the_geometry_scores_near_one():
    ann = shared_path("data", "coco_sample", "test_coco.json")
    codec = MSRAHeatmap(input_size=(256, 192), heatmap_size=(64, 48))
    inst, preds = _oracle_predictions(ann, ann.parent, codec)
    visible = inst["visibility"] > 0
    error = np.linalg.norm(
        preds["keypoints"][..., :2] - inst["keypoints"], axis=-1
    )
    # Heatmap quantisation: half a heatmap pixel is 2 crop pixels, i.e. a
    # few image pixels for these people.
    assert np.median(error[visible]) < 3.0
    metrics = score_predictions(preds, ann, COCO_17)
    assert metrics["AP"] > 0.9
    _, noisy = _oracle_predictions(ann, ann.parent, codec, noise_px=6.0)
    assert score_predictions(noisy, ann, COCO_17)["AP"] < metrics["AP"]


def test_evaluate_top_down_runs_with_detector_boxes(tmp_path, capsys):
    data = shared_path("data", "coco_sample")
    model = zoo.load("test_hrnet")
    results = tmp_path / "results.json"
    metrics = evaluate_top_down(
        model,
        data / "test_coco.json",
        data,
        det_file=data / "test_coco_det_AP_H_56.json",
        det_score_threshold=0.5,
        flip_test=True,
        results_file=results,
    )
    assert set(metrics) >= {"AP", "AP50", "AR", "num_predictions"}
    assert 0 < metrics["num_predictions"] <= 118
    assert results.is_file()
    # A progress bar by default (verbose=1), nothing of pycocotools'.
    out = capsys.readouterr().out
    assert "batch" in out and "Average Precision" not in out


def test_empty_dataset_is_a_clear_error(tmp_path):
    import json

    ann = tmp_path / "empty.json"
    ann.write_text(
        json.dumps(
            {
                "images": [],
                "annotations": [],
                "categories": [
                    {
                        "id": 1,
                        "name": "person",
                        "keypoints": COCO_17.keypoint_names,
                    }
                ],
            }
        )
    )
    with pytest.raises(ValueError, match="no person boxes|empty"):
        evaluate_top_down(zoo.load("test_hrnet"), ann, tmp_path)


def test_predict_dataset_decodes_with_the_codec_it_is_given(tmp_path, capsys):
    from kerapose.data.pipelines import build_top_down_dataset
    from kerapose.data.synthetic import write_synthetic_coco
    from kerapose.eval.top_down import predict_dataset

    ann = write_synthetic_coco(tmp_path, num_images=3, seed=1, split="val")
    model = zoo.load("test_hrnet")
    dataset = build_top_down_dataset(
        ann,
        tmp_path / "images",
        model.codec,
        training=False,
        include_meta=True,
        verbose=False,
    )
    dark = MSRAHeatmap.from_config(
        {**model.codec.get_config(), "refinement": "dark"}
    )
    capsys.readouterr()
    default = predict_dataset(model, dataset)
    # The progress bar counts batches; verbose=0 silences it.
    assert "1/1" in capsys.readouterr().out
    again = predict_dataset(model, dataset, codec=model.codec, verbose=0)
    refined = predict_dataset(model, dataset, codec=dark, verbose=0)
    assert capsys.readouterr().out == ""
    np.testing.assert_allclose(default["keypoints"], again["keypoints"])
    moved = np.abs(default["keypoints"] - refined["keypoints"])[..., :2]
    assert moved.max() > 1e-3


def test_callback_passes_evaluation_options_through():
    from kerapose.eval.top_down import COCOEvalCallback

    ann = shared_path("data", "coco_sample", "test_coco.json")
    callback = COCOEvalCallback(ann, ann.parent, use_area="sometimes")
    callback.set_model(zoo.load("test_hrnet"))
    # Checked before the data or the model is touched.
    with pytest.raises(ValueError, match="use_area.*'sometimes'"):
        callback.on_epoch_end(0, {})
