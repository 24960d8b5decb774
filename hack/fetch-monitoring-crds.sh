#!/usr/bin/env bash
# Fetches the Prometheus Operator's ServiceMonitor and PrometheusRule CRDs
# from its Go module at $PROMETHEUS_OPERATOR_VERSION, once. Prints their
# directory. The chart test installs them and applies the chart's
# ServiceMonitor and PrometheusRule against their schemas.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

out="$(bin_dir monitoring-crds "$PROMETHEUS_OPERATOR_VERSION")"
if build_done monitoring-crds "$PROMETHEUS_OPERATOR_VERSION"; then echo "$out"; exit 0; fi
log "fetching the Prometheus Operator CRDs $PROMETHEUS_OPERATOR_VERSION"
module_dir="$(go mod download -json "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION" \
  | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
[ -n "$module_dir" ] || die "go mod download gave no directory for the Prometheus Operator"
mkdir -p "$out"
for kind in servicemonitors prometheusrules; do
  cp "$module_dir/example/prometheus-operator-crd/monitoring.coreos.com_$kind.yaml" "$out/"
done
mark_done monitoring-crds "$PROMETHEUS_OPERATOR_VERSION"
echo "$out"
