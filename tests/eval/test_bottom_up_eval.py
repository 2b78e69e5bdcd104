"""Bottom-up decoding, grouping and COCO evaluation on real COCO images.

The network is replaced by the maps a perfect bottom-up network would
output for the ground truth of `../shared/data/coco_sample`: Gaussian
heatmaps (sigma 2, at 1/4 and 1/2 of the input) and one tag value per
person, mirrored for the flip test. They go through the whole official
test (aggregation, projection to the input, NMS, top-k, grouping, adjust,
refine, projection to the image) and pycocotools.
"""

import json

import keras
import numpy as np
import pytest

from kerapose.codecs import AssociativeEmbeddingDecoder
from kerapose.data.coco_images import load_coco_images
from kerapose.eval.bottom_up import evaluate_bottom_up
from kerapose.eval.bottom_up import score_bottom_up_predictions
from kerapose.inference.bottom_up import decode_bottom_up_outputs
from kerapose.inference.bottom_up import input_transform
from tests.conftest import shared_path

SIGMA = 2.0


@pytest.fixture(scope="module")
def sample():
    folder = shared_path("data", "coco_sample")
    ann_file = folder / "test_coco.json"
    records, report = load_coco_images(ann_file, folder)
    return ann_file, folder, records, report.spec


def gaussians(points, tags, size, stride):
    """Heatmaps (h, w, K) and tag maps (h, w, K) at one output stride.

    points: (P, K, 3) input pixels + visibility. A map pixel q covers
    input pixels [q * stride, (q + 1) * stride), so a joint at input x
    peaks at x / stride - 0.5.
    """
    h, w = size[0] // stride, size[1] // stride
    k = points.shape[1]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    heatmaps = np.zeros((h, w, k), np.float32)
    tag_maps = np.zeros((h, w, k), np.float32)
    for person, tag in zip(points, tags):
        for j, (x, y, v) in enumerate(person):
            if v <= 0:
                continue
            mx, my = x / stride - 0.5, y / stride - 0.5
            g = np.exp(-((xs - mx) ** 2 + (ys - my) ** 2) / (2 * SIGMA**2))
            higher = g > heatmaps[..., j]
            heatmaps[..., j] = np.maximum(heatmaps[..., j], g)
            tag_maps[..., j] = np.where(
                higher & (g > 0.01), tag, tag_maps[..., j]
            )
    return heatmaps, tag_maps


def perfect_outputs(keypoints, image_shape, flip_indices, tags):
    """HigherHRNet-style outputs for [image, mirrored image]."""
    plan = input_transform(image_shape, input_size=512)
    pts = keypoints.copy()
    pts[..., :2] = (
        np.concatenate([pts[..., :2], np.ones(pts.shape[:-1] + (1,))], -1)
        @ plan.matrix().T
    )
    hm4, tag4 = gaussians(pts, tags, plan.size, 4)
    hm2, _ = gaussians(pts, tags, plan.size, 2)
    # A little noise, as any network has: no two pixels of a peak tie
    # exactly (a tie is two candidates for the NMS, officially too).
    rng = np.random.default_rng(0)
    hm4 += rng.uniform(0, 1e-3, hm4.shape).astype(np.float32)
    hm2 += rng.uniform(0, 1e-3, hm2.shape).astype(np.float32)
    out0 = np.concatenate([hm4, tag4], -1)
    flip = list(flip_indices)
    channels = flip + [len(flip) + i for i in flip]

    def mirror(out, chans):
        return out[:, ::-1][..., chans]

    return [
        np.stack([out0, mirror(out0, channels)]),
        np.stack([hm2, mirror(hm2, flip)]),
    ]


def predict_from_ground_truth(sample, same_tags=False):
    ann_file, _, records, spec = sample
    decoder = AssociativeEmbeddingDecoder(
        num_keypoints=spec.num_keypoints,
        heatmap_outputs=[0, 1],
        tag_outputs=[0],
        flip_indices=spec.flip_indices,
    )
    keypoints, image_ids, scores = [], [], []
    for i, image_id in enumerate(records["image_id"]):
        people = records["valid"][i] & (records["num_keypoints"][i] > 0)
        gt = records["keypoints"][i][people]
        tags = np.zeros(len(gt)) if same_tags else 3.0 * np.arange(len(gt))
        shape = tuple(records["image_size"][i])
        outputs = perfect_outputs(gt, shape, spec.flip_indices, tags)
        result = decode_bottom_up_outputs(
            [outputs], shape, decoder, flip=True, input_size=512, spec=spec
        )
        assert np.all(np.isfinite(result.keypoints))
        keypoints.append(
            np.concatenate(
                [result.keypoints, result.keypoint_scores[..., None]], -1
            )
        )
        image_ids += [image_id] * len(result)
        scores.append(result.scores)
    return {
        "keypoints": np.concatenate(keypoints),
        "image_id": np.asarray(image_ids),
        "score": np.concatenate(scores),
    }


def test_ground_truth_maps_score_full_ap(sample, tmp_path):
    ann_file, _, records, spec = sample
    preds = predict_from_ground_truth(sample)
    # One person per annotated person with keypoints: 12 in the sample.
    labelled = (records["valid"] & (records["num_keypoints"] > 0)).sum()
    assert len(preds["keypoints"]) == labelled == 12
    results = tmp_path / "results.json"
    metrics = score_bottom_up_predictions(
        preds, ann_file, spec, results_file=results
    )
    assert metrics["AP"] >= 0.95, metrics
    assert metrics["num_predictions"] == 12
    written = json.loads(results.read_text())
    assert len(written) == 12 and len(written[0]["keypoints"]) == 51


def test_without_distinct_tags_people_are_mixed_and_ap_drops(sample):
    # The same maps with every person's tag equal: nothing tells the
    # people of an image apart, and the AP test above would fail.
    ann_file, _, _, spec = sample
    preds = predict_from_ground_truth(sample, same_tags=True)
    metrics = score_bottom_up_predictions(preds, ann_file, spec)
    assert metrics["AP"] < 0.9, metrics


def tiny_bottom_up_model(num_keypoints=17):
    """A two-output stride-4/2 network with the bottom-up attributes."""
    # Small weights, as official heads start: some candidates, not noise
    # everywhere.
    init = keras.initializers.RandomNormal(stddev=0.05, seed=0)
    images = keras.Input((None, None, 3))
    x = keras.layers.AveragePooling2D(2)(images)
    out1 = keras.layers.Conv2D(num_keypoints, 1, kernel_initializer=init)(x)
    x = keras.layers.AveragePooling2D(2)(x)
    out0 = keras.layers.Conv2D(2 * num_keypoints, 1, kernel_initializer=init)(x)
    model = keras.Model(images, [out0, out1])
    model.num_keypoints = num_keypoints
    model.output_strides = [4, 2]
    model.tag_outputs = [True, False]
    model.heatmap_outputs_for_test = [True, True]
    model.tag_dim = 1
    return model


def test_evaluate_bottom_up_runs_the_network_on_every_image(sample, tmp_path):
    ann_file, folder, _, _ = sample
    model = tiny_bottom_up_model()
    results = tmp_path / "results.json"
    metrics = evaluate_bottom_up(
        model, ann_file, folder, results_file=results, verbose=0
    )
    assert {"AP", "AP50", "AR", "num_predictions"} <= set(metrics)
    assert 0.0 <= metrics["AP"] <= 1.0
    written = json.loads(results.read_text())
    assert len(written) == metrics["num_predictions"]
    assert {r["image_id"] for r in written} <= {785, 40083, 196141, 197388}


def test_score_rejects_incomplete_predictions(sample):
    ann_file, _, _, spec = sample
    with pytest.raises(ValueError, match="score"):
        score_bottom_up_predictions(
            {"keypoints": np.zeros((1, 17, 3)), "image_id": [785]},
            ann_file,
            spec,
        )


def test_predict_image_with_the_tiny_zoo_higherhrnet(sample):
    import kerapose
    from kerapose.inference.bottom_up import predict_image_bottom_up

    _, folder, _, _ = sample
    # One network on JAX compiles for seconds: one model, one image.
    model = kerapose.zoo.load("test_higherhrnet")
    image = folder / "000000000785.jpg"
    result = predict_image_bottom_up(model, image, flip=True)
    n = len(result)
    assert result.keypoints.shape == (n, 17, 2)
    assert result.scores.shape == (n,) and result.boxes.shape == (n, 4)
    assert np.all(np.isfinite(result.keypoints))
    assert result.image_shape == (425, 640)
