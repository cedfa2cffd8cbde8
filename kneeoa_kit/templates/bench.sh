#!/bin/sh
# Benchmark every format of this kit's model on this device (latency, memory, cold start; no
# TensorFlow): sh bench.sh [--threads 1,4] [--min-time 2]. Saves bench.md and bench.json in a new
# dated folder under $KNEEOA_HOME/bench (~/kneeoa/bench).
set -u
KIT=$(cd "$(dirname "$0")" && pwd)
HOME_DIR=${KNEEOA_HOME:-"$HOME/kneeoa"}
VENV="$HOME_DIR/venv"
if [ ! -x "$VENV/bin/python" ]; then
    echo "bench.sh: not installed in $VENV; run: sh $KIT/install.sh" >&2
    exit 1
fi
OUT="$HOME_DIR/bench/$(date +%Y-%m-%d_%H%M%S)"
mkdir -p "$OUT" || exit 1
"$VENV/bin/python" -m kneeoa_bench --model "$KIT/model" --out "$OUT" "$@"
status=$?
echo "benchmark: $OUT/bench.md"
exit $status
