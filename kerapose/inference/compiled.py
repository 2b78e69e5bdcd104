"""Run a keras.ops function compiled, on any backend.

A function of tensors wrapped in a weightless `keras.Model` and run with
`predict_on_batch` is traced once per input shape by Keras' own predict
loop: `tf.function` on TensorFlow, `jax.jit` on JAX (eager on PyTorch).
Eager decoding of large maps costs more than the network on JAX.
"""

import collections

import keras

_CACHE_ATTR = "_kerapose_compiled"


class _Shared:
    """Owner of the compiled functions of stateless decoders (the key says
    all that the function does)."""


_SHARED = _Shared()


class _Function(keras.Model):
    def __init__(self, fn, name):
        super().__init__(name=name)
        self._fn = fn

    def call(self, inputs):
        return self._fn(inputs)


def _shapes(tree):
    if isinstance(tree, (list, tuple)):
        return tuple(_shapes(t) for t in tree)
    return tuple(tree.shape)


def attached(owner, attr, factory):
    """`owner.<attr>`, made by `factory()` on first use.

    Kept past Keras' attribute tracking (not a layer or a weight), so a
    cache lives and dies with the model it serves.
    """
    value = owner.__dict__.get(attr)
    if value is None:
        value = factory()
        object.__setattr__(owner, attr, value)
    return value


def run_compiled(key, fn, inputs, owner=None, cache_size=8):
    """`fn(inputs)` through a compiled function kept on `owner`.

    Args:
        key: hashable, everything besides the input shapes that `fn`
            depends on (a decoder's config, options).
        fn: function of the (nested tuple of) tensors `inputs`.
        inputs: nested tuples of arrays.
        owner: the object the compiled functions live on (and die with),
            e.g. the model whose weights `fn` uses. `None`: a module-level
            cache, for functions without state.
        cache_size: compiled functions kept per owner, least recently used
            dropped (each input shape compiles its own).

    Returns:
        `fn`'s outputs as NumPy arrays.
    """
    owner = _SHARED if owner is None else owner
    cache = attached(owner, _CACHE_ATTR, collections.OrderedDict)
    full_key = (key, _shapes(inputs))
    if full_key in cache:
        cache.move_to_end(full_key)
    else:
        cache[full_key] = _Function(fn, name="compiled_decode")
        while len(cache) > cache_size:
            cache.popitem(last=False)
    out = cache[full_key].predict_on_batch(inputs)
    return keras.tree.map_structure(keras.ops.convert_to_numpy, out)
