#!/usr/bin/env bash
# `npm test`: the whole suite against real servers. Builds what is missing
# (cached after the first run), starts one local control plane for the run,
# installs the CRDs, runs every test file, and stops everything on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
. hack/lib.sh

hack/setup.sh
# Only the tests need promtool (the alert rules' checks), helm and the
# Dockerfile linter, not the demo.
PROMTOOL="$(hack/build-promtool.sh)/promtool"
# helm lints and renders the chart (about two minutes the first time).
HELM="$(hack/build-helm.sh)/helm"
# BuildKit's Dockerfile checks, offline (about a minute the first time).
DOCKERFILE_LINT="$(hack/build-dockerfile-lint.sh)/dockerfile-lint"
# The Prometheus Operator's CRDs, for the chart's ServiceMonitor and PrometheusRule.
MONITORING_CRDS_DIR="$(hack/fetch-monitoring-crds.sh)"
export PROMTOOL HELM DOCKERFILE_LINT MONITORING_CRDS_DIR
log "type-checking and linting"
npx tsc --noEmit
npx eslint .

cluster_dir="$(mktemp -d "${TMPDIR:-/tmp}/tenant-operator-test.XXXXXX")"
trap 'hack/cluster.sh down "$cluster_dir" >/dev/null 2>&1 || true' EXIT
env_file="$(hack/cluster.sh up "$cluster_dir")"
# shellcheck disable=SC1090
. "$env_file"
export KUBECONFIG OPERATOR_KUBECONFIG BREAK_GLASS_KUBECONFIG VAULT_ADDR VAULT_TOKEN KUBE_BIN_DIR TEST_CLUSTER_DIR \
  S3_ENDPOINT S3_BUCKET S3_REGION S3_ACCESS_KEY_ID S3_SECRET_ACCESS_KEY

log "installing CRDs, the admission guard and the operator namespace"
# The test operator runs as user tenant-operator (OPERATOR_KUBECONFIG); tests
# make drift as the break-glass identity, which the guard lets through.
node src/cli/main.ts install-crds --operator-user tenant-operator --break-glass-group tenancy.io:break-glass
"$KUBE_BIN_DIR/kubectl" create namespace tenant-system --dry-run=client -o yaml | "$KUBE_BIN_DIR/kubectl" apply -f - >/dev/null
# Exactly the chart's permissions, no cluster-admin: a rule the operator
# lacks fails the suite, and the audit log shows what it used.
node src/cli/main.ts install-rbac --namespace tenant-system --group tenancy.io:operators

files=("$@")
[ ${#files[@]} -gt 0 ] || files=(test/unit/*.test.ts test/integration/*.test.ts)
# One file at a time: integration tests share the control plane and each runs
# its own operator processes, which would otherwise fight over the lease.
node --test --test-concurrency=1 --test-timeout=300000 "${files[@]}"
