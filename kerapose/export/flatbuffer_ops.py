"""Which operators a .tflite flatbuffer uses, read from its schema."""

from __future__ import annotations

from tensorflow.lite.python import schema_py_generated as schema

_BUILTIN_NAMES = {
    code: name
    for name, code in vars(schema.BuiltinOperator).items()
    if not name.startswith("_")
}


def operator_names(model_content: bytes) -> list[str]:
    """Sorted names of the operators used: builtins or custom/Flex names.

    Raises:
        ValueError: the bytes are not a TFLite flatbuffer.
    """
    if len(model_content) < 8 or model_content[4:8] != b"TFL3":
        raise ValueError(
            "Not a TFLite flatbuffer (no 'TFL3' identifier): the file is "
            "corrupt, truncated or of another format."
        )
    try:
        return _operator_names(model_content)
    except Exception as e:  # flatbuffers raises struct.error, IndexError...
        raise ValueError(
            f"Corrupt TFLite flatbuffer ({type(e).__name__}: {e}); the file "
            "is truncated or damaged."
        ) from e


def _operator_names(model_content):
    model = schema.Model.GetRootAsModel(model_content, 0)
    names = set()
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        # Codes above 127 live in the extended field (schema v3a).
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if builtin == schema.BuiltinOperator.CUSTOM:
            names.add(code.CustomCode().decode())
        else:
            names.add(_BUILTIN_NAMES.get(builtin, f"BUILTIN_{builtin}"))
    return sorted(names)


def non_builtin_operators(model_content: bytes) -> list[str]:
    """Flex (select TensorFlow) and custom operators, which mobile
    runtimes without the Flex delegate cannot run."""
    builtins = set(_BUILTIN_NAMES.values())
    return [n for n in operator_names(model_content) if n not in builtins]
