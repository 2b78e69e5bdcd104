"""Weights saved under one backend load under the others, same outputs."""

import importlib.util
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from kerapose import zoo
from kerapose.testing.test_case import to_numpy

SCRIPT = """
import sys
import numpy as np
from kerapose import zoo
model = zoo.load("test_hrnet", weights=sys.argv[1], compile=False)
x = np.load(sys.argv[2])
np.save(sys.argv[3], np.asarray(model.predict(x, verbose=0)["heatmaps"]))
"""

BACKEND_MODULES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}


@pytest.mark.parametrize("other", sorted(BACKEND_MODULES))
def test_weights_load_on_other_backend(other, tmp_path):
    if other == keras.backend.backend():
        pytest.skip("same backend")
    if importlib.util.find_spec(BACKEND_MODULES[other]) is None:
        pytest.skip(f"{other} is not installed")
    model = zoo.load("test_hrnet", compile=False)
    weights = zoo.save_weights(model, tmp_path / "w.weights.h5")
    x = np.random.default_rng(0).normal(size=(2, 64, 64, 3)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    env = {**os.environ, "KERAS_BACKEND": other}
    subprocess.run(
        [
            sys.executable,
            "-c",
            SCRIPT,
            str(weights),
            str(tmp_path / "x.npy"),
            str(tmp_path / "y.npy"),
        ],
        check=True,
        env=env,
        capture_output=True,
        timeout=300,
    )
    expected = to_numpy(model(x, training=False))
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), expected, atol=1e-5)
