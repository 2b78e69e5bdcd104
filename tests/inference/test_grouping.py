"""Associative Embedding grouping on hand-made heatmaps and tags."""

import keras
import numpy as np
import pytest

from kerapose.codecs import AssociativeEmbeddingDecoder
from kerapose.inference import grouping
from kerapose.inference.bottom_up import decode_bottom_up_outputs
from kerapose.inference.bottom_up import input_transform

K = 17


def render(joints, person_tags, size, sigma=1.5, values=None):
    """Heatmaps (h, w, K) and tag maps (h, w, K) of people.

    joints: (P, K, 2) float (x, y) map pixels, NaN for a missing joint;
    each pixel of a tag map holds the tag of the person whose Gaussian is
    highest there.
    """
    h, w = size
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    heatmaps = np.zeros((h, w, K), np.float32)
    tags = np.zeros((h, w, K), np.float32)
    for p, (person, tag) in enumerate(zip(joints, person_tags)):
        for k, (x, y) in enumerate(person):
            if np.isnan(x):
                continue
            peak = 1.0 if values is None else values[p][k]
            g = peak * np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2))
            higher = g > heatmaps[..., k]
            heatmaps[..., k] = np.where(higher, g, heatmaps[..., k])
            tags[..., k] = np.where(higher & (g > 1e-3), tag, tags[..., k])
    return heatmaps, tags


def decode(heatmaps, tags, max_people=30, **kwargs):
    decoder = AssociativeEmbeddingDecoder(
        num_keypoints=K, heatmap_outputs=[0], max_people=max_people
    )
    c = decoder.top_k(heatmaps[None], tags[None, ..., None])
    return grouping.group_people(
        _np(c["values"])[0],
        _np(c["tags"])[0],
        _np(c["locations"])[0],
        heatmaps,
        tags[..., None],
        max_people=max_people,
        **kwargs,
    )


def _np(x):
    return keras.ops.convert_to_numpy(x)


def skeleton(x0, y0, rng):
    """A person's K integer joints in a 12 x 20 box at (x0, y0)."""
    return np.stack(
        [x0 + rng.integers(0, 12, K), y0 + rng.integers(0, 20, K)], -1
    ).astype(np.float32)


def match_people(found, truth):
    """Index of the true person of each found person (by joint 0)."""
    d = np.abs(found[:, None, :, :2] - 0.5 - truth[None]).max(axis=(2, 3))
    return d.argmin(axis=1), d.min(axis=1)


def test_three_people_recovered_exactly():
    rng = np.random.default_rng(0)
    truth = np.stack([skeleton(x, 10, rng) for x in (4, 24, 44)])
    heatmaps, tags = render(truth, [1.0, 4.0, 7.0], (40, 64))
    people, scores = decode(heatmaps, tags)
    assert people.shape == (3, K, 3)
    index, err = match_people(people, truth)
    assert sorted(index) == [0, 1, 2]
    # Adjusted joints: pixel + 0.5 +- 0.25.
    assert err.max() <= 0.25 + 1e-6
    np.testing.assert_allclose(people[..., 2], 1.0, atol=1e-5)
    np.testing.assert_allclose(scores, 1.0, atol=1e-5)


def test_grouping_follows_tags_not_positions():
    # Two people whose joints interleave: even joints of person A lie in
    # B's region and the other way round; only the tags tell them apart.
    rng = np.random.default_rng(1)
    left, right = skeleton(2, 5, rng), skeleton(40, 5, rng)
    a = np.where((np.arange(K) % 2 == 0)[:, None], right, left)
    b = np.where((np.arange(K) % 2 == 0)[:, None], left, right)
    truth = np.stack([a, b])
    heatmaps, tags = render(truth, [2.0, 5.0], (32, 56))
    people, _ = decode(heatmaps, tags)
    index, err = match_people(people, truth)
    assert sorted(index) == [0, 1]
    assert err.max() <= 0.25 + 1e-6


def test_no_people_gives_empty_results_without_nan():
    heatmaps = np.zeros((32, 48, K), np.float32)
    people, scores = decode(heatmaps, np.zeros_like(heatmaps))
    assert people.shape == (0, K, 3) and scores.shape == (0,)
    # The same through the whole decoding, with the flip test.
    maps = np.zeros((2, 8, 12, 2 * K), np.float32)
    decoder = AssociativeEmbeddingDecoder(
        num_keypoints=K,
        heatmap_outputs=[0],
        flip_indices=list(range(K)),
    )
    result = decode_bottom_up_outputs(
        [[maps]], (30, 45), decoder, input_size=32, flip=True
    )
    assert len(result) == 0
    assert result.keypoints.shape == (0, K, 2)
    assert result.boxes.shape == (0, 4)


def test_one_visible_joint():
    truth = np.full((1, K, 2), np.nan, np.float32)
    truth[0, 9] = (7, 5)
    heatmaps, tags = render(truth, [3.0], (16, 16))
    people, scores = decode(heatmaps, tags)
    assert people.shape == (1, K, 3)
    assert np.all(np.isfinite(people)) and np.all(np.isfinite(scores))
    assert (
        abs(people[0, 9, 0] - 7.5) <= 0.25
        and abs(people[0, 9, 1] - 5.5) <= 0.25
    )
    # The other joints have no heatmap: not found, not refined.
    others = np.delete(people[0], 9, axis=0)
    np.testing.assert_array_equal(others, 0.0)
    np.testing.assert_allclose(scores, 1.0 / K, rtol=1e-5)


def test_all_tags_equal_keeps_every_candidate_once():
    rng = np.random.default_rng(2)
    truth = np.stack([skeleton(x, 4, rng) for x in (2, 22, 42)])
    heatmaps, _ = render(truth, [0.0, 0.0, 0.0], (30, 60))
    people, scores = decode(heatmaps, np.zeros_like(heatmaps))
    # Nothing tells the people apart: three people, each candidate of
    # every joint used exactly once, nothing merged or lost.
    assert people.shape == (3, K, 3)
    assert np.all(np.isfinite(people)) and np.all(np.isfinite(scores))
    for k in range(K):
        got = np.sort(people[:, k, 0] - 0.5)
        assert np.abs(got - np.sort(truth[:, k, 0])).max() <= 0.25 + 1e-6


@pytest.mark.parametrize("image_shape", [(60, 900), (900, 60)])
def test_extreme_aspect_ratios_map_back_to_image_pixels(image_shape):
    rng = np.random.default_rng(3)
    h, w = image_shape
    # Two people in image pixels, far apart along the long side.
    long_side = max(h, w)
    truth = []
    for start in (0.2, 0.7):
        along = start * long_side + rng.uniform(0, 0.1 * long_side, K)
        across = rng.uniform(0.2, 0.8, K) * min(h, w)
        xy = (
            np.stack([along, across], -1)
            if w > h
            else np.stack([across, along], -1)
        )
        truth.append(xy)
    truth = np.stack(truth).astype(np.float32)
    plan = input_transform(image_shape, input_size=64)
    assert min(plan.size) == 64 and max(plan.size) % 64 == 0
    # A perfect stride-4 network: Gaussians at the joints' input position.
    map_size = (plan.size[0] // 4, plan.size[1] // 4)
    in_map = (
        np.concatenate([truth, np.ones(truth.shape[:2] + (1,))], -1)
        @ plan.matrix(map_size).T
    )
    heatmaps, tags = render(in_map - 0.5, [1.0, 3.0], map_size, sigma=1.0)
    maps = np.concatenate([heatmaps, tags], -1)[None]
    decoder = AssociativeEmbeddingDecoder(num_keypoints=K, heatmap_outputs=[0])
    result = decode_bottom_up_outputs(
        [[maps]],
        image_shape,
        decoder,
        flip=False,
        input_size=64,
        project_to_input=False,
    )
    assert len(result) == 2
    stride = max(h, w) / max(plan.size) * 4  # image pixels per map pixel
    for person in result.keypoints:
        err = np.abs(person[None] - truth).max(axis=(1, 2)).min()
        assert err <= 0.75 * stride
    assert np.all(result.boxes[:, 2:] >= 0)


def test_fifty_people():
    rng = np.random.default_rng(4)
    starts = [(12 * (i % 10), 22 * (i // 10)) for i in range(50)]
    truth = np.stack([skeleton(x, y, rng) for x, y in starts])
    tags = 2.0 * np.arange(50)
    # Spread the people so Gaussians of one joint do not touch.
    truth = truth * [2, 1]
    heatmaps, tag_maps = render(truth, tags, (112, 240), sigma=1.0)
    people, scores = decode(heatmaps, tag_maps, max_people=64)
    assert people.shape == (50, K, 3)
    index, err = match_people(people, truth)
    assert sorted(index) == list(range(50))
    assert err.max() <= 0.25 + 1e-6


def test_refine_fills_a_weak_joint_from_the_mean_tag():
    rng = np.random.default_rng(5)
    truth = np.stack([skeleton(2, 2, rng), skeleton(30, 2, rng)])
    values = np.ones((2, K), np.float32)
    values[0, 16] = 0.05  # below the detection threshold
    heatmaps, tags = render(truth, [1.0, 5.0], (28, 48), values=values)
    unrefined, _ = decode(heatmaps, tags, use_refine=False)
    people, scores = decode(heatmaps, tags)
    first = np.argmin(people[:, 0, 0])
    assert unrefined[first, 16, 2] == 0.0
    # Refined from person 0's tag, not person 1's stronger joint 16.
    assert abs(people[first, 16, 0] - 0.5 - truth[0, 16, 0]) <= 0.25
    assert abs(people[first, 16, 1] - 0.5 - truth[0, 16, 1]) <= 0.25
    np.testing.assert_allclose(people[first, 16, 2], 0.05, rtol=1e-4)
    # The person score is taken before refinement.
    np.testing.assert_allclose(scores[first], 16 / K, rtol=1e-5)


def test_detection_value_breaks_ties_between_close_tags():
    values = np.zeros((K, 2), np.float32)
    tags = np.zeros((K, 2, 1), np.float32)
    locations = np.zeros((K, 2, 2), np.int32)
    values[0, 0] = 0.8  # joint 0 starts one person, tag 0
    values[1] = (0.4, 0.9)  # two candidates of joint 1, both close
    tags[1, :, 0] = (0.1, 0.3)
    locations[1] = ((1, 1), (5, 5))
    people = grouping.match_by_tag(values, tags, locations)
    assert len(people) == 2
    # The stronger candidate joins the person despite its farther tag.
    np.testing.assert_allclose(people[0, 1, :3], (5, 5, 0.9))
    np.testing.assert_allclose(people[1, 1, :3], (1, 1, 0.4))
    # Without detection values the closer tag wins.
    people = grouping.match_by_tag(
        values, tags, locations, use_detection_val=False
    )
    np.testing.assert_allclose(people[0, 1, :3], (1, 1, 0.4))


def test_tag_threshold_starts_new_people():
    values = np.zeros((K, 1), np.float32)
    values[[0, 1]] = 0.9
    tags = np.zeros((K, 1, 1), np.float32)
    tags[1] = 1.2  # farther than the threshold 1 from person 0
    people = grouping.match_by_tag(values, tags, np.zeros((K, 1, 2)))
    assert len(people) == 2
    tags[1] = 0.8
    people = grouping.match_by_tag(values, tags, np.zeros((K, 1, 2)))
    assert len(people) == 1


def test_adjust_steps_towards_the_higher_neighbour_ties_step_down():
    heatmaps = np.zeros((5, 5, K), np.float32)
    heatmaps[2, 2, 0] = 1.0
    heatmaps[2, 3, 0] = 0.5  # right neighbour higher
    people = np.zeros((1, K, 3), np.float32)
    people[0, 0] = (2, 2, 1.0)
    adjusted = grouping.adjust(people, heatmaps)
    # x: 2 + 0.5 + 0.25; y: a tie (both 0) steps down, as official.
    np.testing.assert_allclose(adjusted[0, 0, :2], (2.75, 2.25))
    np.testing.assert_array_equal(adjusted[0, 1:], 0.0)


def test_default_joint_order():
    assert grouping.default_joint_order(17)[7:9] == (11, 12)
    assert sorted(grouping.default_joint_order(14)) == list(range(14))
    assert grouping.default_joint_order(10) == tuple(range(10))


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="values"):
        grouping.match_by_tag(np.zeros(3), np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="locations"):
        grouping.match_by_tag(
            np.zeros((K, 2)), np.zeros((K, 2)), np.zeros((K, 2))
        )
    with pytest.raises(ValueError, match="finite"):
        grouping.match_by_tag(
            np.full((K, 2), np.nan), np.zeros((K, 2)), np.zeros((K, 2, 2))
        )
    with pytest.raises(ValueError, match="joint_order"):
        grouping.match_by_tag(
            np.zeros((K, 2)),
            np.zeros((K, 2)),
            np.zeros((K, 2, 2)),
            joint_order=[0] * K,
        )
    with pytest.raises(ValueError, match="tag_distance"):
        grouping.match_by_tag(
            np.zeros((K, 2)),
            np.zeros((K, 2)),
            np.zeros((K, 2, 2)),
            tag_distance="l1",
        )


def brute_force_refine(people, heatmaps, tag_maps):
    """The official refine, one person and joint at a time."""
    people = people.copy()
    for person in people:
        found = person[:, 2] > 0
        xy = person[found, :2].astype(np.int64)
        mean = tag_maps[xy[:, 1], xy[:, 0], np.flatnonzero(found)].mean(0)
        for j in np.flatnonzero(~found):
            hm = heatmaps[..., j]
            dist = np.sqrt(((tag_maps[:, :, j] - mean) ** 2).sum(-1))
            y, x = np.unravel_index(np.argmax(hm - np.round(dist)), hm.shape)
            if hm[y, x] > 0:
                dx = (
                    0.25
                    if hm[y, min(x + 1, hm.shape[1] - 1)] > hm[y, max(x - 1, 0)]
                    else -0.25
                )
                dy = (
                    0.25
                    if hm[min(y + 1, hm.shape[0] - 1), x] > hm[max(y - 1, 0), x]
                    else -0.25
                )
                person[j] = (x + 0.5 + dx, y + 0.5 + dy, hm[y, x])
    return people


def test_refine_equals_the_official_search_on_large_maps():
    # Maps larger than the bright-pixel shortcut, with people whose tag is
    # and is not among the bright pixels (both branches of the shortcut).
    rng = np.random.default_rng(6)
    h, w = 96, 112
    heatmaps = rng.uniform(-0.2, 0.3, (h, w, K)).astype(np.float32)
    tag_maps = rng.normal(0, 2, (h, w, K, 2)).astype(np.float32)
    people = np.zeros((24, K, 3), np.float32)
    for p in range(24):
        joints = rng.choice(K, size=rng.integers(1, 6), replace=False)
        people[p, joints, 0] = rng.integers(0, w, len(joints))
        people[p, joints, 1] = rng.integers(0, h, len(joints))
        people[p, joints, 2] = 0.5
    got = grouping.refine(people, heatmaps, tag_maps)
    want = brute_force_refine(people, heatmaps, tag_maps)
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert (got[..., 2] > 0).sum() > (people[..., 2] > 0).sum()
