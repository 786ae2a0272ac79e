#!/usr/bin/env bash
# Usage: scripts/device_sweep.sh sentiment|pos
# Runs a task's sweep on a GPU machine that has PyTorch but no spaCy/gensim/jieba: `prepare` ran beforehand
# on a CPU machine and runs/<task>/prepared travels with the tree. Results land in $OUT (or
# ./runs/<task>/device): logs and metrics of every config, and the chosen and the most accurate checkpoints
# as tar parts under 16 MB (reassemble with `cat chosen.tar.part* | tar x`).
set -euo pipefail
task=${1:?task: sentiment or pos}
out=${OUT:-runs/$task/device}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
nvidia-smi -L || true
sweep=${SWEEP_DIR:-/tmp/senpos-sweep-$task}
python3 -m training.sweep "$task" --prepared "${PREPARED:-runs/$task/prepared}" --out "$sweep" --threads 1 \
    --time-budget-s "${TIME_BUDGET_S:-300}" ${ONLY:+--only $ONLY} 2>&1 | tee "$out/sweep_stdout.txt"
cd "$sweep"
tar czf "$out/runs.tar.gz" sweep.json */log.txt */metrics.json */training_curves.png
chosen=$(python3 -c "import json; print(json.load(open('sweep.json'))['chosen'])")
best=$(python3 -c "import json; r=json.load(open('sweep.json'))['results']; print(max((x for x in r if 'accuracy' in x), key=lambda x: x['accuracy'])['name'])")
if [ -z "${BEST_ONLY:-}" ]; then tar cf - "$chosen/checkpoint.pt" | split -b 15M - "$out/chosen.tar.part"; fi
if [ "$best" != "$chosen" ] || [ -n "${BEST_ONLY:-}" ]; then
    tar cf - "$best/checkpoint.pt" | split -b 15M - "$out/best.tar.part"
fi
ls -la "$out"
