"""The fastest inference forward pass of a Keras model on each backend.

Keras runs a model on the PyTorch backend eagerly, layer by layer: every
layer call costs Python time, and every convolution copies its input and
its kernel between the NHWC layout of the model and the layout PyTorch's
kernels use. On this CPU that is about two thirds of HRNet-W32's time.
`FastForward` records the model's PyTorch operations once per input shape
(`torch.jit.trace`) and freezes the trace, which makes the weights
constants: the kernel re-layouts, the BatchNorm arithmetic on constants and
the Python overhead happen once, not per call. The outputs equal the eager
ones (same operations, same order).

On JAX it is the faster of one `jax.jit` program for the whole model and
one per layer with the graph walked in Python (XLA on CPU often makes a
slower program of a whole network than of its parts). On TensorFlow a
`tf.function` graph (XLA is slower on CPU for these networks,
BENCHMARKS.md "HRNet-W32 inference latency").
"""

import collections
import warnings

import keras
import numpy as np


def _to_numpy(tree):
    return keras.tree.map_structure(keras.ops.convert_to_numpy, tree)


class FastForward:
    """`model(x, training=False)` compiled for the active Keras backend.

    Always runs the model's current weights: on PyTorch, where a frozen
    trace holds the weights as constants, the traces are rebuilt when any
    variable has been written since (training, `load_weights`, `assign`).

    Args:
        model: a built Keras model.
        cache_size: traces kept, one per input shape (least recently used
            dropped). Defaults to `4`.

    Example:
    ```python
    model = kerapose.zoo.load("hrnet_w32", weights="default")
    forward = kerapose.inference.FastForward(model)
    heatmaps = forward(crops)  # (N, 64, 48, 17) NumPy array
    ```
    """

    def __init__(self, model, cache_size=4):
        self.model = model
        self.backend = keras.backend.backend()
        self.cache_size = int(cache_size)
        self._cache = collections.OrderedDict()
        self._weights_version = None

    def refresh(self):
        """Drops the compiled functions (they re-trace on the next call)."""
        self._cache.clear()

    def __call__(self, inputs):
        """Outputs of the model on `inputs` as NumPy arrays.

        Args:
            inputs: array (B, H, W, C) of the model's input dtype.
        """
        inputs = np.asarray(inputs)
        expected = self.model.input_shape
        if isinstance(expected, tuple) and (
            inputs.ndim != len(expected)
            or any(
                e is not None and e != s
                for e, s in zip(expected[1:], inputs.shape[1:])
            )
        ):
            raise ValueError(
                f"{self.model.name} expects inputs of shape {expected} "
                f"(None: any size); received {inputs.shape}. Resize the "
                "images to the model's input size first."
            )
        if self.backend == "torch":
            version = _torch_weights_version(self.model)
            if version != self._weights_version:
                self.refresh()
                self._weights_version = version
        key = (inputs.shape, str(inputs.dtype))
        if key in self._cache:
            self._cache.move_to_end(key)
        else:
            self._cache[key] = _BUILDERS[self.backend](self.model, inputs)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return _to_numpy(self._cache[key](inputs))


def _torch_weights_version(model):
    # PyTorch counts in-place writes per tensor; Keras assigns in place.
    return sum(v.value._version for v in model.variables)


def _torch_forward(model, example):
    import torch

    class _Call(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, x):
            return self.model(x, training=False)

    with torch.no_grad(), warnings.catch_warnings():
        # Shapes read as Python numbers are constants of the trace: that is
        # intended (one trace per input shape).
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        x = torch.from_numpy(example)
        traced = torch.jit.trace(
            _Call(model).eval(), x, strict=False, check_trace=False
        )
        # The trace's tensor types (dtype, device) are complete only
        # before freezing.
        torch._C._jit_pass_inline(traced.graph)
        _drop_identity_casts(traced.graph)
        frozen = torch.jit.freeze(traced)
        graph = frozen.graph
        torch._C._jit_pass_remove_mutation(graph)
        torch._C._jit_pass_constant_propagation(graph)
        _skip_double_copies(graph)
        _fold_batchnorm(graph)
        torch._C._jit_pass_dce(graph)

    def run(inputs):
        with torch.no_grad():
            return frozen(torch.from_numpy(inputs))

    return run


_CHANNELS_LAST = 2  # torch.channels_last as a TorchScript int


def _drop_identity_casts(graph):
    """Keras converts the input of every operation with `.to(...)`; the
    traced casts that change neither dtype nor device are identities, and
    they would hide a conv's BatchNorm from `_fold_batchnorm`."""
    for node in list(graph.nodes()):
        if node.kind() != "aten::to" or node.outputsSize() != 1:
            continue
        source, target = node.inputsAt(0).type(), node.output().type()
        try:
            same = (
                source.scalarType() is not None
                and source.scalarType() == target.scalarType()
                and source.device() == target.device()
            )
        except RuntimeError:  # not a tensor type
            continue
        last = node.inputsAt(node.inputsSize() - 1)
        if (
            same
            and last.node().kind() == "prim::Constant"
            and (
                last.toIValue() is None  # no memory format asked for
            )
        ):
            node.output().replaceAllUsesWith(node.inputsAt(0))
            node.destroy()


def _skip_double_copies(graph):
    """NHWC -> NCHW copy -> channels-last copy becomes one (usually free)
    channels-last `contiguous`: the NHWC tensor already is channels-last."""
    for node in list(graph.nodes()):
        if (
            node.kind() != "aten::contiguous"
            or node.inputsAt(1).toIValue() != _CHANNELS_LAST
        ):
            continue
        source = node.inputsAt(0).node()
        if (
            source.kind() == "aten::contiguous"
            and len(source.output().uses()) == 1
        ):
            node.replaceInput(0, source.inputsAt(0))
            source.destroy()


def _single_user(node, kind):
    uses = node.output().uses()
    if len(uses) != 1 or uses[0].user.kind() != kind:
        return None
    return uses[0].user


def _constant(value):
    node = value.node()
    return node.output().toIValue() if node.kind() == "prim::Constant" else None


def _channel_constant(node, index, channels):
    """The per-channel constant operand `index` of `node` (flattened), or
    None; for `aten::add` / `aten::subtract` only with alpha 1."""
    import torch

    value = _constant(node.inputsAt(index))
    if (
        not isinstance(value, torch.Tensor)
        or value.numel() != channels
        or value.shape[-1] != channels  # broadcasts along NHWC channels
    ):
        return None
    if node.kind() in ("aten::add", "aten::subtract") and (
        _constant(node.inputsAt(2)) != 1
    ):
        return None
    return value.reshape(-1)


def _fold_batchnorm(graph):
    """conv [-> + bias] -> (x - mean) * scale + beta with constant
    statistics becomes the conv with scaled weights and one bias
    (inference BatchNorm folding). Every constant kernel is stored in
    channels-last memory, the layout the CPU kernels take."""
    import torch

    for conv in list(graph.nodes()):
        if conv.kind() != "aten::_convolution":
            continue
        weight = _constant(conv.inputsAt(1))
        transposed = _constant(conv.inputsAt(6))
        if not isinstance(weight, torch.Tensor) or transposed:
            continue
        channels = weight.shape[0]
        bias = _constant(conv.inputsAt(2))
        bias = (
            torch.zeros(channels, dtype=weight.dtype) if bias is None else bias
        )
        scale = torch.ones(channels, dtype=weight.dtype)
        permute = _single_user(conv, "aten::permute")
        head = None  # the last node folded into the conv
        if permute is not None and _constant(permute.inputsAt(1)) == [
            0,
            2,
            3,
            1,
        ]:
            head = permute
            after_bias = _single_user(head, "aten::add")
            extra = after_bias and _channel_constant(after_bias, 1, channels)
            if extra is not None:
                bias, head = bias + extra, after_bias
            # Casts left by `_drop_identity_casts` change the dtype: no
            # folding across them.
            sub = _single_user(head, "aten::subtract")
            mul = sub and _single_user(sub, "aten::mul")
            add = mul and _single_user(mul, "aten::add")
            statistics = add and [
                _channel_constant(sub, 1, channels),
                _channel_constant(mul, 1, channels),
                _channel_constant(add, 1, channels),
            ]
            if statistics and all(t is not None for t in statistics):
                mean, scale, beta = statistics
                bias = (bias - mean) * scale + beta
                head = add
        graph.setInsertPoint(conv)
        # A channel slice of an NHWC tensor is no dense channels-last
        # input; a compact copy runs the fast kernel (a no-op otherwise).
        compact = graph.create(
            "aten::contiguous",
            [conv.inputsAt(0), graph.insertConstant(_CHANNELS_LAST)],
        )
        graph.insertNode(compact)
        conv.replaceInput(0, compact.output())
        conv.replaceInput(
            1,
            graph.insertConstant(
                (weight * scale.reshape(-1, 1, 1, 1)).contiguous(
                    memory_format=torch.channels_last
                )
            ),
        )
        conv.replaceInput(2, graph.insertConstant(bias))
        if head is not None and head is not permute:
            head.output().replaceAllUsesWith(permute.output())
    graph.setInsertPoint(graph.return_node())


def _is_graph(layer):
    """A functional model whose `call` is the plain graph walk."""
    return (
        hasattr(layer, "_run_through_graph")
        and getattr(type(layer).call, "__qualname__", "") == "Functional.call"
    )


def _jax_forward(model, example):
    """The faster, on `example`, of two programs with the same outputs:
    the whole model under one `jax.jit`, or the model's graph walked in
    Python with each layer compiled on its own.

    XLA on CPU sometimes makes a whole HRNet-like network into a program
    much slower than the sum of its layers compiled one by one (at batch 1:
    OmniPose-Lite 730 ms against 100, HigherHRNet-W32 1420 against 770),
    and sometimes the reverse (YOLO-Pose s6 198 against 248); one timed
    call of each decides.
    """
    import time

    import jax

    candidates = [_whole_jit(model)]
    if _is_graph(model):
        compiled = {}

        def operation(op):
            fn = compiled.get(id(op))
            if fn is None:
                fn = _graph_walker(op, operation) if _is_graph(op) else None
                fn = fn or _jitted_layer(op)
                compiled[id(op)] = fn
            return fn

        candidates.append(operation(model))
    if len(candidates) == 1:
        return candidates[0]
    times = []
    for fn in candidates:
        jax.block_until_ready(fn(example))  # compiles
        start = time.perf_counter()
        jax.block_until_ready(fn(example))
        times.append(time.perf_counter() - start)
    return candidates[times.index(min(times))]


def _whole_jit(model):
    import jax

    @jax.jit
    def call(trainable, non_trainable, x):
        return model.stateless_call(trainable, non_trainable, x)[0]

    return lambda inputs: call(
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        inputs,
    )


def _graph_walker(model, operation):
    def run(*args, **kwargs):
        inputs = args[0] if len(args) == 1 else list(args)
        return model._run_through_graph(inputs, operation_fn=operation)

    return run


def _jitted_layer(layer):
    import jax

    is_layer = isinstance(layer, keras.layers.Layer)
    by_options = {}

    def build(kwargs):
        # Call options (`training`, flags) are constants of the program.
        if not is_layer:  # a keras.ops operation of a functional graph
            return jax.jit(lambda *a: layer(*a, **kwargs))
        stateless = jax.jit(
            lambda trainable, non_trainable, *a: layer.stateless_call(
                trainable, non_trainable, *a, **kwargs
            )[0]
        )
        return lambda *a: stateless(
            [v.value for v in layer.trainable_variables],
            [v.value for v in layer.non_trainable_variables],
            *a,
        )

    def run(*args, **kwargs):
        key = repr(sorted(kwargs.items()))
        if key not in by_options:
            by_options[key] = build(kwargs)
        return by_options[key](*args)

    return run


def _tensorflow_forward(model, example):
    import tensorflow as tf

    fn = tf.function(lambda x: model(x, training=False), jit_compile=False)
    return lambda inputs: fn(tf.convert_to_tensor(inputs))


_BUILDERS = {
    "torch": _torch_forward,
    "jax": _jax_forward,
    "tensorflow": _tensorflow_forward,
}
