#!/bin/sh
# Runs dockerfile_rules_test.py with Debian's python3 on the runfiles tree, which holds the
# Dockerfiles, ./dev, .dockerignore and k8s/README.md at their repository paths.
set -e
root="${TEST_SRCDIR}/${TEST_WORKSPACE}"
export DOCKERFILE_RULES_ROOT="$root"
exec /usr/bin/python3 "${root}/deploy/dockerfile_rules_test.py"
