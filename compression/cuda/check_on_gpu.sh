#!/usr/bin/env bash
# On a machine with an NVIDIA GPU and PyTorch (and no Bazel): builds the compression
# kernels against the LibTorch inside that PyTorch plus the CUDA kernels with nvcc,
# checks every CUDA kernel against the CPU one on random inputs, and times both.
# Paste the printed table, with the card's name, into benchmarks/RESULTS.md.
#
#   compression/cuda/check_on_gpu.sh            (from the repository root)
#   CUDA_ARCH=90 PYTHON=python3 OUT_DIR=/tmp/x  (optional overrides)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
TORCH="$("$PY" -c 'import os, torch; print(os.path.dirname(torch.__file__))')"
ABI="$("$PY" -c 'import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))')"
NVCC="${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}"
CUDA_HOME="${CUDA_HOME:-$(dirname "$(dirname "$NVCC")")}"
ARCH="${CUDA_ARCH:-90}"
OUT="${OUT_DIR:-$(mktemp -d)}"
mkdir -p "$OUT"

echo "torch: $TORCH (cxx11 abi $ABI); nvcc: $NVCC; arch sm_$ARCH" >&2
"$NVCC" -std=c++17 -O3 -gencode "arch=compute_$ARCH,code=sm_$ARCH" -Xcompiler -fPIC \
  -c compression/cuda/kernels.cu -o "$OUT/kernels.o"
g++ -std=c++17 -O3 -fopenmp -D_GLIBCXX_USE_CXX11_ABI="$ABI" -DAUTOCOMPRESS_WITH_CUDA \
  -I"$ROOT" -I"$TORCH/include" -I"$TORCH/include/torch/csrc/api/include" -I"$CUDA_HOME/include" \
  compression/kernels/prune_kernels.cc compression/kernels/quant_kernels.cc \
  compression/cuda/cuda_dispatch.cc compression/cuda/gpu_check.cc "$OUT/kernels.o" \
  -L"$TORCH/lib" -Wl,-rpath,"$TORCH/lib" -ltorch -ltorch_cpu -ltorch_cuda -lc10 -lc10_cuda \
  -L"$CUDA_HOME/lib64" -Wl,-rpath,"$CUDA_HOME/lib64" -lcudart -o "$OUT/gpu_check"
"$OUT/gpu_check"
