#!/usr/bin/env bash
# Builds promtool from github.com/prometheus/prometheus at $PROMETHEUS_VERSION,
# once (about ten minutes on two cores). Prints the binary directory. The
# tests run `promtool check rules` and `promtool test rules` on
# monitoring/alerts.rules.yaml: a real Prometheus rule engine evaluates them.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

version="$PROMETHEUS_VERSION"
out="$(bin_dir promtool "$version")"
if build_done promtool "$version"; then echo "$out"; exit 0; fi

log "building promtool $version (about ten minutes)"
mkdir -p "$out"
GOBIN="$out" go install -trimpath -ldflags "-s -w" "github.com/prometheus/prometheus/cmd/promtool@$version"
mark_done promtool "$version"
log "built into $out"
echo "$out"
