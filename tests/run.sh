#!/usr/bin/env bash
# The whole check: lint, then the test suite on the TensorFlow, JAX and
# PyTorch backends. Extra arguments go to every pytest run.
set -euo pipefail
cd "$(dirname "$0")/.."

ruff check kerapose tests bench examples zoo
ruff format --check kerapose tests bench examples zoo

for backend in tensorflow jax torch; do
    echo "=== pytest, KERAS_BACKEND=$backend ==="
    KERAS_BACKEND=$backend python -m pytest -q -p no:cacheprovider "$@"
done
