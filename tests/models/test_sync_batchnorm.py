"""`sync_batchnorm`: the estimator option for BatchNorm under tf.distribute.

That the synchronised step equals one device is checked under a real
MirroredStrategy in tests/distribute/test_distribution.py.
"""

import re
from pathlib import Path

import keras
import pytest

from kerapose import zoo

ON_TF = keras.backend.backend() == "tensorflow"


def _batch_norms(model):
    return [
        layer
        for layer in model._flatten_layers()
        if isinstance(layer, keras.layers.BatchNormalization)
    ]


@pytest.mark.parametrize("name", ["test_hrnet", "test_rsn"])
def test_option_is_saved_in_the_config(name):
    model = zoo.load(name, compile=False)
    assert model.sync_batchnorm is False
    assert model.get_config()["sync_batchnorm"] is False
    if not ON_TF:
        with pytest.warns(UserWarning, match="no effect"):
            model.sync_batchnorm = True
        return
    model.sync_batchnorm = True
    assert all(bn.synchronized for bn in _batch_norms(model))
    revived = type(model).from_config(model.get_config())
    assert revived.sync_batchnorm is True
    assert all(bn.synchronized for bn in _batch_norms(revived))
    model.sync_batchnorm = False
    assert not any(bn.synchronized for bn in _batch_norms(model))


@pytest.mark.skipif(not ON_TF, reason="synchronised BN is TensorFlow's")
def test_option_survives_a_keras_file(tmp_path):
    model = zoo.load("test_hrnet", compile=False)
    model.sync_batchnorm = True
    model.save(tmp_path / "model.keras")
    revived = keras.models.load_model(tmp_path / "model.keras")
    assert revived.sync_batchnorm is True
    assert all(bn.synchronized for bn in _batch_norms(revived))


@pytest.mark.parametrize("bad", ["yes", 2, None])
def test_bad_values_are_refused(bad):
    model = zoo.load("test_hrnet", compile=False)
    with pytest.raises(ValueError, match="sync_batchnorm"):
        model.sync_batchnorm = bad


def test_train_extra_brings_tensorboard():
    pyproject = Path(__file__).parents[2] / "pyproject.toml"
    # (tomllib is Python 3.11+; kerapose supports 3.10.)
    train = re.search(r"^train = \[(.*)\]$", pyproject.read_text(), re.M)
    assert train and '"tensorboard' in train.group(1)
