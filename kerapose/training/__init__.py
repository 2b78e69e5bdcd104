"""Training recipes shared by `kerapose train` and the examples: one
`model.fit` loop for top-down, bottom-up and single-stage models, with
resume, best / last weights, a CSV log and COCO AP.

Names are imported on first access, so the command line can read
`kerapose.training.recipes` before it pays for importing Keras.
"""

import importlib

_EXPORTS = {
    "BestCheckpoint": "callbacks",
    "EvalCallback": "callbacks",
    "FillMissingMetrics": "callbacks",
    "backup_epoch": "callbacks",
    "best_logged": "callbacks",
    "step_schedule": "callbacks",
    "RECIPE_DEFAULTS": "recipes",
    "TrainSettings": "run",
    "train": "run",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        module = importlib.import_module(f"{__name__}.{_EXPORTS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
