#!/usr/bin/env bash
# Builds promtool from github.com/prometheus/prometheus at $PROMETHEUS_VERSION,
# once. Prints the binary directory. The tests run `promtool check rules` and
# `promtool test rules` on monitoring/alerts.rules.yaml: a real Prometheus
# rule engine evaluates them.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

go_install_once promtool "$PROMETHEUS_VERSION" github.com/prometheus/prometheus/cmd/promtool \
  "about ten minutes on two cores"
