"""Distributed training scenarios for tests/distribute, one per process.

    python _worker.py tf_mirrored OUT.json
    python _worker.py jax_data_parallel OUT.json
    python _worker.py tf_multi_worker OUT.json ANN_FILE IMAGE_DIR

Each scenario writes a JSON report to OUT.json; the test compares numbers.
A separate process per scenario because device layout (logical CPUs, XLA
host device count, TF_CONFIG) must be fixed before the framework starts.
KERAS_BACKEND comes from the caller's environment.
"""

import hashlib
import json
import sys
import time

import numpy as np

BATCH = 8  # global batch: 4 per replica on 2 replicas
STEPS = 3  # per-step losses compared (one fit epoch per step)


def _fixed_batch(codec, n, seed=0):
    """n images with heatmap targets from `codec.encode`, deterministic."""
    rng = np.random.default_rng(seed)
    h, w = codec.input_size
    images = rng.normal(size=(n, h, w, 3)).astype("float32")
    heatmaps, weights = [], []
    for _ in range(n):
        keypoints = rng.uniform(4, [w - 4, h - 4], size=(17, 2))
        visible = rng.uniform(size=17) > 0.2
        hm, kw = codec.encode(keypoints, visible)
        heatmaps.append(hm)
        weights.append(kw)
    return images, np.stack(heatmaps), np.stack(weights)


def _weights(model):
    import keras

    return {v.path: keras.ops.convert_to_numpy(v) for v in model.weights}


def _checksum(model):
    digest = hashlib.sha256()
    for path, value in sorted(_weights(model).items()):
        digest.update(path.encode())
        digest.update(np.ascontiguousarray(value, "float32").tobytes())
    return digest.hexdigest()


def _max_diff(a, b):
    return max(float(np.max(np.abs(a[k] - b[k]))) for k in a)


def _freeze_bn(model):
    import keras

    # trainable=False makes Keras BN use its moving statistics (inference
    # mode) during fit, so each sample's output is independent of the batch.
    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False


def _train(init_file, data, freeze_bn):
    """Per-step losses and final weights of a fit from `init_file`."""
    from kerapose import zoo

    model = zoo.load("test_hrnet", compile=False)
    zoo.load_weights(model, init_file)
    if freeze_bn:
        _freeze_bn(model)
    model.compile()
    images, heatmaps, weights = data
    history = model.fit(
        images,
        heatmaps,
        sample_weight=weights,
        batch_size=BATCH,
        epochs=STEPS,
        shuffle=False,
        verbose=0,
    )
    return history.history["loss"], _weights(model)


def _compare(init_file, data, freeze_bn, scope):
    """Single-device fit, then the same fit inside `scope()`."""
    t0 = time.time()
    single_losses, single_weights = _train(init_file, data, freeze_bn)
    t1 = time.time()
    with scope():
        dist_losses, dist_weights = _train(init_file, data, freeze_bn)
    t2 = time.time()
    return {
        "single": single_losses,
        "distributed": dist_losses,
        "max_weight_diff": _max_diff(single_weights, dist_weights),
        "seconds_single": t1 - t0,
        "seconds_distributed": t2 - t1,
    }


def _initial_weights(tmp_dir):
    from kerapose import zoo

    model = zoo.load("test_hrnet", compile=False)
    path = f"{tmp_dir}/init.weights.h5"
    zoo.save_weights(model, path)
    return model.codec, path


def tf_mirrored(out):
    import tempfile

    import tensorflow as tf

    # Two logical CPUs; only possible before TF initialises its devices.
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    report = {"num_replicas": strategy.num_replicas_in_sync}
    with tempfile.TemporaryDirectory() as tmp:
        codec, init = _initial_weights(tmp)
        distinct = _fixed_batch(codec, BATCH)
        half = _fixed_batch(codec, BATCH // 2)
        # Both replicas see the same 4 samples: per-replica BN statistics
        # then equal the statistics of the duplicated global batch.
        replicated = tuple(np.concatenate([a, a]) for a in half)
        report["frozen_bn"] = _compare(init, distinct, True, strategy.scope)
        report["replicated_batch"] = _compare(
            init, replicated, False, strategy.scope
        )
        report["per_replica_bn"] = _compare(
            init, distinct, False, strategy.scope
        )
    _write(out, report)


def jax_data_parallel(out):
    import tempfile

    import jax
    import keras

    devices = jax.devices("cpu")
    distribution = keras.distribution.DataParallel(devices=devices)
    report = {"num_replicas": len(devices)}

    class _Scope:
        def __enter__(self):
            keras.distribution.set_distribution(distribution)

        def __exit__(self, *exc):
            keras.distribution.set_distribution(None)

    with tempfile.TemporaryDirectory() as tmp:
        codec, init = _initial_weights(tmp)
        distinct = _fixed_batch(codec, BATCH)
        report["bn_training"] = _compare(init, distinct, False, _Scope)
    _write(out, report)


def tf_multi_worker(out, ann_file, image_dir):
    import tensorflow as tf

    # Reads TF_CONFIG; must exist before any other TF op runs.
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    from kerapose import zoo
    from kerapose.data.pipelines import build_top_down_dataset

    with strategy.scope():
        model = zoo.load("test_hrnet")
    initial = _checksum(model)
    # Same seed on every worker: the same global order, then DATA sharding
    # gives each worker its own half of every global batch.
    dataset = build_top_down_dataset(
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
    dataset = dataset.with_options(options)
    history = model.fit(dataset, epochs=1, steps_per_epoch=2, verbose=0)
    images, heatmaps, weights = _fixed_batch(model.codec, 4)
    probe = model.evaluate(
        images, heatmaps, sample_weight=weights, batch_size=4, verbose=0
    )
    _write(
        out,
        {
            "num_replicas": strategy.num_replicas_in_sync,
            "initial_checksum": initial,
            "losses": history.history["loss"],
            "probe_loss": probe,
            "checksum": _checksum(model),
        },
    )


def _write(out, report):
    with open(out, "w") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    scenario, out, *args = sys.argv[1:]
    {
        "tf_mirrored": tf_mirrored,
        "jax_data_parallel": jax_data_parallel,
        "tf_multi_worker": tf_multi_worker,
    }[scenario](out, *args)
