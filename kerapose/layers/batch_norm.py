import functools

import keras
from keras import layers
from keras import ops

from kerapose.api_export import kerapose_export


# One function per (epsilon, axes), not one per training call.
@functools.lru_cache(maxsize=None)
def _normalize_fn(epsilon, axes):
    """`x * a + (beta - mean * a)`, `a = gamma / sqrt(var + epsilon)`, with
    the analytic batch-norm gradient: `mean` and `var` are the batch
    statistics of `x` passed in, and their dependence on `x` is part of the
    gradient of `x` (theirs is zero)."""

    @ops.custom_gradient
    def normalize(x, gamma, beta, mean, var):
        inv = ops.rsqrt(var + epsilon)
        a = gamma * inv
        y = x * a + (beta - mean * a)

        def grad(*args, upstream=None):
            # TensorFlow and JAX pass the upstream gradient alone, PyTorch
            # as a keyword after the inputs.
            dy = args[0] if upstream is None else upstream
            count = ops.cast(ops.size(x) // ops.size(mean), x.dtype)
            sum_dy = ops.sum(dy, axis=axes)
            sum_dy_x = ops.sum(dy * x, axis=axes)
            dgamma = inv * (sum_dy_x - mean * sum_dy)
            # dx = a * (dy - mean(dy) - xhat * mean(dy * xhat)), expanded so
            # that x and dy are each read once.
            c = dgamma * inv / count
            dx = dy * a + (x * (-a * c) + a * (mean * c - sum_dy / count))
            return dx, dgamma, sum_dy, ops.zeros_like(mean), ops.zeros_like(var)

        return y, grad

    return normalize


@kerapose_export("kerapose.layers.BatchNormalization")
class BatchNormalization(layers.BatchNormalization):
    """`keras.layers.BatchNormalization` whose training step PyTorch runs
    at the speed of its own batch norm. Same weights, names and outputs.

    Keras's batch norm in training is a chain of generic operations; XLA
    (JAX) and TensorFlow's graph fuse it, but PyTorch runs it op by op,
    each a pass over the activations, and its backward pass is autograd's
    chain of each op's gradient. On PyTorch this layer computes the batch
    statistics without gradient and normalizes with the analytic gradient
    (two reductions and one elementwise expression), which about halves
    the batch-norm time of a training step (BENCHMARKS.md, "Where
    training-step time goes"). Moving statistics are updated as Keras
    does. Inference, masks, renorm and synchronized statistics run the
    Keras layer unchanged.
    """

    def call(self, inputs, training=None, mask=None):
        if (
            not (training and self.trainable)
            or mask is not None
            or self.renorm
            or self.synchronized
            or keras.backend.backend() != "torch"
            # Per-channel vectors broadcast against the last axis only.
            or list(self._reduction_axes) != list(range(len(inputs.shape) - 1))
        ):
            return super().call(inputs, training=training, mask=mask)
        axes = tuple(self._reduction_axes)
        x = ops.cast(inputs, keras.backend.result_type(inputs.dtype, "float32"))
        mean, var = ops.moments(ops.stop_gradient(x), axes=axes)
        normalize = _normalize_fn(self.epsilon, axes)
        gamma = (
            ops.cast(self.gamma, x.dtype) if self.scale else ops.ones_like(mean)
        )
        beta = (
            ops.cast(self.beta, x.dtype)
            if self.center
            else ops.zeros_like(mean)
        )
        outputs = normalize(x, gamma, beta, mean, var)
        self.moving_mean.assign(
            self.moving_mean * self.momentum + mean * (1.0 - self.momentum)
        )
        self.moving_variance.assign(
            self.moving_variance * self.momentum + var * (1.0 - self.momentum)
        )
        return ops.cast(outputs, self.compute_dtype)
