#!/usr/bin/env bash
# On a machine with an NVIDIA GPU and PyTorch (and no Bazel): builds the compression
# library against the LibTorch inside that PyTorch plus the CUDA kernels with nvcc, then
#   gpu_check          checks every CUDA kernel against the CPU one on random inputs and
#                      times both (share of device-to-device copy bandwidth);
#   gpu_session_check  runs all twelve algorithms as whole sessions on cuda:0 beside the
#                      CPU on the test models (written here by make_models.py).
# Paste both tables, with the card's name, into benchmarks/RESULTS.md.
#
#   compression/cuda/check_on_gpu.sh            (from anywhere)
#   DEPS_DIR=.gpu_deps                          Abseil and nlohmann/json for a machine
#                                               without them (bundle_deps.sh makes it)
#   CUDA_ARCH=90 PYTHON=python3 OUT_DIR=/tmp/x  (optional overrides)
#   COMPILE_ONLY=1                              no GPU: compile every source, link and
#                                               run nothing
#   CPU_DRY_RUN=1                               no GPU: build without CUDA and run
#                                               gpu_session_check on the CPU
#
# COMPILE_ONLY=1 is what `./dev test` runs (//compression/cuda:check_on_gpu_compile_test)
# so that a GPU session does not meet a compile error in our sources (link and run
# problems it cannot see; CPU_DRY_RUN=1 covers the session program's own): a CPU-only
# PyTorch lacks c10/cuda/impl/cuda_cmake_macros.h, which is then stood in for by an
# empty one.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
COMPILE_ONLY="${COMPILE_ONLY:-0}"
CPU_DRY_RUN="${CPU_DRY_RUN:-0}"
TORCH="$("$PY" -c 'import os, torch; print(os.path.dirname(torch.__file__))')"
TORCH_VERSION="$("$PY" -c 'import torch; print(torch.__version__)')"
ABI="$("$PY" -c 'import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))')"
NVCC="${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}"
# The toolkit beside nvcc, else /usr/local/cuda (nvcc may be a wrapper script elsewhere).
if [ -z "${CUDA_HOME:-}" ]; then
  CUDA_HOME="$(dirname "$(dirname "$(readlink -f "$NVCC")")")"
  [ -f "$CUDA_HOME/include/cuda_runtime.h" ] || CUDA_HOME=/usr/local/cuda
fi
OUT="${OUT_DIR:-$(mktemp -d)}"
mkdir -p "$OUT"

# The card's compute capability (9.0 -> 90) unless CUDA_ARCH says otherwise.
if [ -z "${CUDA_ARCH:-}" ] && command -v nvidia-smi >/dev/null 2>&1; then
  CUDA_ARCH="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null |
    head -n1 | tr -d ' .' || true)"
  [[ "$CUDA_ARCH" =~ ^[0-9]+$ ]] || CUDA_ARCH=""  # an error message, not a capability
fi
ARCH="${CUDA_ARCH:-90}"

# PyTorch 2.12 and later refuse anything older than C++20 in their headers.
STD=c++17
if echo 'int main() {}' | g++ -std=c++20 -x c++ -fsyntax-only - 2>/dev/null; then STD=c++20; fi

# Abseil and nlohmann/json: from DEPS_DIR (include/, lib/, absl_libs.txt), else the system.
if [ -n "${DEPS_DIR:-}" ]; then
  DEPS_DIR="$(cd "$DEPS_DIR" && pwd)"
  DEP_INCLUDES=(-isystem "$DEPS_DIR/include")
  read -r -a ABSL_LIBS <"$DEPS_DIR/absl_libs.txt"
  ABSL_LIBS=(-L"$DEPS_DIR/lib" -Wl,-rpath,"$DEPS_DIR/lib" "${ABSL_LIBS[@]}")
else
  DEP_INCLUDES=()
  read -r -a ABSL_LIBS <<<"$(pkg-config --libs absl_status absl_statusor absl_strings absl_synchronization)"
fi

INCLUDES=(-I"$ROOT" -isystem "$TORCH/include" -isystem "$TORCH/include/torch/csrc/api/include"
  "${DEP_INCLUDES[@]}")
DEFINES=()
if [ "$CPU_DRY_RUN" != 1 ]; then
  INCLUDES+=(-isystem "$CUDA_HOME/include")
  DEFINES+=(-DAUTOCOMPRESS_WITH_CUDA)
  if [ ! -f "$TORCH/include/c10/cuda/impl/cuda_cmake_macros.h" ]; then
    [ "$COMPILE_ONLY" = 1 ] || {
      echo "error: $TORCH is a CPU-only PyTorch (no c10/cuda/impl/cuda_cmake_macros.h)" >&2
      exit 1
    }
    mkdir -p "$OUT/shim/c10/cuda/impl"
    : >"$OUT/shim/c10/cuda/impl/cuda_cmake_macros.h"
    INCLUDES+=(-isystem "$OUT/shim")
  fi
fi

echo "torch $TORCH_VERSION at $TORCH (cxx11 abi $ABI), $STD; nvcc: $NVCC; arch sm_$ARCH" >&2
KERNEL_SOURCES=(compression/kernels/prune_kernels.cc compression/kernels/quant_kernels.cc)
SESSION_SOURCES=(compression/compression_session.cc compression/config_list.cc
  compression/algorithm_registry.cc compression/compressors.cc compression/pruner.cc
  compression/one_shot_pruners.cc compression/data_driven_pruners.cc compression/quantizers.cc
  compression/dependency.cc compression/graph_hooks.cc compression/pruning.cc
  compression/quantization.cc compression/torch_status.cc compression/module_modes.cc
  common/args.cc)
# The training library (worker/training) the session check fine-tunes with.
TRAINING_SOURCES=(worker/training/batcher.cc worker/training/cifar10_dataset.cc
  worker/training/dataset.cc worker/training/fine_tune.cc worker/training/idx_dataset.cc
  worker/training/random_dataset.cc worker/training/recipe.cc
  worker/training/saved_tensors_dataset.cc worker/training/trainer.cc)
CUDA_SOURCES=(compression/cuda/cuda_dispatch.cc)
SOURCES=("${KERNEL_SOURCES[@]}" "${SESSION_SOURCES[@]}" "${TRAINING_SOURCES[@]}"
  compression/cuda/gpu_session_check.cc)
[ "$CPU_DRY_RUN" = 1 ] || SOURCES+=("${CUDA_SOURCES[@]}" compression/cuda/gpu_check.cc)
CXXFLAGS=(-std="$STD" -O2 -fopenmp -D_GLIBCXX_USE_CXX11_ABI="$ABI" "${DEFINES[@]}"
  -Wall -Wno-unused-parameter -Wno-sign-compare "${INCLUDES[@]}")
[ "$COMPILE_ONLY" = 1 ] && CXXFLAGS+=(-fsyntax-only)

# Compile every translation unit at once (the GPU machine has 16 cores).
object() { echo "$OUT/$(basename "$1" .cc).o"; }
pids=()
if [ "$CPU_DRY_RUN" = 1 ]; then
  :
elif [ -x "$NVCC" ]; then
  "$NVCC" -std=c++17 -O3 -gencode "arch=compute_$ARCH,code=sm_$ARCH" -Xcompiler -fPIC \
    -c compression/cuda/kernels.cu -o "$OUT/kernels.o" &
  pids+=($!)
elif [ "$COMPILE_ONLY" != 1 ]; then
  echo "error: no nvcc at $NVCC (set NVCC or CUDA_HOME)" >&2
  exit 1
else
  echo "note: no nvcc at $NVCC; compiling the C++ sources only" >&2
fi
for src in "${SOURCES[@]}"; do
  g++ "${CXXFLAGS[@]}" -c "$src" -o "$(object "$src")" &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
if [ "$status" != 0 ]; then
  echo "error: compilation failed (messages above)" >&2
  exit 1
fi
if [ "$COMPILE_ONLY" = 1 ]; then
  echo "check_on_gpu: compiled ${#pids[@]} sources against torch $TORCH_VERSION (no GPU run)"
  exit 0
fi

library=()
for src in "${KERNEL_SOURCES[@]}" "${SESSION_SOURCES[@]}"; do library+=("$(object "$src")"); done
training=()
for src in "${TRAINING_SOURCES[@]}"; do training+=("$(object "$src")"); done
"$PY" compression/testdata/make_models.py "$OUT/models" >/dev/null

if [ "$CPU_DRY_RUN" = 1 ]; then
  g++ -fopenmp "${library[@]}" "${training[@]}" \
    "$(object compression/cuda/gpu_session_check.cc)" \
    -L"$TORCH/lib" -Wl,-rpath,"$TORCH/lib" -Wl,--no-as-needed -ltorch -ltorch_cpu -lc10 \
    -Wl,--as-needed "${ABSL_LIBS[@]}" -lz -o "$OUT/gpu_session_check"
  "$OUT/gpu_session_check" "$OUT/models" cpu
  exit
fi

# --no-as-needed: nothing here calls into libtorch_cuda directly, but without it loaded
# the CUDA backend is missing ("Could not run ... with arguments from the 'CUDA' backend").
TORCH_LIBS=(-L"$TORCH/lib" -Wl,-rpath,"$TORCH/lib" -Wl,--no-as-needed -ltorch -ltorch_cpu
  -ltorch_cuda -lc10 -lc10_cuda -Wl,--as-needed
  -L"$CUDA_HOME/lib64" -Wl,-rpath,"$CUDA_HOME/lib64" -lcudart)
library+=("$(object compression/cuda/cuda_dispatch.cc)" "$OUT/kernels.o")
g++ -fopenmp "${library[@]}" "$(object compression/cuda/gpu_check.cc)" "${TORCH_LIBS[@]}" \
  -o "$OUT/gpu_check"
g++ -fopenmp "${library[@]}" "${training[@]}" "$(object compression/cuda/gpu_session_check.cc)" \
  "${TORCH_LIBS[@]}" "${ABSL_LIBS[@]}" -lz -o "$OUT/gpu_session_check"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
status=0
"$OUT/gpu_check" || status=1
"$OUT/gpu_session_check" "$OUT/models" cuda:0 || status=1
exit "$status"
