"""Module attributes imported on first access (PEP 562).

Keeps `import kerapose` and the `kerapose list` command free of Keras and
TensorFlow: a package names what lives where, and nothing is imported
until it is used.
"""

import importlib


def lazy_attributes(package, names):
    """`__getattr__` and `__dir__` for a package with lazy attributes.

    Args:
        package: the package's `__name__`.
        names: dict, public name -> the module that defines it.

    Returns:
        `(__getattr__, __dir__)`, to assign at the package's top level.
    """
    module = importlib.import_module(package)

    def __getattr__(name):
        if name in names:
            value = getattr(importlib.import_module(names[name]), name)
            setattr(module, name, value)  # found normally from now on
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(set(vars(module)) | set(names))

    return __getattr__, __dir__
