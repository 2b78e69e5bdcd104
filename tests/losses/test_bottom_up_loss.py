import keras
import numpy as np
import pytest

from kerapose.losses import BottomUpLoss
from kerapose.losses.bottom_up_loss import tag_loss
from kerapose.testing.test_case import to_numpy

K = 3


def _official_tag_loss(tags, joints):
    """The official per-image loop (HigherHRNet ``AELoss``, type "exp")."""
    h, w = tags.shape[1:3]
    pushes, pulls = [], []
    for b in range(tags.shape[0]):
        flat = tags[b].transpose(2, 0, 1).reshape(-1)  # (K * h * w,)
        means, pull = [], 0.0
        for person in joints[b]:
            tmp = [
                flat[k * h * w + index]
                for k, (index, labelled) in enumerate(person)
                if labelled > 0
            ]
            if not tmp:
                continue
            means.append(np.mean(tmp))
            pull += np.mean((np.array(tmp) - means[-1]) ** 2)
        n = len(means)
        if n == 0:
            pushes.append(0.0)
            pulls.append(0.0)
            continue
        if n == 1:
            pushes.append(0.0)
            pulls.append(pull / n)
            continue
        m = np.array(means)
        push = np.exp(-((m[None] - m[:, None]) ** 2)).sum() - n
        pushes.append(push / ((n - 1) * n) * 0.5)
        pulls.append(pull / n)
    return np.array(pushes), np.array(pulls)


def _official_heatmap_loss(pred, gt, mask):
    return (((pred - gt) ** 2) * mask[..., None]).mean(axis=(1, 2, 3))


def _random_case(seed, batch=4, people=5, h=6, w=5):
    """Random maps and joints with padding, a joint-less person, an image
    with one person and an empty image."""
    rng = np.random.default_rng(seed)
    joints = np.zeros((batch, people, K, 2), np.int32)
    joints[..., 0] = rng.integers(0, h * w, (batch, people, K))
    joints[..., 1] = rng.random((batch, people, K)) < 0.7
    joints[0, 3:] = 0  # padding
    joints[0, 1, :, 1] = 0  # a person without labelled joints
    joints[1, 1:] = 0  # one person
    joints[2] = 0  # nobody
    joints[0, 0, :, 1] = joints[0, 2, 0, 1] = joints[1, 0, :, 1] = 1
    joints[..., 0] *= joints[..., 1]
    targets = {
        "heatmaps_0": rng.random((batch, h, w, K), np.float32),
        "masks_0": (rng.random((batch, h, w)) < 0.8).astype("float32"),
        "heatmaps_1": rng.random((batch, 2 * h, 2 * w, K), np.float32),
        "masks_1": (rng.random((batch, 2 * h, 2 * w)) < 0.8).astype("float32"),
        "joints": joints,
    }
    outputs = [
        rng.normal(size=(batch, h, w, 2 * K)).astype("float32"),
        rng.normal(size=(batch, 2 * h, 2 * w, K)).astype("float32"),
    ]
    return targets, outputs


def _numbers(parts):
    return {key: float(to_numpy(v)) for key, v in parts.items()}


def test_matches_official_loop_higherhrnet():
    targets, outputs = _random_case(0)
    loss = BottomUpLoss(K, [0, 1], [True, False])
    got = _numbers(loss.components(targets, outputs))
    push, pull = _official_tag_loss(outputs[0][..., K:], targets["joints"])
    assert push[0] > 0 and pull[1] > 0 and push[1] == 0 and pull[2] == 0
    heatmap = sum(
        _official_heatmap_loss(
            outputs[r][..., :K], targets[f"heatmaps_{r}"], targets[f"masks_{r}"]
        ).mean()
        for r in (0, 1)
    )
    np.testing.assert_allclose(got["heatmap"], heatmap, rtol=1e-5)
    np.testing.assert_allclose(got["push"], 1e-3 * push.mean(), rtol=1e-5)
    np.testing.assert_allclose(got["pull"], 1e-3 * pull.mean(), rtol=1e-5)
    total = float(to_numpy(loss(targets, outputs)))
    np.testing.assert_allclose(total, sum(got.values()), rtol=1e-6)


def test_matches_official_loop_hourglass_stacks():
    # Two stacks at one resolution, 4K channels (the rest unused), tags
    # on every stack, and the mean over stacks of the hourglass trainer.
    targets, _ = _random_case(1)
    rng = np.random.default_rng(2)
    outputs = [rng.normal(size=(4, 6, 5, 4 * K)).astype("float32")] * 2
    outputs[1] = outputs[1] * 2.0
    loss = BottomUpLoss(
        K, [0, 0], [True, True], push_weight=2.0, output_reduction="mean"
    )
    got = _numbers(loss.components(targets, outputs))
    want = {"heatmap": 0.0, "push": 0.0, "pull": 0.0}
    for out in outputs:
        push, pull = _official_tag_loss(out[..., K : 2 * K], targets["joints"])
        hm = _official_heatmap_loss(
            out[..., :K], targets["heatmaps_0"], targets["masks_0"]
        )
        want["heatmap"] += hm.mean() / 2
        want["push"] += 2.0 * push.mean() / 2
        want["pull"] += 1e-3 * pull.mean() / 2
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-5)


def _tags_case(person_tags, spread=0.0):
    """One image, people with constant (or spread) tags on their joints."""
    h, w = 4, 4
    people = len(person_tags)
    tags = np.zeros((1, h, w, K), "float32")
    joints = np.zeros((1, people, K, 2), np.int32)
    for p, value in enumerate(person_tags):
        for k in range(K):
            index = p * K + k
            joints[0, p, k] = (index, 1)
            tags[0, index // w, index % w, k] = value + spread * (k - 1)
    return tags, joints


def test_pull_is_zero_for_constant_tags_and_grows_with_spread():
    tags, joints = _tags_case([0.3, -1.0, 2.0])
    _, pull = tag_loss(tags, joints)
    assert float(to_numpy(pull)[0]) == pytest.approx(0.0, abs=1e-7)
    tags, joints = _tags_case([0.3, -1.0, 2.0], spread=0.5)
    _, pull = tag_loss(tags, joints)
    # Joint offsets -0.5, 0, 0.5 around each mean.
    assert float(to_numpy(pull)[0]) == pytest.approx(0.5**2 * 2 / 3, rel=1e-5)


def test_push_small_for_distant_means_large_for_equal():
    far, _ = tag_loss(*_tags_case([0.0, 10.0, -10.0]))
    near, _ = tag_loss(*_tags_case([1.0, 1.0, 1.0]))
    assert float(to_numpy(far)[0]) < 1e-6
    assert float(to_numpy(near)[0]) == pytest.approx(0.5, rel=1e-6)
    hinge, _ = tag_loss(*_tags_case([0.0, 0.5]), loss_type="max")
    assert float(to_numpy(hinge)[0]) == pytest.approx(0.25, rel=1e-6)


def test_mask_zeroes_ignored_pixels():
    targets, outputs = _random_case(3)
    loss = BottomUpLoss(K, [0, 1], [True, False])
    before = _numbers(loss.components(targets, outputs))["heatmap"]
    changed = [o.copy() for o in outputs]
    ignored = targets["masks_1"] == 0
    changed[1][ignored] += 100.0
    after = _numbers(loss.components(targets, changed))["heatmap"]
    assert after == pytest.approx(before, rel=1e-6)
    changed[1][~ignored] += 10.0
    assert _numbers(loss.components(targets, changed))["heatmap"] > before


def test_batch_without_people_is_finite():
    targets, outputs = _random_case(4)
    targets["joints"] = np.zeros_like(targets["joints"])
    loss = BottomUpLoss(K, [0, 1], [True, False])
    parts = _numbers(loss.components(targets, outputs))
    assert parts["push"] == 0.0 and parts["pull"] == 0.0
    assert np.isfinite(parts["heatmap"]) and parts["heatmap"] > 0


class TinyBottomUp(keras.Model):
    """Two outputs like HigherHRNet: 2K channels at s, K at 2s."""

    def __init__(self, loss_fn, **kwargs):
        image = keras.Input((8, 8, 3))
        low = keras.layers.Conv2D(2 * K, 1)(image)
        high = keras.layers.Conv2D(K, 1)(keras.layers.UpSampling2D()(image))
        super().__init__(image, [low, high], **kwargs)
        self.loss_fn = loss_fn

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        return self.loss_fn(y, y_pred)


def test_traced_fit_reduces_the_loss():
    # Compiled training step on every backend (jit on JAX, tf.function on
    # TensorFlow), including an image without people.
    targets, _ = _random_case(5, batch=4, h=8, w=8)
    targets["heatmaps_1"] = np.zeros((4, 16, 16, K), "float32")
    targets["masks_1"] = np.ones((4, 16, 16), "float32")
    loss = BottomUpLoss(
        K, [0, 1], [True, False], push_weight=1.0, pull_weight=1.0
    )
    images = (
        np.random.default_rng(6).normal(size=(4, 8, 8, 3)).astype("float32")
    )
    keras.utils.set_random_seed(0)
    model = TinyBottomUp(loss)
    model.compile(optimizer=keras.optimizers.Adam(0.05))
    history = model.fit(images, targets, batch_size=4, epochs=8, verbose=0)
    losses = history.history["loss"]
    assert np.isfinite(losses).all()
    assert losses[-1] < losses[0]


def test_serialization():
    loss = BottomUpLoss(17, [0, 0], [True, True], output_reduction="mean")
    revived = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(loss)
    )
    assert isinstance(revived, BottomUpLoss)
    assert revived.get_config() == loss.get_config()
    assert revived.push_weight == [1e-3, 1e-3]


def test_bad_arguments_are_explained():
    with pytest.raises(ValueError, match="resolution-0 map"):
        BottomUpLoss(K, [0, 1], [True, True])
    with pytest.raises(ValueError, match="one entry per output"):
        BottomUpLoss(K, [0, 1], [True])
    with pytest.raises(ValueError, match="tag_loss_type"):
        BottomUpLoss(K, [0], [True], tag_loss_type="mse")
    targets, outputs = _random_case(7)
    loss = BottomUpLoss(K, [0, 1], [True, False])
    with pytest.raises(ValueError, match="built for 2 outputs"):
        loss(targets, outputs[:1])
    with pytest.raises(ValueError, match="C >= 6"):
        loss(targets, [outputs[0][..., :K], outputs[1]])
    with pytest.raises(ValueError, match="lack"):
        loss({k: v for k, v in targets.items() if k != "masks_1"}, outputs)
    with pytest.raises(ValueError, match="output sizes must match"):
        loss(targets, [outputs[0], outputs[1][:, :4]])
    with pytest.raises(ValueError, match="'joints'"):
        loss({k: v for k, v in targets.items() if k != "joints"}, outputs)
