#!/bin/sh
# Screen knee X-rays with this kit's model: sh screen.sh FOLDER_OR_FILES... [edge-infer options]
# Writes results.csv and heatmaps/ into a new dated folder under $KNEEOA_HOME/results (~/kneeoa/results).
set -u
KIT=$(cd "$(dirname "$0")" && pwd)
HOME_DIR=${KNEEOA_HOME:-"$HOME/kneeoa"}
VENV="$HOME_DIR/venv"
if [ $# -eq 0 ]; then
    echo "usage: sh screen.sh FOLDER_OR_FILES... [--format NAME]  (writes a CSV and heatmaps)" >&2
    exit 2
fi
if [ ! -x "$VENV/bin/edge-infer" ]; then
    echo "screen.sh: not installed in $VENV; run: sh $KIT/install.sh" >&2
    exit 1
fi
OUT="$HOME_DIR/results/$(date +%Y-%m-%d_%H%M%S)"
n=1
while ! mkdir -p "$HOME_DIR/results" || ! mkdir "$OUT" 2>/dev/null; do  # one folder per run, never shared
    n=$((n + 1))
    OUT="$HOME_DIR/results/$(date +%Y-%m-%d_%H%M%S)_$n"
    [ $n -lt 100 ] || { echo "screen.sh: cannot create a results folder in $HOME_DIR/results" >&2; exit 1; }
done
"$VENV/bin/edge-infer" --model "$KIT/model" --output "$OUT/results.csv" --heatmap-dir "$OUT/heatmaps" "$@"
status=$?
echo "results: $OUT/results.csv (heatmaps in $OUT/heatmaps)"
exit $status
