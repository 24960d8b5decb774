#!/usr/bin/env bash
# A real local control plane on loopback: etcd, kube-apiserver (RBAC, Pod
# Security admission, service account issuer), kube-controller-manager
# (namespace, garbage collector, service account + token, cluster role
# aggregation, resource quota, admission policy type checks), Vault in dev mode
# (hack/vault-config.sh), two PostgreSQL servers with TLS (hack/postgres.sh) and
# an S3-compatible server for backups (Versity Gateway, POSIX backend) with a
# bucket `tenant-backups`.
# No kubelet: pods are admitted and stored, never run.
#
#   hack/cluster.sh up DIR                 start (or reuse) and print DIR/env
#   hack/cluster.sh down DIR               stop everything, remove DIR (KEEP=1 keeps it)
#   hack/cluster.sh stop-apiserver DIR     stop kube-apiserver (the rest keeps running)
#   hack/cluster.sh start-apiserver DIR    start it again on the same port, wait until ready
#   hack/cluster.sh restart-apiserver DIR  both
#   hack/cluster.sh pause-apiserver DIR    SIGSTOP it: connections stay open, nothing answers
#   hack/cluster.sh resume-apiserver DIR   SIGCONT it
#
# The env file also names etcd's client URL (ETCD_ENDPOINT), so tests can use
# etcd's JSON gateway, e.g. to compact history and force a real 410 Gone, and
# the S3 server (S3_ENDPOINT, S3_BUCKET, S3_REGION, S3_ACCESS_KEY_ID,
# S3_SECRET_ACCESS_KEY).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

command="${1:-}"
dir="${2:-}"
[ -n "$command" ] && [ -n "$dir" ] || die "usage: $0 up|down|stop-apiserver|start-apiserver|restart-apiserver|pause-apiserver|resume-apiserver DIR"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
pids="$dir/pids"
logs="$dir/logs"
certs="$dir/certs"

free_port() {
  node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

# proc_state PID: the one-letter state of PID (R, S, Z...); fails if there is no such process.
proc_state() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  # The command name in parentheses may hold spaces: the state follows the last ')'.
  stat="${stat##*) }"
  printf '%s\n' "${stat%% *}"
}

# running PID NAME: PID is a live process of the server binary NAME. Not kill -0:
# a zombie passes that, and a server orphaned by an earlier run is reaped by PID 1
# only after seconds (or never, in a container whose PID 1 does not reap), so a
# dead cluster would look alive. The name check keeps a stale pid file (DIR kept
# across a reboot) from pointing us at an unrelated process that got the same PID.
# Linux only (/proc), like the rest of the test setup.
running() {
  local pid="$1" name="$2" state comm
  state="$(proc_state "$pid")" || return 1
  [ "$state" != Z ] || return 1
  comm="$(cat "/proc/$pid/comm" 2>/dev/null)" || return 1
  # The kernel keeps the first 15 characters of the name.
  [ "$comm" = "${name:0:15}" ]
}

alive() { [ -f "$pids/$1" ] && running "$(cat "$pids/$1")" "$1"; }

# start NAME COMMAND...: runs a server in the background, its own process group.
start() {
  local name="$1" pid state deadline=$((SECONDS + 5)); shift
  setsid "$@" >>"$logs/$name.log" 2>&1 < /dev/null &
  pid=$!
  echo "$pid" >"$pids/$name"
  # $! is first a forked shell, then setsid, then the server: alive() only holds
  # once the server binary runs. Wait for that, or for an early exit, which
  # wait_for then reports with the log.
  while ! alive "$name" && [ "$SECONDS" -lt "$deadline" ]; do
    state="$(proc_state "$pid")" || break
    [ "$state" != Z ] || break
    sleep 0.05
  done
}

# stop NAME...: SIGTERM to all of them at once, up to 10 s for them to exit, then
# SIGKILL. Each server takes 1-3 s to shut down gracefully; stopping them one by
# one would add those up.
stop() {
  local name live=() still deadline=$((SECONDS + 10))
  for name in "$@"; do
    if alive "$name" && kill -TERM "$(cat "$pids/$name")" 2>/dev/null; then live+=("$name"); fi
  done
  while [ "${#live[@]}" -gt 0 ] && [ "$SECONDS" -lt "$deadline" ]; do
    still=()
    for name in "${live[@]}"; do if alive "$name"; then still+=("$name"); fi; done
    live=("${still[@]+"${still[@]}"}")
    [ "${#live[@]}" -eq 0 ] || sleep 0.1
  done
  for name in "${live[@]+"${live[@]}"}"; do
    log "$name did not exit within 10 s of SIGTERM: SIGKILL"
    kill -KILL "$(cat "$pids/$name")" 2>/dev/null || true
  done
  for name in "$@"; do rm -f "$pids/$name"; done
}

# wait_for WHAT SECONDS LOG COMMAND...: polls COMMAND; on timeout prints the log's tail.
# LOG is $logs/NAME.log of the server started as NAME: if that server has already
# exited (bad flag, port taken) there is nothing to wait for, so fail at once
# rather than after the whole timeout. The deadline is wall-clock time, because
# each poll (a kubectl run) itself takes a noticeable part of a second.
wait_for() {
  local what="$1" seconds="$2" logfile="$3"; shift 3
  local name deadline=$((SECONDS + seconds))
  name="$(basename "$logfile" .log)"
  while [ "$SECONDS" -lt "$deadline" ]; do
    if "$@" >/dev/null 2>&1; then return 0; fi
    if [ -f "$pids/$name" ] && ! alive "$name"; then
      tail -n 40 "$logfile" >&2 || true
      die "$name exited while waiting for $what (log: $logfile)"
    fi
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
  # The operator's own identity (the admission guard lets only it change what
  # it manages) and a break-glass on-call identity (exempted from the guard),
  # each bound to cluster-admin through its group below.
  cert operator "/O=tenancy.io:operators/CN=tenant-operator"
  cert break-glass "/O=tenancy.io:break-glass/CN=break-glass-oncall"
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

# bind_identities KUBECTL...: cluster-admin for the break-glass group. The
# operator's group gets only the operator's own roles, which the stack's users
# (npm test, npm start, npm run bench) apply with `install-rbac` once its
# namespace exists: the tests prove the operator needs nothing more.
bind_identities() {
  "$@" create clusterrolebinding tenancy.io-break-glass --clusterrole=cluster-admin \
    --group=tenancy.io:break-glass --dry-run=client -o yaml | "$@" apply -f - >/dev/null
}

up() {
  if [ -f "$dir/env" ] && alive etcd && alive kube-apiserver && alive kube-controller-manager && alive vault \
    && alive versitygw; then
    echo "$dir/env"
    return 0
  fi
  down_processes
  local etcd_bin kube_bin vault_bin versitygw_bin
  etcd_bin="$("$HACK_DIR/build-etcd.sh")"
  kube_bin="$("$HACK_DIR/build-kube.sh")"
  vault_bin="$("$HACK_DIR/build-vault.sh")"
  versitygw_bin="$("$HACK_DIR/build-versitygw.sh")"
  mkdir -p "$pids" "$logs"
  # sa.pub is written last: a run interrupted half-way through gen_certs is redone.
  [ -f "$certs/sa.pub" ] || gen_certs

  local etcd_port etcd_peer_port api_port kcm_port vault_port vault_token s3_port s3_access s3_secret
  etcd_port="$(free_port)"; etcd_peer_port="$(free_port)"; api_port="$(free_port)"
  kcm_port="$(free_port)"; vault_port="$(free_port)"; s3_port="$(free_port)"
  vault_token="root-$(openssl rand -hex 12)"
  s3_access="$(openssl rand -hex 10)"
  s3_secret="$(openssl rand -hex 20)"

  log "starting etcd on 127.0.0.1:$etcd_port"
  start etcd "$etcd_bin/etcd" --name local --data-dir "$dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer_port" \
    --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port" \
    --initial-cluster "local=http://127.0.0.1:$etcd_peer_port" \
    --unsafe-no-fsync --log-level warn
  wait_for etcd 30 "$logs/etcd.log" curl -fsS "http://127.0.0.1:$etcd_port/health"

  # The audit log records every request of the operator's identities (the test
  # operator's group and ServiceAccounts in tenant-system): what RBAC allowed
  # or refused them is then read from the API server itself, and the chart's
  # ClusterRole is checked against what the operator really asked for.
  cat >"$dir/audit-policy.yaml" <<EOF
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    userGroups: ["tenancy.io:operators", "system:serviceaccounts:tenant-system"]
  - level: None
EOF

  # The flags are kept in a file so restart-apiserver starts the very same server.
  # --shutdown-watch-termination-grace-period: without it, SIGTERM closes the
  # listener at once but the process then waits out a 60 s HTTP shutdown deadline
  # for open watches (the controller manager always has some), so every stop would
  # end in SIGKILL after 10 s. With it, watches are ended and the server exits in
  # about a second.
  cat >"$dir/apiserver.args" <<EOF
--audit-policy-file=$dir/audit-policy.yaml
--audit-log-path=$logs/audit.log
--audit-log-format=json
--audit-log-maxsize=0
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
--shutdown-watch-termination-grace-period=2s
--profiling=false
--v=1
EOF
  log "starting kube-apiserver on https://127.0.0.1:$api_port"
  mapfile -t api_args <"$dir/apiserver.args"
  start kube-apiserver "$kube_bin/kube-apiserver" "${api_args[@]}"

  kubeconfig admin "https://127.0.0.1:$api_port" >"$dir/admin.kubeconfig"
  kubeconfig controller-manager "https://127.0.0.1:$api_port" >"$dir/controller-manager.kubeconfig"
  kubeconfig operator "https://127.0.0.1:$api_port" >"$dir/operator.kubeconfig"
  kubeconfig break-glass "https://127.0.0.1:$api_port" >"$dir/break-glass.kubeconfig"
  local kubectl=("$kube_bin/kubectl" --kubeconfig "$dir/admin.kubeconfig")
  wait_for kube-apiserver 60 "$logs/kube-apiserver.log" "${kubectl[@]}" get --raw /readyz
  bind_identities "${kubectl[@]}"

  log "starting kube-controller-manager"
  start kube-controller-manager "$kube_bin/kube-controller-manager" \
    --kubeconfig "$dir/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$dir/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$dir/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$kcm_port" \
    --controllers=namespace-controller,garbage-collector-controller,serviceaccount-controller,serviceaccount-token-controller,clusterrole-aggregation-controller,resourcequota-controller,root-ca-certificate-publisher-controller,validatingadmissionpolicy-status-controller \
    --service-account-private-key-file="$certs/sa.key" --root-ca-file="$certs/ca.crt" \
    --use-service-account-credentials=true --leader-elect=false --v=1

  log "starting Vault (dev mode) on http://127.0.0.1:$vault_port"
  start vault "$vault_bin/vault" server -dev -dev-root-token-id="$vault_token" \
    -dev-listen-address="127.0.0.1:$vault_port" -dev-no-store-token
  wait_for vault 60 "$logs/vault.log" curl -fsS "http://127.0.0.1:$vault_port/v1/sys/health"

  # The root keys go in through the environment, not --access/--secret, so they
  # are not in the process list for every local user to read. --iam-dir turns
  # on the gateway's own user accounts (`versitygw admin create-user` against
  # the same port), so tests can give a tenant an identity confined to its
  # prefix by a bucket policy; the root keys work as without it.
  log "starting Versity Gateway (S3) on http://127.0.0.1:$s3_port"
  mkdir -p "$dir/s3" "$dir/s3-iam"
  start versitygw env ROOT_ACCESS_KEY_ID="$s3_access" ROOT_SECRET_ACCESS_KEY="$s3_secret" \
    "$versitygw_bin/versitygw" --port "127.0.0.1:$s3_port" --iam-dir "$dir/s3-iam" --quiet posix "$dir/s3"
  # curl reads the keys from a 0600 config file, again to keep them off command
  # lines. The gateway wants x-amz-content-sha256 on every signed request: our
  # requests have no body, so it is the sha256 of nothing.
  (umask 077 && printf 'user = "%s:%s"\naws-sigv4 = "aws:amz:us-east-1:s3"\nheader = "x-amz-content-sha256: %s"\n' \
    "$s3_access" "$s3_secret" e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 >"$dir/s3.curlrc")
  wait_for versitygw 30 "$logs/versitygw.log" curl -fsS -K "$dir/s3.curlrc" "http://127.0.0.1:$s3_port/"
  # The bucket outlives a restart of the gateway (same DIR): create it only if missing.
  curl -fsS -K "$dir/s3.curlrc" -I "http://127.0.0.1:$s3_port/tenant-backups" >/dev/null 2>&1 \
    || curl -fsS -K "$dir/s3.curlrc" -X PUT "http://127.0.0.1:$s3_port/tenant-backups" >/dev/null

  # The service account controller creating `default` proves the controller manager works.
  wait_for "kube-controller-manager (default service account)" 60 "$logs/kube-controller-manager.log" \
    "${kubectl[@]}" -n default get serviceaccount default

  # %q: the file is sourced, and DIR may hold spaces or other shell characters.
  {
    printf 'export KUBECONFIG=%q\n' "$dir/admin.kubeconfig"
    printf 'export OPERATOR_KUBECONFIG=%q\n' "$dir/operator.kubeconfig"
    printf 'export BREAK_GLASS_KUBECONFIG=%q\n' "$dir/break-glass.kubeconfig"
    printf 'export KUBE_BIN_DIR=%q\n' "$kube_bin"
    printf 'export VAULT_ADDR=%q\n' "http://127.0.0.1:$vault_port"
    printf 'export VAULT_TOKEN=%q\n' "$vault_token"
    printf 'export TEST_CLUSTER_DIR=%q\n' "$dir"
    printf 'export ETCD_ENDPOINT=%q\n' "http://127.0.0.1:$etcd_port"
    printf 'export S3_ENDPOINT=%q\n' "http://127.0.0.1:$s3_port"
    printf 'export S3_BUCKET=%q\n' tenant-backups
    printf 'export S3_REGION=%q\n' us-east-1
    printf 'export S3_ACCESS_KEY_ID=%q\n' "$s3_access"
    printf 'export S3_SECRET_ACCESS_KEY=%q\n' "$s3_secret"
  } >"$dir/env"
  "$HACK_DIR/vault-config.sh" "$dir"
  # Two PostgreSQL servers (regions eu-west and us-east) for tenant databases.
  cat "$("$HACK_DIR/postgres.sh" up "$dir/postgres")" >>"$dir/env"
  log "control plane up: $("${kubectl[@]}" version -o json | sed -n 's/.*"gitVersion": "\(v[^"]*\)".*/\1/p' | tail -n 1)"
  echo "$dir/env"
}

stop_apiserver() {
  [ -f "$dir/apiserver.args" ] || die "no control plane in $dir"
  log "stopping kube-apiserver"
  stop kube-apiserver
}

start_apiserver() {
  [ -f "$dir/apiserver.args" ] || die "no control plane in $dir"
  local kube_bin
  kube_bin="$("$HACK_DIR/build-kube.sh")"
  if alive kube-apiserver; then log "kube-apiserver is already running"; return 0; fi
  log "starting kube-apiserver"
  mapfile -t api_args <"$dir/apiserver.args"
  start kube-apiserver "$kube_bin/kube-apiserver" "${api_args[@]}"
  wait_for kube-apiserver 60 "$logs/kube-apiserver.log" \
    "$kube_bin/kubectl" --kubeconfig "$dir/admin.kubeconfig" get --raw /readyz
}

down_processes() {
  # etcd last: the API server writes to it while shutting down (its lease).
  stop kube-controller-manager kube-apiserver vault versitygw
  stop etcd
  if [ -d "$dir/postgres" ]; then KEEP=1 "$HACK_DIR/postgres.sh" down "$dir/postgres" >/dev/null 2>&1 || true; fi
}

case "$command" in
  up) up ;;
  down)
    down_processes
    [ "${KEEP:-0}" = 1 ] || rm -rf "$dir"
    ;;
  stop-apiserver) stop_apiserver ;;
  start-apiserver) start_apiserver ;;
  restart-apiserver) stop_apiserver && start_apiserver ;;
  pause-apiserver | resume-apiserver)
    alive kube-apiserver || die "kube-apiserver is not running in $dir"
    if [ "$command" = pause-apiserver ]; then sig=STOP; else sig=CONT; fi
    kill -"$sig" "$(cat "$pids/kube-apiserver")"
    ;;
  *) die "unknown command $command" ;;
esac
