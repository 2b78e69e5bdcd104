#!/usr/bin/env bash
# Test time of some files in an earlier commit and in this checkout, run
# alternately on one machine (TensorFlow backend, `-m "not large"`).
#
#   bash bench/suite_ab.sh 1a6c14f [TEST_FILE ...]
#
# Run it in the project's venv. The earlier tree is unpacked next to this
# checkout (git archive), so both see the same ../shared.
set -euo pipefail
cd "$(dirname "$0")/.."
here=$(pwd)
rev=${1:?usage: bench/suite_ab.sh REV [TEST_FILE ...]}
shift
files=("$@")
if ((${#files[@]} == 0)); then
    files=(tests/models/test_rsn.py tests/models/test_omnipose_backbone.py
        tests/distribute/test_distribution.py)
fi
before="$here/../kerapose_$rev"
mkdir -p "$before"
git archive "$rev" | tar -x -C "$before"

for f in "${files[@]}"; do
    for tree in "$before" "$here"; do
        label=$([[ $tree == "$here" ]] && echo now || echo "$rev")
        start=$SECONDS
        (cd "$tree" && KERAS_BACKEND=tensorflow python -m pytest -q \
            -p no:cacheprovider "$f" -m "not large" --durations=5 2>&1 |
            grep -E "s (call|setup)|passed|failed" | sed "s|^|$label: |")
        echo "$label $f: $((SECONDS - start)) s"
    done
done
