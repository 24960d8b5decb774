#!/usr/bin/env bash
# `npm start`: the operator's main job. With a cluster configured (KUBECONFIG
# or ~/.kube/config) it installs the CRDs and runs the operator against it.
# With none, it builds and starts the local control plane first, applies the
# sample Tenant and shows it being provisioned. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
. hack/lib.sh

stack_dir=""
operator_pid=""
cleanup() {
  [ -n "$operator_pid" ] && kill "$operator_pid" 2>/dev/null && wait "$operator_pid" 2>/dev/null || true
  [ -n "$stack_dir" ] && hack/cluster.sh down "$stack_dir" >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -z "${KUBECONFIG:-}" ] && [ ! -f "$HOME/.kube/config" ]; then
  log "no cluster configured: starting the local control plane (the first run builds it, which takes a while)"
  hack/setup.sh
  stack_dir="$(pwd)/.tmp/stack"
  # shellcheck disable=SC1090
  . "$(hack/cluster.sh up "$stack_dir")"
  export KUBECONFIG
  sample=1
fi
kubectl="${KUBE_BIN_DIR:+$KUBE_BIN_DIR/}kubectl"

# The admission guard lets only the operator's identity change what it
# manages. On the local stack the operator has its own (user tenant-operator);
# on another cluster it runs here as you, so you are added to the in-cluster
# operator's ServiceAccount.
if [ "${sample:-0}" = 1 ]; then
  guard_flags=(--operator-user tenant-operator --break-glass-group tenancy.io:break-glass)
  operator_kubeconfig="$OPERATOR_KUBECONFIG"
else
  me="$("$kubectl" auth whoami -o jsonpath='{.status.userInfo.username}')"
  guard_flags=(--operator-user system:serviceaccount:tenant-system:tenant-operator --operator-user "$me")
  operator_kubeconfig="${KUBECONFIG:-$HOME/.kube/config}"
fi

log "installing CRDs and the admission guard"
node src/cli/main.ts install-crds "${guard_flags[@]}"
"$kubectl" create namespace tenant-system --dry-run=client -o yaml | "$kubectl" apply -f - >/dev/null
# On the local stack the operator's group holds the operator's roles and no more.
if [ "${sample:-0}" = 1 ]; then
  node src/cli/main.ts install-rbac --namespace tenant-system --group tenancy.io:operators
fi

# On the local stack the operator logs in to Vault as it does in a cluster:
# with a token of its ServiceAccount (audience vault), not the root token; and
# it is told the stack's service range, which tenants' egress never opens.
operator_env=(env)
operator_flags=()
if [ "${sample:-0}" = 1 ]; then
  vault_jwt="$stack_dir/operator-vault-token"
  "$kubectl" -n tenant-system create token tenant-operator --audience vault --duration 24h >"$vault_jwt"
  operator_env=(env -u VAULT_TOKEN VAULT_K8S_TOKEN_FILE="$vault_jwt")
  operator_flags=(--cluster-cidr 10.0.0.0/24)
fi

log "starting the operator (metrics on http://127.0.0.1:${METRICS_PORT:-8080}/metrics)"
"${operator_env[@]}" KUBECONFIG="$operator_kubeconfig" node src/cli/main.ts operator \
  --namespace tenant-system --metrics-port "${METRICS_PORT:-8080}" ${operator_flags[@]+"${operator_flags[@]}"} &
operator_pid=$!

if [ "${sample:-0}" = 1 ]; then
  log "registering the local PostgreSQL servers as DatabaseServers (admin credentials go to Vault)"
  node hack/database-servers.ts
  log "applying the sample tenant examples/tenant-acme.yaml"
  "$kubectl" apply -f examples/tenant-acme.yaml
  for _ in $(seq 1 120); do
    phase="$("$kubectl" get tenant acme -o jsonpath='{.status.phase}' 2>/dev/null || true)"
    log "tenant acme: ${phase:-pending}"
    [ "$phase" = Ready ] && break
    sleep 1
  done
  "$kubectl" get tenant acme -o wide
  "$kubectl" get tenant acme -o jsonpath='{range .status.conditions[*]}{.type}={.status} ({.reason}){"\n"}{end}'
  "$kubectl" -n tenant-acme get networkpolicies,resourcequota,limitrange,rolebindings
  "$kubectl" get databaseservers
  log "database credentials live only in Vault: curl -H \"X-Vault-Token: \$VAULT_TOKEN\" $VAULT_ADDR/v1/secret/data/tenants/acme/database"
  log "the operator keeps running; the admission guard refuses edits to its children, even an admin's:"
  log "  export KUBECONFIG=$KUBECONFIG; kubectl -n tenant-acme delete networkpolicy default-deny"
  log "break-glass may, and the operator puts the child back within seconds:"
  log "  kubectl --kubeconfig $BREAK_GLASS_KUBECONFIG -n tenant-acme delete networkpolicy default-deny"
  log "Ctrl-C stops the operator and the stack"
fi
wait "$operator_pid"
