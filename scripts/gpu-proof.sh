#!/usr/bin/env bash
# The GPU proof (python -m bench.gpu) on a bare NVIDIA machine with CUDA 13, cuDNN 9 and python3, and no network.
# The serving wheels come along in $WHEELS (built elsewhere with requirements/serve-gpu.txt, see README); they go
# into python3's own environment after any CPU onnxruntime is removed: the CPU and GPU builds are both the
# `onnxruntime` package and must never share an environment. The IMDB/PFR payloads come from $SENPOS_DATA.
#   WHEELS=.whl SENPOS_DATA=/data OUT=bench/results scripts/gpu-proof.sh [bench.gpu options]
set -euo pipefail
WHEELS=${WHEELS:-.whl}
OUT=${OUT:-bench/results}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
python3 -m pip uninstall -y -q onnxruntime 2>/dev/null || true
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir "$WHEELS"/*.whl
python3 -m pip list 2>/dev/null | grep -i '^onnxruntime' # exactly one line: onnxruntime-gpu
nvidia-smi -L || echo "no nvidia-smi: CPU only"
python3 -m bench.gpu --out "$OUT" "$@"
