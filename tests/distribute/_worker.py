"""Distributed training scenarios for tests/distribute, one per process.

    python _worker.py tf_mirrored OUT.json [CASE,...]
    python _worker.py jax_data_parallel OUT.json
    python _worker.py tf_multi_worker OUT.json ANN_FILE IMAGE_DIR [--plain-bn]

Each writes a JSON report to OUT.json; test_distribution.py checks it.
One process per scenario: the device layout (logical CPUs, the XLA host
device count, TF_CONFIG) is fixed when the framework starts. The caller
sets KERAS_BACKEND.

TF cases: sync_bn, frozen_bn, broken_frozen_bn (the defaults) and
per_replica_bn (plain BN, the shipped model: measured for the docs, not
tested). Everything runs in float64 unless --float32 is given.
"""

import hashlib
import json
import sys
import tempfile
import time

import keras
import numpy as np

from kerapose import zoo

BATCH = 8  # global batch: 4 per replica on 2 replicas
STEPS = 3  # one fit epoch per step, so History holds per-step losses
# SGD, not the default Adam: Adam is invariant to the gradient scale (a
# sum-instead-of-mean all-reduce would go unseen) and turns round-off in
# near-zero gradients into full learning-rate steps. At 0.1 the frozen-BN
# model diverges.
LEARNING_RATE = 0.01
# The distributed learning rate of a `broken_*` case: with SGD, a factor
# 1 + e is a gradient reduction wrong by e (2.0 would be a sum instead of
# a mean over 2 replicas).
BROKEN_STEP_ERROR = 1.0001


def use_float64():
    """float64 unless --float32: see tests/distribute/test_distribution.py
    for why the float32 comparison is at the mercy of the CPU's kernels."""
    if "--float32" not in sys.argv:
        keras.config.set_floatx("float64")


def fixed_batch(codec, n, seed=0):
    """n random images with `codec.encode` heatmap targets."""
    rng = np.random.default_rng(seed)
    h, w = codec.input_size
    images = rng.normal(size=(n, h, w, 3)).astype(keras.config.floatx())
    heatmaps, weights = [], []
    for _ in range(n):
        keypoints = rng.uniform(4, [w - 4, h - 4], size=(17, 2))
        hm, kw = codec.encode(keypoints, rng.uniform(size=17) > 0.2)
        heatmaps.append(hm)
        weights.append(kw)
    fx = keras.config.floatx()
    return images, np.stack(heatmaps).astype(fx), np.stack(weights).astype(fx)


def weights_of(model):
    return {v.path: keras.ops.convert_to_numpy(v) for v in model.weights}


def checksum(arrays):
    digest = hashlib.sha256()
    for key in sorted(arrays):
        digest.update(key.encode())
        digest.update(np.ascontiguousarray(arrays[key]).tobytes())
    return digest.hexdigest()[:16]


def batch_norms(model):
    return [
        layer
        for layer in model._flatten_layers()
        if isinstance(layer, keras.layers.BatchNormalization)
    ]


def configure(model, case):
    if case == "frozen_bn":
        # Inference-mode BN: each sample's output is independent of the
        # batch, so per-replica batches cannot change the result.
        for layer in batch_norms(model):
            layer.trainable = False
    elif case == "sync_bn":
        # TF only: BN moments all-reduced over the replicas (global batch).
        model.sync_batchnorm = True


def initial_model(tmp_dir, case):
    """Saves a seeded test_hrnet; returns its weights, file and a batch."""
    keras.utils.set_random_seed(0)
    model = zoo.load("test_hrnet", compile=False)
    data = fixed_batch(model.codec, BATCH)
    if case == "frozen_bn":
        # Moving stats := this batch's stats. With the initial (0, 1) a
        # frozen model's activations shrink to ~0 (conv init std 1e-3)
        # and only the head bias would train.
        for layer in batch_norms(model):
            layer.momentum = 0.0
        model(data[0], training=True)
    path = f"{tmp_dir}/init.weights.h5"
    zoo.save_weights(model, path)
    return weights_of(model), path, data


class FirstStepWeights(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            self.weights = weights_of(self.model)


def train(init_file, data, case, distributed, error=1.0):
    """Per-step losses, weights after step 1 and after the last step."""
    model = zoo.load("test_hrnet", compile=False)
    zoo.load_weights(model, init_file)
    if distributed or case == "frozen_bn":
        configure(model, case)  # sync_bn's baseline is plain BN
    learning_rate = LEARNING_RATE
    if distributed:
        learning_rate *= error
    model.compile(optimizer=keras.optimizers.SGD(learning_rate))
    images, heatmaps, weights = data
    first = FirstStepWeights()
    history = model.fit(
        images,
        heatmaps,
        sample_weight=weights,
        batch_size=BATCH,
        epochs=STEPS,
        shuffle=False,
        verbose=0,
        callbacks=[first],
    )
    return history.history["loss"], first.weights, weights_of(model)


def relative_diff(a, b, start, moving):
    """||a - b|| / ||b - start|| over the (non-)moving-stat variables."""
    keys = [k for k in a if ("moving_" in k) == moving]
    num = sum(float(np.sum((a[k] - b[k]) ** 2)) for k in keys)
    den = sum(float(np.sum((b[k] - start[k]) ** 2)) for k in keys)
    return float(np.sqrt(num / den)) if den else float(np.sqrt(num))


def compare(case, scope):
    """The same fit on one device, then inside `scope()`.

    A case named `broken_<case>` makes the distributed step wrong on
    purpose, by the factor BROKEN_STEP_ERROR, to prove the checks see it.
    """
    error = 1.0
    if case.startswith("broken_"):
        case, error = case[len("broken_") :], BROKEN_STEP_ERROR
    with tempfile.TemporaryDirectory() as tmp:
        start, init, data = initial_model(tmp, case)
        t0 = time.time()
        single = train(init, data, case, False)
        t1 = time.time()
        with scope():
            dist = train(init, data, case, True, error)
        t2 = time.time()
    return {
        "single": single[0],
        "distributed": dist[0],
        "loss_rel_diff": [abs(a - b) / b for a, b in zip(dist[0], single[0])],
        # The first update starts from the same weights and data: only the
        # gradient reduction differs. Relative to the size of the update.
        "step1_update_diff": relative_diff(dist[1], single[1], start, False),
        "step1_moving_stat_diff": relative_diff(
            dist[1], single[1], start, True
        ),
        # After 3 steps round-off has been amplified by the dynamics.
        "final_update_diff": relative_diff(dist[2], single[2], start, False),
        "seconds_single": round(t1 - t0, 1),
        "seconds_distributed": round(t2 - t1, 1),
    }


def example_syncs_batchnorm(strategy):
    """Whether examples/train_top_down.py turns on synchronised BN for a
    model built in `strategy`'s scope (and leaves it off outside)."""
    import importlib.util
    from pathlib import Path

    script = Path(__file__).parents[2] / "examples" / "train_top_down.py"
    spec = importlib.util.spec_from_file_location("train_top_down", script)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    outside = example.sync_batchnorm_if_distributed(
        zoo.load("test_hrnet", compile=False)
    )
    with strategy.scope():
        model = zoo.load("test_hrnet", compile=False)
        inside = example.sync_batchnorm_if_distributed(model)
    synced = all(layer.synchronized for layer in batch_norms(model))
    return {"outside": outside, "inside": inside and synced}


def tf_mirrored(out, cases="sync_bn,frozen_bn,broken_frozen_bn"):
    import tensorflow as tf

    use_float64()

    # Two logical CPUs; only possible before TF initialises its devices.
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    report = {"num_replicas": strategy.num_replicas_in_sync}
    report["example_syncs_batchnorm"] = example_syncs_batchnorm(strategy)
    for case in cases.split(","):
        report[case] = compare(case, strategy.scope)
    write(out, report)


def jax_data_parallel(out):
    import jax

    jax.config.update("jax_enable_x64", "--float32" not in sys.argv)
    use_float64()

    devices = jax.devices("cpu")
    distribution = keras.distribution.DataParallel(devices=devices)

    class Scope:
        def __enter__(self):
            keras.distribution.set_distribution(distribution)

        def __exit__(self, *exc):
            keras.distribution.set_distribution(None)

    # Plain BN in training mode, each device its own 4 samples. Jitted:
    # run_eagerly=True aborted in an XLA all-reduce rendezvous timeout.
    report = {"num_replicas": len(devices)}
    report["plain_bn"] = compare("plain_bn", Scope)
    write(out, report)


class NestedReduce:
    """`reduce` for Keras 3 `fit` on MultiWorkerMirroredStrategy.

    Keras passes a nested batch, and scalar metrics with axis=0, to
    `strategy.reduce`; with 2+ workers both fail (keras-team/keras#20585).
    This reduces leaf by leaf.
    """

    def reduce(self, reduce_op, value, axis):
        import tensorflow as tf

        parent = super().reduce

        def one(v):
            rank = self.experimental_local_results(v)[0].shape.rank
            return parent(reduce_op, v, axis if rank else None)

        return tf.nest.map_structure(one, value)


def tf_multi_worker(out, ann_file, image_dir):
    import tensorflow as tf

    from kerapose.data.pipelines import build_top_down_dataset

    class Strategy(NestedReduce, tf.distribute.MultiWorkerMirroredStrategy):
        pass

    # Reads TF_CONFIG and joins the cluster; before any other TF op.
    strategy = Strategy()
    t0 = time.time()
    with strategy.scope():
        # Unseeded: MWMS must broadcast the chief's initial values.
        model = zoo.load("test_hrnet", compile=False)
        if "--plain-bn" not in sys.argv:
            # Else each worker keeps BN moving stats of its own shard.
            configure(model, "sync_bn")
        model.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE))
    initial = checksum(weights_of(model))

    def dataset():
        # Same seed on every worker: one global order, then DATA sharding
        # gives each worker its own half of every global batch of 4.
        ds = build_top_down_dataset(
            ann_file,
            image_dir,
            model.codec,
            batch_size=4,
            training=True,
            seed=0,
            verbose=False,
        ).repeat()
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA
        )
        return ds.with_options(options)

    first = next(iter(strategy.experimental_distribute_dataset(dataset())))
    local_images = strategy.experimental_local_results(first[0])[0].numpy()

    class StepLosses(keras.callbacks.Callback):
        # Batch logs are reduced over the workers.
        losses = []

        def on_train_batch_end(self, batch, logs=None):
            self.losses.append(float(logs["loss"]))

    model.fit(
        dataset(),
        epochs=1,
        steps_per_epoch=2,
        verbose=0,
        callbacks=[StepLosses()],
    )
    # A loss computed locally, without any cross-worker reduction.
    images, heatmaps, kw = fixed_batch(model.codec, 4)
    pred = np.asarray(model(images, training=False))
    per_kpt = 0.5 * np.mean((pred - heatmaps) ** 2, axis=(1, 2))
    weights = weights_of(model)
    optimizer = {
        v.path: keras.ops.convert_to_numpy(v) for v in model.optimizer.variables
    }
    write(
        out,
        {
            "num_replicas": strategy.num_replicas_in_sync,
            "local_batch": local_images.shape[0],
            "first_local_batch": checksum({"x": local_images}),
            "initial_checksum": initial,
            "step_losses": StepLosses.losses,
            "probe_loss": float(np.sum(per_kpt * kw) / kw.size),
            "checksum": checksum(weights),
            "trainable_checksum": checksum(
                {k: v for k, v in weights.items() if "moving_" not in k}
            ),
            "optimizer_checksum": checksum(optimizer),
            "seconds": round(time.time() - t0, 1),
        },
    )


def write(out, report):
    with open(out, "w") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    scenario, out, *args = [a for a in sys.argv[1:] if not a.startswith("--")]
    {
        "tf_mirrored": tf_mirrored,
        "jax_data_parallel": jax_data_parallel,
        "tf_multi_worker": tf_multi_worker,
    }[scenario](out, *args)
