#!/bin/sh
# Runs prometheus_scrape_test.py with Debian's python3 (which has python3-grpcio) on the
# Python client from the runfiles; Prometheus itself is Debian's /usr/bin/prometheus.
set -e
root="${TEST_SRCDIR}/${TEST_WORKSPACE}"
export PYTHONPATH="${root}/client/python"
exec /usr/bin/python3 "${root}/tests/monitoring/prometheus_scrape_test.py" "${root}"
