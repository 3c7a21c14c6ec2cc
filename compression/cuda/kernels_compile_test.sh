#!/usr/bin/env bash
# The nvcc-built object exists and defines every host entry point of kernels.cuh.
set -euo pipefail
object="$1"
if [ ! -x /usr/local/cuda/bin/nvcc ]; then
  echo "SKIP: no CUDA toolkit at /usr/local/cuda on this machine"
  exit 0
fi
symbols="$(nm -C "$object")"
for f in FilterNorms FpgmDistanceSums FakeQuantize ActivationStatistics ApplyMask; do
  if ! grep -q "T autocompress::compression::cuda::$f(" <<<"$symbols"; then
    echo "missing host function $f in $object"
    exit 1
  fi
done
echo "kernels.o defines all CUDA entry points"
