"""Test helpers written once and used by every model's tests.

Backend-neutral: compares with `keras.ops.convert_to_numpy`, never imports a
backend framework.
"""

import json
import os
import tempfile

import keras
import numpy as np
from absl.testing import parameterized


def to_numpy(x):
    return keras.ops.convert_to_numpy(x)


class TestCase(parameterized.TestCase):
    """`absl` test case with kerapose's generic checks."""

    def assertAllClose(self, a, b, atol=1e-6, rtol=1e-6, msg=None):
        np.testing.assert_allclose(
            to_numpy(a), to_numpy(b), atol=atol, rtol=rtol, err_msg=msg or ""
        )

    def run_serialization_test(self, obj):
        """config -> from_config -> config, and a JSON round trip."""
        config = obj.get_config()
        json.dumps(config)  # must be JSON-able as-is
        revived = type(obj).from_config(config)
        self.assertEqual(
            json.dumps(config, sort_keys=True, default=str),
            json.dumps(revived.get_config(), sort_keys=True, default=str),
        )
        serialized = keras.saving.serialize_keras_object(obj)
        revived = keras.saving.deserialize_keras_object(
            json.loads(json.dumps(serialized))
        )
        self.assertIsInstance(revived, type(obj))
        self.assertEqual(
            json.dumps(serialized, sort_keys=True, default=str),
            json.dumps(
                keras.saving.serialize_keras_object(revived),
                sort_keys=True,
                default=str,
            ),
        )
        return revived

    def run_layer_test(
        self,
        cls,
        init_kwargs,
        input_data,
        expected_output_shape,
        expected_num_trainable_weights=None,
        expected_num_non_trainable_weights=None,
        run_training_check=True,
    ):
        """Build, symbolic and eager shapes, serialization, one fit step."""
        layer = cls(**init_kwargs)
        self.run_serialization_test(layer)
        is_list = isinstance(input_data, (list, tuple))
        shapes = [x.shape for x in input_data] if is_list else input_data.shape
        layer.build(shapes)
        if expected_num_trainable_weights is not None:
            self.assertLen(
                layer.trainable_weights, expected_num_trainable_weights
            )
        if expected_num_non_trainable_weights is not None:
            self.assertLen(
                layer.non_trainable_weights, expected_num_non_trainable_weights
            )
        # A second layer built by its first call must create the same state.
        fresh = cls(**init_kwargs)
        inputs = (
            [keras.Input(batch_shape=s) for s in shapes]
            if is_list
            else keras.Input(batch_shape=shapes)
        )
        symbolic = fresh(inputs)
        eager = layer(input_data)
        flat_sym = symbolic if isinstance(symbolic, list) else [symbolic]
        flat_eager = eager if isinstance(eager, list) else [eager]
        expected = (
            expected_output_shape
            if isinstance(expected_output_shape, list)
            else [expected_output_shape]
        )
        for s, e, want in zip(flat_sym, flat_eager, expected):
            self.assertEqual(tuple(s.shape), tuple(want))
            self.assertEqual(tuple(e.shape), tuple(want))
        self.assertLen(fresh.weights, len(layer.weights))
        if run_training_check:
            outputs = flat_sym
            model = keras.Model(inputs, outputs)
            model.compile(optimizer="sgd", loss="mse")
            targets = [np.zeros(tuple(o.shape), "float32") for o in flat_eager]
            x = list(input_data) if is_list else input_data
            y = targets if len(targets) > 1 else targets[0]
            history = model.fit(
                x, y, epochs=1, batch_size=len(flat_eager[0]), verbose=0
            )
            self.assertTrue(np.isfinite(history.history["loss"][0]))
        return layer

    def run_backbone_test(
        self,
        cls,
        init_kwargs,
        input_data,
        expected_output_shape,
        expected_pyramid_shapes=None,
    ):
        """Serialization, eager call, predict on arrays, pyramid strides."""
        backbone = cls(**init_kwargs)
        self.run_serialization_test(backbone)
        output = backbone(input_data)
        self.assertEqual(tuple(output.shape), tuple(expected_output_shape))
        predicted = backbone.predict(input_data, verbose=0)
        self.assertAllClose(output, predicted, atol=1e-5)
        if expected_pyramid_shapes is not None:
            got = {
                k: tuple(v.shape[1:3])
                for k, v in backbone.pyramid_outputs.items()
            }
            self.assertEqual(got, expected_pyramid_shapes)
        height, width = input_data.shape[1:3]
        for level, tensor in backbone.pyramid_outputs.items():
            stride = 2 ** int(level[1:])
            self.assertEqual(
                tuple(tensor.shape[1:3]), (height // stride, width // stride)
            )
        paths = [v.path for v in backbone.weights]
        self.assertLen(set(paths), len(paths), "variable paths must be unique")
        return backbone

    def run_estimator_test(
        self, model, input_data, train_targets, sample_weight
    ):
        """fit one step, finite gradients, predict decodes, compile needed.

        On TensorFlow the step runs eagerly: what it proves (every
        variable gets a gradient, nothing becomes NaN) does not depend on
        tracing, and tracing Adam's update of a tiny model takes a minute
        on a 2-core CPU. Each family proves its traced fit once, on the
        data pipeline. (Eager JAX is slower than its compiled step.)
        """
        import kerapose.zoo as zoo  # noqa: F401

        uncompiled = keras.saving.deserialize_keras_object(
            keras.saving.serialize_keras_object(model)
        )
        with self.assertRaisesRegex(ValueError, "compile"):
            uncompiled.fit(input_data, train_targets, verbose=0)

        model.compile(run_eagerly=keras.backend.backend() == "tensorflow")
        before = [to_numpy(v).copy() for v in model.trainable_weights]
        history = model.fit(
            input_data,
            train_targets,
            sample_weight=sample_weight,
            batch_size=len(input_data),
            epochs=1,
            verbose=0,
        )
        self.assertTrue(np.isfinite(history.history["loss"][0]))
        changed = [
            not np.array_equal(b, to_numpy(v))
            for b, v in zip(before, model.trainable_weights)
        ]
        # Every trainable variable received a gradient and moved.
        dead = _biases_before_batch_norm(model)
        unchanged = [
            v.path
            for v, c in zip(model.trainable_weights, changed)
            if not c and v.path not in dead
        ]
        self.assertEqual(unchanged, [], "variables without gradient")
        for v in model.weights:
            self.assertTrue(np.all(np.isfinite(to_numpy(v))), v.path)
        out = model.predict(input_data, verbose=0)
        batch = len(input_data)
        self.assertEqual(
            out["keypoints"].shape, (batch, model.num_keypoints, 2)
        )
        self.assertEqual(out["scores"].shape, (batch, model.num_keypoints))
        return out

    def run_model_saving_test(self, model, input_data, atol=1e-5):
        """`.keras` round trip keeps the class and the outputs."""
        expected = to_numpy(model(input_data, training=False))
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "model.keras")
            model.save(path)
            revived = keras.models.load_model(path)
        self.assertIsInstance(revived, type(model))
        self.assertAllClose(
            revived(input_data, training=False), expected, atol=atol
        )
        return revived


def _biases_before_batch_norm(model):
    """Paths of conv biases that a training-mode BatchNorm cancels.

    Their gradient is zero in exact arithmetic (BN subtracts the batch
    mean), so whether Adam moves them depends on round-off: on the CPU's
    kernels and on eager versus traced execution. They are not checked.
    """
    from kerapose.layers import ConvBNAct

    biases = [
        getattr(layer.conv, "bias", None)
        for layer in model._flatten_layers()
        if isinstance(layer, ConvBNAct) and layer.use_bias
    ]
    return {b.path for b in biases if b is not None}


def assert_matches_keras_layer(ours, theirs, x, atol=1e-5):
    """`ours` (a kerapose drop-in for a Keras layer) and `theirs` (the
    Keras layer) give the same outputs on `x` with `ours`'s weights, and
    name their weights alike."""
    y = keras.ops.convert_to_numpy(ours(x))
    theirs.build(x.shape)
    theirs.set_weights(ours.get_weights())
    expected = keras.ops.convert_to_numpy(theirs(x))
    assert y.shape == expected.shape
    np.testing.assert_allclose(y, expected, atol=atol)
    assert [w.path.split("/")[-1] for w in ours.weights] == [
        w.path.split("/")[-1] for w in theirs.weights
    ]
