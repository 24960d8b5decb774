#!/usr/bin/env bash
# A real local control plane on loopback: etcd, kube-apiserver (RBAC, Pod
# Security admission, service account issuer), kube-controller-manager
# (namespace, garbage collector, service account + token, cluster role
# aggregation, resource quota) and Vault in dev mode. No kubelet: pods are
# admitted and stored, never run.
#
#   hack/cluster.sh up DIR                 start (or reuse) and print DIR/env
#   hack/cluster.sh down DIR               stop everything, remove DIR (KEEP=1 keeps it)
#   hack/cluster.sh restart-apiserver DIR  stop kube-apiserver and start it on the same port
set -euo pipefail
. "$(dirname "$0")/lib.sh"

command="${1:-}"
dir="${2:-}"
[ -n "$command" ] && [ -n "$dir" ] || die "usage: $0 up|down|restart-apiserver DIR"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
pids="$dir/pids"
logs="$dir/logs"
certs="$dir/certs"

free_port() {
  node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

alive() { [ -f "$pids/$1" ] && kill -0 "$(cat "$pids/$1")" 2>/dev/null; }

# start NAME COMMAND...: runs a server in the background, its own process group.
start() {
  local name="$1"; shift
  setsid "$@" >>"$logs/$name.log" 2>&1 < /dev/null &
  echo $! >"$pids/$name"
}

stop() {
  local name="$1" pid
  [ -f "$pids/$name" ] || return 0
  pid="$(cat "$pids/$name")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pids/$name"
}

# wait_for WHAT SECONDS LOG COMMAND...: polls COMMAND; on timeout prints the log's tail.
wait_for() {
  local what="$1" seconds="$2" logfile="$3"; shift 3
  for _ in $(seq 1 $((seconds * 5))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  tail -n 40 "$logfile" >&2 || true
  die "$what did not come up within ${seconds}s (log: $logfile)"
}

gen_certs() {
  mkdir -p "$certs"
  cd "$certs"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 365 \
    -subj "/CN=tenant-operator-test-ca" 2>/dev/null
  # cert NAME SUBJECT [SANS]
  cert() {
    local name="$1" subject="$2" sans="${3:-}"
    openssl req -newkey rsa:2048 -nodes -keyout "$name.key" -out "$name.csr" -subj "$subject" 2>/dev/null
    if [ -n "$sans" ]; then
      printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$sans" >"$name.ext"
    else
      printf 'extendedKeyUsage=clientAuth\n' >"$name.ext"
    fi
    openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -out "$name.crt" \
      -days 365 -extfile "$name.ext" 2>/dev/null
  }
  cert apiserver "/CN=kube-apiserver" \
    "IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  cert admin "/O=system:masters/CN=admin"
  cert controller-manager "/CN=system:kube-controller-manager"
  cert apiserver-etcd-client "/CN=kube-apiserver-etcd-client"
  openssl genrsa -out sa.key 2048 2>/dev/null
  openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  cd - >/dev/null
}

kubeconfig() {
  local user="$1" server="$2"
  cat <<EOF
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: $server
    certificate-authority: $certs/ca.crt
users:
- name: $user
  user:
    client-certificate: $certs/$user.crt
    client-key: $certs/$user.key
contexts:
- name: local
  context: { cluster: local, user: $user }
current-context: local
EOF
}

up() {
  if [ -f "$dir/env" ] && alive etcd && alive kube-apiserver && alive kube-controller-manager && alive vault; then
    echo "$dir/env"
    return 0
  fi
  down_processes
  local etcd_bin kube_bin vault_bin
  etcd_bin="$("$HACK_DIR/build-etcd.sh")"
  kube_bin="$("$HACK_DIR/build-kube.sh")"
  vault_bin="$("$HACK_DIR/build-vault.sh")"
  mkdir -p "$pids" "$logs"
  [ -f "$certs/ca.crt" ] || gen_certs

  local etcd_port etcd_peer_port api_port kcm_port vault_port vault_token
  etcd_port="$(free_port)"; etcd_peer_port="$(free_port)"; api_port="$(free_port)"
  kcm_port="$(free_port)"; vault_port="$(free_port)"
  vault_token="root-$(openssl rand -hex 12)"

  log "starting etcd on 127.0.0.1:$etcd_port"
  start etcd "$etcd_bin/etcd" --name local --data-dir "$dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer_port" \
    --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port" \
    --initial-cluster "local=http://127.0.0.1:$etcd_peer_port" \
    --unsafe-no-fsync --log-level warn
  wait_for etcd 30 "$logs/etcd.log" curl -fsS "http://127.0.0.1:$etcd_port/health"

  # The flags are kept in a file so restart-apiserver starts the very same server.
  cat >"$dir/apiserver.args" <<EOF
--etcd-servers=http://127.0.0.1:$etcd_port
--bind-address=127.0.0.1
--advertise-address=127.0.0.1
--secure-port=$api_port
--tls-cert-file=$certs/apiserver.crt
--tls-private-key-file=$certs/apiserver.key
--client-ca-file=$certs/ca.crt
--authorization-mode=RBAC
--enable-admission-plugins=NamespaceLifecycle,LimitRanger,ServiceAccount,ResourceQuota,PodSecurity,DefaultStorageClass,MutatingAdmissionWebhook,ValidatingAdmissionPolicy,ValidatingAdmissionWebhook
--service-account-issuer=https://kubernetes.default.svc.cluster.local
--service-account-key-file=$certs/sa.pub
--service-account-signing-key-file=$certs/sa.key
--api-audiences=https://kubernetes.default.svc.cluster.local
--service-cluster-ip-range=10.0.0.0/24
--allow-privileged=true
--profiling=false
--v=1
EOF
  log "starting kube-apiserver on https://127.0.0.1:$api_port"
  mapfile -t api_args <"$dir/apiserver.args"
  start kube-apiserver "$kube_bin/kube-apiserver" "${api_args[@]}"

  kubeconfig admin "https://127.0.0.1:$api_port" >"$dir/admin.kubeconfig"
  kubeconfig controller-manager "https://127.0.0.1:$api_port" >"$dir/controller-manager.kubeconfig"
  local kubectl=("$kube_bin/kubectl" --kubeconfig "$dir/admin.kubeconfig")
  wait_for kube-apiserver 60 "$logs/kube-apiserver.log" "${kubectl[@]}" get --raw /readyz

  log "starting kube-controller-manager"
  start kube-controller-manager "$kube_bin/kube-controller-manager" \
    --kubeconfig "$dir/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$dir/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$dir/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$kcm_port" \
    --controllers=namespace-controller,garbage-collector-controller,serviceaccount-controller,serviceaccount-token-controller,clusterrole-aggregation-controller,resourcequota-controller,root-ca-certificate-publisher-controller \
    --service-account-private-key-file="$certs/sa.key" --root-ca-file="$certs/ca.crt" \
    --use-service-account-credentials=true --leader-elect=false --v=1

  log "starting Vault (dev mode) on http://127.0.0.1:$vault_port"
  start vault "$vault_bin/vault" server -dev -dev-root-token-id="$vault_token" \
    -dev-listen-address="127.0.0.1:$vault_port" -dev-no-store-token
  wait_for vault 60 "$logs/vault.log" curl -fsS "http://127.0.0.1:$vault_port/v1/sys/health"

  # The service account controller creating `default` proves the controller manager works.
  wait_for "kube-controller-manager (default service account)" 60 "$logs/kube-controller-manager.log" \
    "${kubectl[@]}" -n default get serviceaccount default

  cat >"$dir/env" <<EOF
export KUBECONFIG=$dir/admin.kubeconfig
export KUBE_BIN_DIR=$kube_bin
export VAULT_ADDR=http://127.0.0.1:$vault_port
export VAULT_TOKEN=$vault_token
export TEST_CLUSTER_DIR=$dir
EOF
  "$HACK_DIR/vault-config.sh" "$dir"
  log "control plane up: $("${kubectl[@]}" version -o json | sed -n 's/.*"gitVersion": "\(v[^"]*\)".*/\1/p' | tail -n 1)"
  echo "$dir/env"
}

restart_apiserver() {
  [ -f "$dir/apiserver.args" ] || die "no control plane in $dir"
  local kube_bin
  kube_bin="$("$HACK_DIR/build-kube.sh")"
  stop kube-apiserver
  log "restarting kube-apiserver"
  mapfile -t api_args <"$dir/apiserver.args"
  start kube-apiserver "$kube_bin/kube-apiserver" "${api_args[@]}"
  wait_for kube-apiserver 60 "$logs/kube-apiserver.log" \
    "$kube_bin/kubectl" --kubeconfig "$dir/admin.kubeconfig" get --raw /readyz
}

down_processes() {
  for name in kube-controller-manager kube-apiserver vault etcd; do stop "$name"; done
}

case "$command" in
  up) up ;;
  down)
    down_processes
    [ "${KEEP:-0}" = 1 ] || rm -rf "$dir"
    ;;
  restart-apiserver) restart_apiserver ;;
  *) die "unknown command $command" ;;
esac
