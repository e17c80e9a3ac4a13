#!/usr/bin/env bash
# bench/gpu.sh [--device cuda|cpu] [bench/gpu.py options]: the GPU figures of issue 11 in < 8 min.
#
# On a fresh GPU machine (run from the repository root):
#   1. installs raviso into .venv-gpu with PyPI's default torch wheel (CUDA-enabled on Linux x86_64)
#      unless RAVISO_GPU_SKIP_INSTALL=1 (then $PYTHON, default .venv/bin/python, is used as is);
#   2. prints nvidia-smi's view of the device;
#   3. runs bench/gpu.py: paper-VAE training steps (bf16 autocast, device-resident batches) and a
#      2-fold CV of the latent FFNN at GTEx width (17,356 x 156,958, float16 targets resident on the
#      device), printing samples/s, MFU and peak GPU memory; the last line is one JSON object.
# `--device cpu` is the dry run the test suite executes: the same code at toy sizes, no install.
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE=cuda
ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE="$2"; shift 2 ;;
    --device=*) DEVICE="${1#--device=}"; shift ;;
    *) ARGS+=("$1"); shift ;;
  esac
done
PY="${PYTHON:-.venv/bin/python}"
if [ "$DEVICE" = cuda ] && [ "${RAVISO_GPU_SKIP_INSTALL:-0}" != 1 ]; then
  start=$(date +%s)
  python3 -m venv .venv-gpu
  .venv-gpu/bin/pip install -q --upgrade pip
  .venv-gpu/bin/pip install -q torch -e .
  PY=.venv-gpu/bin/python
  echo "install: $(( $(date +%s) - start )) s" >&2
fi
if [ "$DEVICE" = cuda ] && command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >&2 || true
fi
export GLIBC_TUNABLES="${GLIBC_TUNABLES:-glibc.malloc.hugetlb=1}"
exec timeout 420 "$PY" -m bench.gpu --device "$DEVICE" "${ARGS[@]+"${ARGS[@]}"}"
