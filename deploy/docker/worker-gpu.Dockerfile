# syntax=docker/dockerfile:1
#
# The `autocompress-worker-gpu` image: worker_server built against the CUDA LibTorch of a
# PyTorch image, for the worker DaemonSet on GPU nodes (k8s/overlays/gpu).
#
#   docker build -f deploy/docker/worker-gpu.Dockerfile -t autocompress-worker-gpu:dev .
#
# As compression/cuda/check_on_gpu.sh does on a GPU machine, the C++ is compiled against
# the LibTorch inside PyTorch (its include/ and lib/), not Debian's CPU-only one. The
# gRPC, protobuf and Abseil it links are Debian bookworm's, so the worker is built on
# Debian (`builder`, the packages of ./dev setup) and runs on debian:bookworm-slim with
# PyTorch's libraries copied in (`torch` stage): torch/lib and the CUDA libraries PyTorch
# wheels carry under site-packages/nvidia/, in the same relative layout so that their
# $ORIGIN run paths hold. The GPU driver comes from the node (NVIDIA container toolkit).
#
# Two limits of this build (k8s/README.md says the same):
# - The PyTorch must use the C++11 ABI, as Debian's libraries do: PyTorch 2.7 and later
#   wheels (the `torch` stage checks torch._C._GLIBCXX_USE_CXX11_ABI and fails otherwise).
# - Bazel has no CUDA toolchain here, so compression/cuda's fused kernels are not linked
#   in: compression/kernels falls back to composite LibTorch operations, which run on the
#   GPU through LibTorch's own CUDA kernels.
#
# Build arguments (also in k8s/README.md):
#   BASE_IMAGE     the CUDA-enabled PyTorch image LibTorch comes from (default
#                  pytorch/pytorch:2.7.1-cuda12.6-cudnn9-runtime); its CUDA must suit the
#                  nodes' driver
#   PYTHON         the Python of BASE_IMAGE that imports torch (default python)
#   DEBIAN_IMAGE   image of the build stage (default debian:bookworm)
#   RUNTIME_IMAGE  image of the final stage (default debian:bookworm-slim)
#   BAZEL_FLAGS    extra flags for `bazel build` (e.g. --cxxopt=-std=c++20, which
#                  PyTorch 2.12 and later need, or --jobs=16); empty by default

ARG BASE_IMAGE=pytorch/pytorch:2.7.1-cuda12.6-cudnn9-runtime
ARG DEBIAN_IMAGE=debian:bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# ---- torch: LibTorch (headers, libraries) and its CUDA libraries out of PyTorch -------------
FROM ${BASE_IMAGE} AS torch
ARG PYTHON=python
RUN set -eu; \
    site="$("${PYTHON}" -c 'import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))')"; \
    abi="$("${PYTHON}" -c 'import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))')"; \
    cuda="$("${PYTHON}" -c 'import torch; print(torch.version.cuda or "")')"; \
    version="$("${PYTHON}" -c 'import torch; print(torch.__version__)')"; \
    if [ "$abi" != 1 ]; then \
      echo "error: torch $version in BASE_IMAGE uses the pre-C++11 ABI; Debian's gRPC and Abseil need the C++11 one (PyTorch 2.7 or later)" >&2; exit 1; \
    fi; \
    if [ -z "$cuda" ]; then echo "error: torch $version in BASE_IMAGE is CPU-only" >&2; exit 1; fi; \
    mkdir -p /opt/pytorch/site-packages/torch; \
    cp -a "$site/torch/include" "$site/torch/lib" /opt/pytorch/site-packages/torch/; \
    if [ -d "$site/nvidia" ]; then \
      for lib in "$site"/nvidia/*/lib; do \
        rel="${lib#"$site"/}"; mkdir -p "/opt/pytorch/site-packages/$rel"; \
        cp -a "$lib/." "/opt/pytorch/site-packages/$rel/"; \
      done; \
    fi; \
    echo "torch $version cuda $cuda" > /opt/pytorch/VERSION

# ---- builder: Bazel on Debian, @libtorch pointed at PyTorch's -------------------------------
FROM ${DEBIAN_IMAGE} AS builder
ARG BAZEL_FLAGS=""
# PACKAGES from ./dev, as in autocompress.Dockerfile (Debian's libtorch-dev among them;
# the build below uses PyTorch's instead, whose include paths come first).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      g++ pkg-config clang-format \
      bazel-bootstrap bazel-platforms bazel-skylib bazel-rules-java bazel-rules-proto \
      protobuf-compiler libprotobuf-dev protobuf-compiler-grpc libgrpc++-dev \
      libabsl-dev libgoogle-glog-dev prometheus-cpp-dev libcivetweb-dev \
      libgtest-dev libgmock-dev \
      libtorch-dev python3-torch \
      nlohmann-json3-dev libsqlite3-dev libpq-dev libyaml-cpp-dev libssl-dev libarchive-dev \
      dataset-fashion-mnist libcli11-dev python3-grpcio python3-protobuf \
 && rm -rf /var/lib/apt/lists/*
COPY --from=torch /opt/pytorch /opt/pytorch
WORKDIR /src
COPY . .
# A Bazel repository over PyTorch's LibTorch that replaces @libtorch (WORKSPACE's
# Debian one) for this build: libtorch.BUILD.in with the CUDA library directories filled
# in for the linker (-rpath-link), since libtorch_cuda's own run paths use $ORIGIN.
RUN set -eu; \
    repo=/opt/pytorch/site-packages/torch; \
    links=""; \
    for dir in /opt/pytorch/site-packages/nvidia/*/lib; do \
      [ -d "$dir" ] && links="$links        \"-Wl,-rpath-link,$dir\",\n"; \
    done; \
    sed "s|@RPATH_LINKS@|$links|" deploy/docker/libtorch.BUILD.in > "$repo/BUILD.bazel"; \
    touch "$repo/WORKSPACE"
RUN --mount=type=cache,target=/root/.cache/bazel \
    bazel --batch build --override_repository=libtorch=/opt/pytorch/site-packages/torch ${BAZEL_FLAGS} \
      //worker:worker_server \
 && mkdir -p /out/bin \
 && cp -L bazel-bin/worker/worker_server /out/bin/

# ---- runtime --------------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE} AS runtime
# The worker's runtime libraries besides LibTorch (Debian bookworm names) and CA roots.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates \
      libabsl20220623 libgrpc++1.51 libprotobuf32 libssl3 zlib1g \
      libgoogle-glog0v6 libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0 libcivetweb1 \
      libarchive13 libgomp1 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 autocompress \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin autocompress \
 && install -d -o 10001 -g 10001 /var/lib/autocompress-worker
COPY --from=torch /opt/pytorch /opt/pytorch
COPY --from=builder /out/bin/worker_server /usr/local/bin/worker_server
# Fails the build when a library is missing; libcuda (the driver) is the node's, mounted
# at run time, so it may be absent here.
RUN if ldd /usr/local/bin/worker_server | grep 'not found' | grep -v 'libcuda\.so'; then exit 1; fi
# The NVIDIA container toolkit mounts the driver's compute libraries and nvidia-smi;
# which GPUs the container sees is the device plugin's NVIDIA_VISIBLE_DEVICES.
ENV NVIDIA_DRIVER_CAPABILITIES=compute,utility
USER 10001:10001
WORKDIR /var/lib/autocompress-worker
# gRPC 7402 (health only: workers dial the scheduler), metrics 9402.
EXPOSE 7402 9402
# probe: no HEALTHCHECK; worker_server answers grpc.health.v1 on 7402 without a token,
# which Kubernetes' native gRPC probes query (k8s/overlays/gpu).
ENTRYPOINT ["/usr/local/bin/worker_server"]
