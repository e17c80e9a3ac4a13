#!/usr/bin/env bash
# bench/gpu.sh [--device cuda|cpu] [bench/gpu.py options]: the GPU figures of issue 11 in < 8 min.
#
# On a GPU machine (run from the repository root):
#   1. picks a Python: $PYTHON if set; else python3 when its torch already sees a CUDA device (a
#      GPU image; raviso then runs from this checkout via PYTHONPATH, no install); else installs
#      raviso into .venv-gpu with PyPI's default torch wheel (CUDA-enabled on Linux x86_64);
#   2. prints nvidia-smi's view of the device;
#   3. runs bench/gpu.py (under RAVISO_GPU_TIMEOUT seconds, default 420): paper-VAE training
#      steps (bf16 autocast and torch.compile as `raviso pretrain --gpu`; --amp, --compile)
#      with where a step's time goes (fetch, forward+backward, optimizer), a 2-fold CV at GTEx
#      width with raviso's own variants (mean, vae_ffnn, share_net), and the store's read rate
#      on the node's cores; samples/s, MFU, the GEMM bound and peak GPU memory; the last line
#      is one JSON object (--json-out FILE also writes it after each phase).
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
if [ -n "${PYTHON:-}" ]; then
  PY="$PYTHON"
elif [ "$DEVICE" = cuda ] && python3 -c "import torch, sys; sys.exit(not torch.cuda.is_available())" 2>/dev/null; then
  PY=python3
elif [ "$DEVICE" = cuda ] && [ "${RAVISO_GPU_SKIP_INSTALL:-0}" != 1 ]; then
  start=$(date +%s)
  python3 -m venv .venv-gpu
  .venv-gpu/bin/pip install -q --upgrade pip
  .venv-gpu/bin/pip install -q torch -e .
  PY=.venv-gpu/bin/python
  echo "install: $(( $(date +%s) - start )) s" >&2
else
  PY=.venv/bin/python
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [ "$DEVICE" = cuda ] && command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv >&2 || true
fi
echo "python: $PY ($("$PY" -c 'import torch; print("torch", torch.__version__)'))" >&2
export GLIBC_TUNABLES="${GLIBC_TUNABLES:-glibc.malloc.hugetlb=1}"
exec timeout "${RAVISO_GPU_TIMEOUT:-420}" "$PY" -m bench.gpu --device "$DEVICE" "${ARGS[@]+"${ARGS[@]}"}"
