#!/bin/sh
# Runs a fuzz target's binary (built without libFuzzer) over its kept corpus.
set -e
exec "$1" "$2"
