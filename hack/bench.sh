#!/usr/bin/env bash
# `npm run bench`: the provisioning benchmark on a fresh local control plane
# (or the cluster in KUBECONFIG if BENCH_USE_KUBECONFIG=1).
set -euo pipefail
cd "$(dirname "$0")/.."
. hack/lib.sh

if [ "${BENCH_USE_KUBECONFIG:-0}" != 1 ]; then
  hack/setup.sh
  cluster_dir="$(mktemp -d "${TMPDIR:-/tmp}/tenant-operator-bench.XXXXXX")"
  trap 'hack/cluster.sh down "$cluster_dir" >/dev/null 2>&1 || true' EXIT
  # shellcheck disable=SC1090
  . "$(hack/cluster.sh up "$cluster_dir")"
  export KUBECONFIG
fi
node src/cli/main.ts install-crds
"${KUBE_BIN_DIR:+$KUBE_BIN_DIR/}kubectl" create namespace tenant-system --dry-run=client -o yaml \
  | "${KUBE_BIN_DIR:+$KUBE_BIN_DIR/}kubectl" apply -f - >/dev/null
node bench/main.ts
