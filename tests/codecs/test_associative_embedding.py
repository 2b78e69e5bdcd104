"""AssociativeEmbeddingDecoder: aggregation, NMS + top-k, jit, config."""

import keras
import numpy as np
import pytest

from kerapose.codecs import AssociativeEmbeddingDecoder

K = 3
FLIP = [0, 2, 1]


def resize_reference(x, size):
    """Bilinear, half-pixel centres, edge clamp (PyTorch's default)."""
    h, w = x.shape[1:3]
    out_h, out_w = size

    def axis(n_in, n_out):
        src = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, None)
        lo = np.minimum(np.floor(src).astype(int), n_in - 1)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, (src - lo)[:, None]

    y0, y1, fy = axis(h, out_h)
    x0, x1, fx = axis(w, out_w)
    rows = (
        x[:, y0] * (1 - fy[None, :, :, None]) + x[:, y1] * fy[None, :, :, None]
    )
    return (
        rows[:, :, x0] * (1 - fx[None, None]) + rows[:, :, x1] * fx[None, None]
    )


def nms_top_k_reference(heatmaps, kernel, k):
    b, h, w, c = heatmaps.shape
    r = kernel // 2
    padded = np.pad(
        heatmaps, ((0, 0), (r, r), (r, r), (0, 0)), constant_values=-np.inf
    )
    pooled = np.max(
        [
            padded[:, dy : dy + h, dx : dx + w]
            for dy in range(kernel)
            for dx in range(kernel)
        ],
        axis=0,
    )
    peaks = heatmaps * (pooled == heatmaps)
    flat = peaks.transpose(0, 3, 1, 2).reshape(b, c, h * w)
    index = np.argsort(-flat, axis=-1, kind="stable")[..., :k]
    return np.take_along_axis(flat, index, -1), index


@pytest.fixture(scope="module")
def outputs():
    rng = np.random.default_rng(0)
    out0 = rng.normal(size=(2, 6, 5, 2 * K)).astype(np.float32)
    out1 = rng.normal(size=(2, 12, 10, K)).astype(np.float32)
    return out0, out1


def decoder(**kwargs):
    args = dict(num_keypoints=K, flip_indices=FLIP, max_people=4)
    args.update(kwargs)
    return AssociativeEmbeddingDecoder(**args)


def test_aggregate_matches_the_official_recipe(outputs):
    out0, out1 = outputs
    plain = [out0[:1], out1[:1]]
    mirror = [out0[1:], out1[1:]]
    heatmaps, tags = decoder().aggregate(plain, mirror, project_size=(24, 20))
    # By hand: 1/4 output up to the 1/2 size, heatmaps averaged over both
    # outputs; the mirror outputs flipped back with left/right swapped;
    # flip average of heatmaps, tags side by side; then to the input.
    up0 = resize_reference(out0, (12, 10))
    hm = (up0[..., :K] + out1) / 2
    hm = (hm[:1] + hm[1:, :, ::-1][..., FLIP]) / 2
    tg = np.stack([up0[0, ..., K:], up0[1, :, ::-1][..., K:][..., FLIP]], -1)
    want_hm = resize_reference(hm, (24, 20))
    want_tags = resize_reference(tg.reshape(1, 12, 10, 2 * K), (24, 20))
    np.testing.assert_allclose(heatmaps, want_hm, atol=1e-5)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(tags).reshape(1, 24, 20, 2 * K),
        want_tags,
        atol=1e-5,
    )
    assert tuple(tags.shape) == (1, 24, 20, K, 2)


def test_top_k_after_max_pool_nms(outputs):
    out0, _ = outputs
    heatmaps = out0[..., :K]
    tags = out0[..., K:, None]
    for kernel in (3, 5):
        result = decoder(nms_kernel=kernel).top_k(heatmaps, tags)
        values, index = nms_top_k_reference(heatmaps, kernel, 4)
        np.testing.assert_allclose(result["values"], values, atol=1e-6)
        # Suppressed pixels are 0 and tie: compare the peaks only.
        peak = values != 0
        assert peak.sum() >= 6
        locations = keras.ops.convert_to_numpy(result["locations"])
        np.testing.assert_array_equal(
            locations[..., 0][peak], (index % 5)[peak]
        )
        np.testing.assert_array_equal(
            locations[..., 1][peak], (index // 5)[peak]
        )
        want_tags = np.take_along_axis(
            tags[..., 0].transpose(0, 3, 1, 2).reshape(2, K, 30), index, -1
        )
        got_tags = keras.ops.convert_to_numpy(result["tags"])[..., 0]
        np.testing.assert_allclose(got_tags[peak], want_tags[peak])


@pytest.mark.parametrize("size", [(24, 20), (12, 30), (18, 15), (6, 5)])
def test_resize_matches_bilinear_half_pixel(outputs, size):
    # Integer factors take the shifted-blend path, others the general one.
    from kerapose.codecs.associative_embedding import _resize

    out0, _ = outputs
    got = keras.ops.convert_to_numpy(_resize(out0, size))
    np.testing.assert_allclose(got, resize_reference(out0, size), atol=1e-5)


def test_top_k_gathers_every_tag_dimension(outputs):
    out0, _ = outputs
    heatmaps = out0[..., :K]
    tags = np.stack([out0[..., K:], -2 * out0[..., K:]], axis=-1)
    result = decoder().top_k(heatmaps, tags)
    loc = keras.ops.convert_to_numpy(result["locations"])
    b, j = np.meshgrid(np.arange(2), np.arange(K), indexing="ij")
    want = tags[b[..., None], loc[..., 1], loc[..., 0], j[..., None]]
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(result["tags"]), want
    )


def test_merge_scales_averages_heatmaps_and_keeps_scale_one_tags():
    big = (np.ones((1, 8, 8, K)), np.full((1, 8, 8, K, 2), 1.0))
    small = (np.full((1, 4, 4, K), 3.0), np.full((1, 4, 4, K, 2), 5.0))
    heatmaps, tags = decoder().merge_scales(
        [big, small], [2.0, 1.0], projected=False
    )
    np.testing.assert_allclose(heatmaps, 2.0)
    np.testing.assert_allclose(tags, 5.0)
    assert tuple(tags.shape) == (1, 8, 8, K, 2)
    with pytest.raises(ValueError, match="add 1"):
        decoder().merge_scales([big, small], [2.0, 0.5], projected=False)


def test_hourglass_layout_reads_the_last_stack_and_ignores_extra_channels():
    rng = np.random.default_rng(1)
    stacks = [rng.normal(size=(1, 4, 4, 2 * K + 5)) for _ in range(2)]
    dec = decoder(heatmap_outputs=[1], tag_outputs=[1], flip_indices=None)
    heatmaps, tags = dec.aggregate(stacks)
    np.testing.assert_allclose(heatmaps, stacks[1][..., :K], atol=1e-6)
    np.testing.assert_allclose(tags[..., 0], stacks[1][..., K : 2 * K])


def test_bad_arguments_are_named(outputs):
    out0, out1 = outputs
    with pytest.raises(ValueError, match="C >= 6"):
        decoder().aggregate([out0[..., :4], out1])
    with pytest.raises(ValueError, match="flip_indices"):
        decoder(flip_indices=None).aggregate([out0, out1], [out0, out1])
    with pytest.raises(ValueError, match="permutation"):
        decoder(flip_indices=[0, 0, 1])
    with pytest.raises(ValueError, match="odd"):
        decoder(nms_kernel=4)
    with pytest.raises(ValueError, match="output 1"):
        decoder().aggregate([out0])


def test_config_round_trip():
    dec = decoder(nms_kernel=3, max_heatmap_value=1.0)
    revived = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(dec)
    )
    assert isinstance(revived, AssociativeEmbeddingDecoder)
    assert revived.get_config() == dec.get_config()


def _jit(fn):
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.jit(fn)
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(fn, jit_compile=True)
    if backend == "torch":
        import torch

        return torch.compile(fn, backend="aot_eager", fullgraph=True)
    pytest.skip(f"no jit on the {backend} backend")


def test_decoder_runs_under_jit(outputs):
    out0, out1 = outputs
    dec = decoder()

    def decode(a, b, fa, fb):
        result = dec([a, b], [fa, fb], project_size=(24, 20))
        return result["values"], result["tags"], result["locations"]

    args = [
        keras.ops.convert_to_tensor(x)
        for x in (out0[:1], out1[:1], out0[1:], out1[1:])
    ]
    eager = decode(*args)
    jitted = _jit(decode)(*args)
    for a, b in zip(eager, jitted):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(a),
            keras.ops.convert_to_numpy(b),
            atol=1e-5,
        )
