"""The export's backend check, before anything slow (Keras only)."""

import keras


def check_tensorflow_backend(what="TFLite export"):
    """Raises a RuntimeError that says how to export from JAX or torch."""
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise RuntimeError(
            f"{what} needs the TensorFlow backend; this process runs "
            f"KERAS_BACKEND={backend}. Save the model with "
            "`model.save('model.keras')` (training on any backend is fine), "
            "then in a new process with KERAS_BACKEND=tensorflow: "
            "`import kerapose.models` (registers kerapose's classes), "
            "`model = keras.models.load_model('model.keras')` and export it "
            "(or `kerapose export model.keras -o model.tflite`)."
        )
