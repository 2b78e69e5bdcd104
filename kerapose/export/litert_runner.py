"""Running a .tflite file in the LiteRT interpreter, one image at a time."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from kerapose.export.flatbuffer_ops import operator_names


class LiteRTModel:
    """A .tflite file loaded in `ai_edge_litert`'s interpreter.

    Args:
        path: the `.tflite` file.
        num_threads: int. CPU threads of the interpreter. Defaults to `1`.

    Raises:
        ImportError: `ai-edge-litert` is not installed.
        FileNotFoundError: no such file.
        ValueError: the file is not a loadable TFLite model.
    """

    def __init__(self, path: str | os.PathLike, num_threads: int = 1):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as e:
            raise ImportError(
                "Running .tflite files needs the LiteRT interpreter: "
                "`pip install 'kerapose[litert]'` (ai-edge-litert)."
            ) from e
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"No .tflite file at {self.path}")
        content = self.path.read_bytes()
        try:
            self.operators = operator_names(content)
            self.interpreter = Interpreter(
                model_content=content, num_threads=num_threads
            )
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise ValueError(
                f"{self.path} is not a loadable TFLite model ({e}). "
                "Export it again."
            ) from e
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]

    @property
    def input_shape(self) -> tuple:
        return tuple(int(s) for s in self.input["shape"])

    def run_one(self, image: np.ndarray) -> np.ndarray:
        """Runs one (1, H, W, C) float32 input; returns the first output."""
        x = np.asarray(image, np.float32)
        if x.shape != self.input_shape:
            raise ValueError(
                f"{self.path.name} takes inputs of shape {self.input_shape}; "
                f"received {x.shape}."
            )
        if self.input["dtype"] != np.float32:
            scale, zero = self.input["quantization"]
            info = np.iinfo(self.input["dtype"])
            x = np.clip(np.round(x / scale + zero), info.min, info.max)
            x = x.astype(self.input["dtype"])
        self.interpreter.set_tensor(self.input["index"], x)
        self.interpreter.invoke()
        y = self.interpreter.get_tensor(self.output["index"])
        if self.output["dtype"] != np.float32:
            scale, zero = self.output["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        return np.array(y)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Runs (N, H, W, C) images one by one; returns (N, ...) outputs."""
        return np.concatenate([self.run_one(x[None]) for x in images])
