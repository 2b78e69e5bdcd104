"""Training on a distribution strategy gives the numbers of one device.

Each scenario runs `_worker.py` in a fresh process with a clean
environment: the device layout (2 logical CPUs for TF, 2 forced XLA host
devices for JAX, TF_CONFIG for multi-worker) must be set before the
framework starts. The fits use SGD (Adam would hide a gradient-scale bug),
a fixed batch of 8 (4 per replica) with `codec.encode` targets, and 3
steps from the same seeded initial weights (`kerapose.zoo.save_weights`,
then `kerapose.zoo.load_weights`).

BatchNorm makes "the same numbers" need care. Keras BN in training mode
normalises with the statistics of the batch it sees: under
MirroredStrategy that is each replica's 4 samples, not the global 8, so
plain BN changes the forward pass itself (measured: the first update is
the mean of the two 4-sample updates and differs from the 8-sample one by
102% of its size). The TF tests therefore compare two set-ups where the
distributed math equals the one-device math:

- sync_bn: `BatchNormalization.synchronized = True` (moments all-reduced
  over the replicas, i.e. the global batch) against plain BN on one
  device;
- frozen_bn: BN in inference mode (`trainable = False`) on both sides,
  with the moving statistics first set to this batch's statistics.

JAX DataParallel compiles one global program (GSPMD), so plain BN already
sees the global batch there; it is compared as is.

Checks and tolerances, [measured]:

- step-1 loss, relative: 1e-6. Same weights and data; only the order of
  the sums differs [1.1e-7 TF, 1.1e-7 JAX].
- step-1 update, ||w_dist - w_one|| / ||w_one - w_0||: 1e-2. A wrong
  gradient reduction shows here: per-replica BN gives 1.02, a sum instead
  of a mean 1.0 [6.0e-6 sync_bn, 9.5e-7 frozen_bn, 2.3e-3 JAX; permuting
  the batch on one device gives 6.0e-6 on TF, 1.4e-3 on JAX].
- step-1 BN moving statistics, same measure: 1e-5 [4e-9 TF, 2e-9 JAX;
  per-replica BN gives 4.6e-4].
- steps 2-3 losses, relative: 1e-3, loose on purpose. The tiny HRNet
  (conv init std 1e-3) amplifies round-off step by step: after 3 steps
  the weights differ by 0.5-22% of the update [losses by <= 5.5e-5].
"""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import keras
import pytest

from kerapose.testing.fake_data import write_fake_coco

WORKER = Path(__file__).with_name("_worker.py")
REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 240  # seconds per process: a hung collective must not block CI
BACKEND = keras.backend.backend()

LOSS_STEP1_RTOL = 1e-6
UPDATE_STEP1_RTOL = 1e-2
MOVING_STATS_STEP1_RTOL = 1e-5
LOSS_LATER_RTOL = 1e-3

on_tf = pytest.mark.skipif(
    BACKEND != "tensorflow",
    reason="tf.distribute strategies need KERAS_BACKEND=tensorflow",
)
on_jax = pytest.mark.skipif(
    BACKEND != "jax",
    reason="keras.distribution.DataParallel test runs on KERAS_BACKEND=jax",
)


def _env(backend, home, **extra):
    """A clean environment: no inherited XLA/TF/CUDA settings."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", str(home)),
        "PYTHONPATH": str(REPO),  # this checkout's kerapose
        "KERAS_BACKEND": backend,
        "KERAPOSE_HOME": str(home),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "CUDA_VISIBLE_DEVICES": "",
        "JAX_PLATFORMS": "cpu",
    }
    env.update(extra)
    return env


def _run_worker(args, env, out):
    try:
        proc = subprocess.run(
            [sys.executable, str(WORKER), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{args[0]} did not finish in {TIMEOUT} s")
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(Path(out).read_text())


def _check_matches_one_device(result):
    single, dist = result["single"], result["distributed"]
    assert single[1] < single[0], "the first step did not train"
    assert result["loss_rel_diff"][0] <= LOSS_STEP1_RTOL, (single, dist)
    assert result["step1_update_diff"] <= UPDATE_STEP1_RTOL, result
    assert result["step1_moving_stat_diff"] <= MOVING_STATS_STEP1_RTOL, result
    assert max(result["loss_rel_diff"][1:]) <= LOSS_LATER_RTOL, (single, dist)


@pytest.fixture(scope="module")
def mirrored_report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mirrored")
    out = tmp / "report.json"
    report = _run_worker(
        ["tf_mirrored", str(out)], _env("tensorflow", tmp), out
    )
    assert report["num_replicas"] == 2
    return report


@pytest.mark.tf_only
@on_tf
def test_mirrored_sync_bn_matches_one_device(mirrored_report):
    _check_matches_one_device(mirrored_report["sync_bn"])


@pytest.mark.tf_only
@on_tf
def test_mirrored_frozen_bn_matches_one_device(mirrored_report):
    _check_matches_one_device(mirrored_report["frozen_bn"])


@on_jax
def test_jax_data_parallel_matches_one_device(tmp_path):
    out = tmp_path / "report.json"
    env = _env(
        "jax", tmp_path, XLA_FLAGS="--xla_force_host_platform_device_count=2"
    )
    report = _run_worker(["jax_data_parallel", str(out)], env, out)
    assert report["num_replicas"] == 2
    _check_matches_one_device(report["plain_bn"])


def _free_ports(n):
    """n distinct free loopback ports (bound together, then released)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.mark.tf_only
@on_tf
def test_multi_worker_mirrored_workers_agree(tmp_path):
    """Two MWMS workers on localhost train on their own shards of the
    synthetic pipeline and end with bit-identical weights (SyncBN keeps
    the moving statistics identical too)."""
    ann = write_fake_coco(tmp_path, num_images=6, image_size=(64, 64))
    cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
    procs, outs = [], []
    for index in range(2):
        out = tmp_path / f"worker{index}.json"
        log = open(tmp_path / f"worker{index}.log", "w")
        config = {
            "cluster": cluster,
            "task": {"type": "worker", "index": index},
        }
        env = _env("tensorflow", tmp_path, TF_CONFIG=json.dumps(config))
        args = ["tf_multi_worker", str(out), str(ann), str(tmp_path / "images")]
        procs.append(
            subprocess.Popen(
                [sys.executable, str(WORKER), *args],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        outs.append(out)
        log.close()
    deadline = time.monotonic() + TIMEOUT
    try:
        while any(p.poll() is None for p in procs):
            # A crashed worker would leave its peer waiting for it.
            if any(p.poll() not in (None, 0) for p in procs):
                break
            if time.monotonic() > deadline:
                pytest.fail(f"multi-worker training ran over {TIMEOUT} s")
            time.sleep(0.5)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    codes = [p.returncode for p in procs]
    for index, code in enumerate(codes):
        log = (tmp_path / f"worker{index}.log").read_text()
        assert code == 0, f"worker {index}:\n{log[-4000:]}"
    a, b = (json.loads(out.read_text()) for out in outs)
    assert a["num_replicas"] == b["num_replicas"] == 2
    # Each worker reads its own half of every global batch of 4.
    assert a["local_batch"] == b["local_batch"] == 2
    assert a["first_local_batch"] != b["first_local_batch"]
    # Unseeded processes: equal initial weights mean the chief's were
    # broadcast.
    assert a["initial_checksum"] == b["initial_checksum"]
    for key in ("trainable_checksum", "optimizer_checksum", "checksum"):
        assert a[key] == b[key], key
    assert a["checksum"] != a["initial_checksum"], "no step was applied"
    assert a["step_losses"] == b["step_losses"]
    assert a["probe_loss"] == b["probe_loss"]
