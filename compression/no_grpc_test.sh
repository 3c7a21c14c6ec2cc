#!/usr/bin/env bash
# Fails when the compression library's transitive deps (a genquery listing) name gRPC,
# protobuf or the project's protos.
set -euo pipefail
deps="$1"
[ -s "$deps" ] || { echo "empty dependency listing $deps"; exit 1; }
if grep -Ei 'grpc|protobuf|^//protos' "$deps"; then
  echo "the compression library must not depend on the targets above"
  exit 1
fi
echo "compression library: $(wc -l <"$deps") targets, none gRPC or protobuf"
