#!/usr/bin/env bash
# The whole check: lint, then the test suite on the TensorFlow, JAX and
# PyTorch backends. Extra arguments go to every pytest run.
#
# Each pass ends with its 25 slowest tests, and the run with the time of
# each pass and the CPU it ran on. Budget: 30 minutes for the whole
# .ci/run on a Xeon-class 2-core machine (CI stops at 90 minutes on any
# machine, and an AMD EPYC one is up to 2.4x slower); past it, the last
# line says so. BENCHMARKS.md ("Test suite") has the measured times.
set -euo pipefail
cd "$(dirname "$0")/.."

BUDGET_SECONDS=1800
start=$SECONDS

ruff check kerapose tests bench examples zoo
ruff format --check kerapose tests bench examples zoo

times=()
for backend in tensorflow jax torch; do
    echo "=== pytest, KERAS_BACKEND=$backend ==="
    pass_start=$SECONDS
    KERAS_BACKEND=$backend python -m pytest -q -p no:cacheprovider \
        --durations=25 --durations-min=1.0 "$@"
    times+=("$backend $((SECONDS - pass_start)) s")
done

cpu=$(grep -m1 "model name" /proc/cpuinfo 2>/dev/null | cut -d: -f2- || true)
echo "=== suite time on${cpu:- an unknown CPU} ($(nproc) cores) ==="
printf '%s\n' "${times[@]}"
total=$((SECONDS - start))
echo "lint + 3 backends: ${total} s"
if ((total > BUDGET_SECONDS)); then
    echo "over the ${BUDGET_SECONDS} s budget: see the slowest tests above"
fi
