# syntax=docker/dockerfile:1
#
# The `autocompress` image: scheduler_server, tuner_server, the CPU worker_server and the
# autocompress CLI in /usr/local/bin, the dashboard page in /opt/autocompress/web. One
# image for the three services and the CLI because they share every runtime library (the
# CLI and the CPU worker both link Debian's LibTorch); Kubernetes picks the binary with
# `command:`. The GPU worker has its own image (worker-gpu.Dockerfile).
#
#   docker build -f deploy/docker/autocompress.Dockerfile -t autocompress:dev .
#
# Build context: the repository root (.dockerignore keeps bazel-*, node_modules, .git and
# local data out of it). Stages: `builder` compiles with Bazel on the Debian packages that
# `./dev setup` installs (the list below is PACKAGES in ./dev, word for word;
# //deploy:dockerfile_rules_test fails when they drift), `web` builds web/dist with npm,
# `runtime` is debian:bookworm-slim with the runtime shared libraries only.
#
# Build arguments (also in k8s/README.md):
#   DEBIAN_IMAGE   image of the build stages (default debian:bookworm); pin a digest for
#                  reproducible builds, e.g. debian:bookworm@sha256:...
#   RUNTIME_IMAGE  image of the final stage (default debian:bookworm-slim); a digest pin
#                  likewise
#   BAZEL_FLAGS    extra flags for `bazel build` beside the repository's .bazelrc (e.g.
#                  --jobs=8); empty by default

ARG DEBIAN_IMAGE=debian:bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# ---- builder: Bazel on Debian's toolchain and libraries -----------------------------------
FROM ${DEBIAN_IMAGE} AS builder
ARG BAZEL_FLAGS=""
# PACKAGES from ./dev (the build and test dependencies).
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
WORKDIR /src
COPY . .
# The output base lives in a BuildKit cache mount, so the binaries are copied out of
# bazel-bin within the same step (the flags of .bazelrc apply as with ./dev build; the
# disk cache ./dev adds is replaced by the cache mount).
RUN --mount=type=cache,target=/root/.cache/bazel \
    bazel --batch build ${BAZEL_FLAGS} \
      //scheduler_service:scheduler_server //tuner_service:tuner_server \
      //worker:worker_server //client:autocompress \
 && mkdir -p /out/bin \
 && cp -L bazel-bin/scheduler_service/scheduler_server bazel-bin/tuner_service/tuner_server \
      bazel-bin/worker/worker_server bazel-bin/client/autocompress /out/bin/

# ---- web: the dashboard page (what ./dev's build_web does) ----------------------------------
FROM ${DEBIAN_IMAGE} AS web
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates nodejs npm \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src/web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY web/ ./
RUN npm run --silent build

# ---- runtime --------------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE} AS runtime
# Runtime shared libraries of the four binaries (Debian bookworm names; apt pulls their
# own dependencies, LibTorch's included), CA roots for TLS, and the sqlite3 shell for
# online backups of the scheduler's store (k8s/README.md, "Backup and restore").
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates \
      libabsl20220623 libgrpc++1.51 libprotobuf32 libssl3 zlib1g \
      libgoogle-glog0v6 libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0 libcivetweb1 \
      libsqlite3-0 libpq5 libyaml-cpp0.7 libarchive13 libgomp1 libtorch1.13 \
      sqlite3 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 autocompress \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin autocompress \
 && install -d -o 10001 -g 10001 /var/lib/autocompress
COPY --from=builder /out/bin/ /usr/local/bin/
COPY --from=web /src/web/dist/ /opt/autocompress/web/
# Fails the build when a binary needs a library the list above misses.
RUN if ldd /usr/local/bin/* | grep 'not found'; then exit 1; fi
USER 10001:10001
WORKDIR /var/lib/autocompress
# gRPC 7400 scheduler, 7401 tuner, 7402 worker; metrics 9400-9402; dashboard 8080
# (scheduler --http_port 8080 in k8s/base).
EXPOSE 7400 7401 7402 8080 9400 9401 9402
# probe: no HEALTHCHECK; every server answers grpc.health.v1 on its gRPC port without a
# token, which Kubernetes' native gRPC probes query (k8s/base); the metrics port answers
# plain HTTP GET /metrics for anything else.
CMD ["autocompress", "--help"]
