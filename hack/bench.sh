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
kubectl="${KUBE_BIN_DIR:+$KUBE_BIN_DIR/}kubectl"
# The benchmark runs the operator in this process: the admission guard must
# know it as the operator. Locally it gets its own identity (tenant-operator);
# on another cluster it runs as you, added next to the in-cluster operator.
if [ "${BENCH_USE_KUBECONFIG:-0}" != 1 ]; then
  node src/cli/main.ts install-crds --operator-user tenant-operator --break-glass-group tenancy.io:break-glass
  bench_kubeconfig="$OPERATOR_KUBECONFIG"
else
  me="$("$kubectl" auth whoami -o jsonpath='{.status.userInfo.username}')"
  node src/cli/main.ts install-crds --operator-user system:serviceaccount:tenant-system:tenant-operator --operator-user "$me"
  bench_kubeconfig="${KUBECONFIG:-$HOME/.kube/config}"
fi
"$kubectl" create namespace tenant-system --dry-run=client -o yaml | "$kubectl" apply -f - >/dev/null
# The benchmark process is the operator and its load generator at once (it
# creates the Tenants it measures), so locally its identity is cluster-admin;
# the tests prove the operator needs no more than its own roles.
if [ "${BENCH_USE_KUBECONFIG:-0}" != 1 ]; then
  "$kubectl" create clusterrolebinding tenancy.io-bench --clusterrole=cluster-admin \
    --group=tenancy.io:operators --dry-run=client -o yaml | "$kubectl" apply -f - >/dev/null
fi
# The scale benchmark runs the operator as its own process, as the image
# does: under its own roles (install-rbac) and logged in to Vault with its
# ServiceAccount's token, not the root token.
npm run --silent build
if [ "${BENCH_USE_KUBECONFIG:-0}" != 1 ]; then
  node src/cli/main.ts install-rbac --namespace tenant-system --group tenancy.io:operators
  export BENCH_OPERATOR_KUBECONFIG="$OPERATOR_KUBECONFIG"
  export BENCH_OPERATOR_VAULT_JWT="$cluster_dir/operator-vault-token"
  "$kubectl" -n tenant-system create token tenant-operator --audience vault --duration 24h >"$BENCH_OPERATOR_VAULT_JWT"
fi
KUBECONFIG="$bench_kubeconfig" node bench/main.ts "$@"
