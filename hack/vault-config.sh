#!/usr/bin/env bash
# Configures the dev Vault of a local control plane (hack/cluster.sh up DIR) the
# way the operator expects it. Safe to run again: each step checks first.
#
#   hack/vault-config.sh DIR
#
#   - KV v2 at secret/ (dev mode mounts it; checked, upgraded from v1 if needed)
#   - Transit at transit/
#   - the Kubernetes auth method at auth/kubernetes/, pointed at the local
#     kube-apiserver, with a reviewer token of the ServiceAccount
#     kube-system/vault-auth (bound to ClusterRole system:auth-delegator) so
#     that tenants' own service accounts need no TokenReview permission.
#   - the operator's own identity: ACL policy `tenant-operator` (least privilege
#     for what the operator does) and Kubernetes auth role `tenant-operator`
#     bound to the ServiceAccount tenant-system/tenant-operator (audience
#     `vault`), both created here if missing. The operator logs in with that
#     account's token; the root token is for this script and the tests only.
#   - the token role tenant-backup-restore, through which the operator mints
#     short-lived restore tokens of one tenant (policy restore-<name> only).
#
# Environment (defaults in brackets): OPERATOR_NAMESPACE [tenant-system],
# OPERATOR_SERVICE_ACCOUNT [tenant-operator], VAULT_KV_MOUNT [secret],
# VAULT_TRANSIT_MOUNT [transit], VAULT_OPERATOR_TOKEN_TTL [1h],
# VAULT_OPERATOR_TOKEN_MAX_TTL [24h], VAULT_OPERATOR_AUDIENCE [vault].
#
# Progress goes to stderr; nothing secret is printed.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

dir="${1:-}"
[ -n "$dir" ] || die "usage: $0 DIR   (DIR as given to hack/cluster.sh up)"
[ -f "$dir/env" ] || die "no $dir/env: start the control plane with hack/cluster.sh up $dir"
dir="$(cd "$dir" && pwd)"
# shellcheck disable=SC1091
. "$dir/env"
: "${VAULT_ADDR:?not set in $dir/env}" "${VAULT_TOKEN:?not set in $dir/env}"
: "${KUBECONFIG:?not set in $dir/env}" "${KUBE_BIN_DIR:?not set in $dir/env}"
ca_file="$dir/certs/ca.crt"
[ -f "$ca_file" ] || die "no cluster CA at $ca_file"
kubectl=("$KUBE_BIN_DIR/kubectl" --kubeconfig "$KUBECONFIG")

# Reviewer tokens live this long; rerun the script to renew (the tests' clusters
# live minutes).
REVIEWER_TOKEN_DURATION="${REVIEWER_TOKEN_DURATION:-24h}"
OPERATOR_NAMESPACE="${OPERATOR_NAMESPACE:-tenant-system}"
OPERATOR_SERVICE_ACCOUNT="${OPERATOR_SERVICE_ACCOUNT:-tenant-operator}"
KV_MOUNT="${VAULT_KV_MOUNT:-secret}"
TRANSIT_MOUNT="${VAULT_TRANSIT_MOUNT:-transit}"
ERASURE_SIGNING_KEY=erasure-certificates
OPERATOR_TOKEN_TTL="${VAULT_OPERATOR_TOKEN_TTL:-1h}"
OPERATOR_TOKEN_MAX_TTL="${VAULT_OPERATOR_TOKEN_MAX_TTL:-24h}"
OPERATOR_AUDIENCE="${VAULT_OPERATOR_AUDIENCE:-vault}"
# The operator's own policy and role. Tenants' are named tenant-<name>, so the
# operator's name is denied explicitly in its own policy: a Tenant named
# "operator" must not make the operator overwrite its own identity.
OPERATOR_VAULT_NAME=tenant-operator
# The token role through which the operator mints restore tokens (one tenant's
# restore-<name> policy, nothing else). See src/backup/vault-access.ts.
RESTORE_TOKEN_ROLE=tenant-backup-restore

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# vault_api METHOD PATH [JSON_BODY_FILE]: calls Vault's HTTP API and prints the
# response body. Fails on HTTP >= 400 with Vault's `errors` strings only (never
# the request body, which may hold a token).
vault_api() {
  local method="$1" path="$2" body_file="${3:-}" status
  local args=(-sS -X "$method" -o "$tmp/response" -w '%{http_code}' --max-time 30
    -H "X-Vault-Token: $VAULT_TOKEN")
  if [ -n "$body_file" ]; then args+=(-H 'Content-Type: application/json' --data-binary "@$body_file"); fi
  status="$(curl "${args[@]}" "$VAULT_ADDR/v1/$path")" || die "Vault $method $path: no answer from $VAULT_ADDR"
  if [ "$status" -ge 400 ]; then
    printf '[hack] error: Vault %s %s: HTTP %s: %s\n' "$method" "$path" "$status" \
      "$(json_get "$tmp/response" 'errors' 2>/dev/null || echo '(no errors field)')" >&2
    return 1
  fi
  cat "$tmp/response"
}

# json_get FILE EXPR: evaluates EXPR (a JavaScript property path on the parsed
# document, e.g. 'data["secret/"].type') and prints it; '' when absent. Node is
# what the project runs on anyway, so no jq is needed.
json_get() {
  node -e '
    const doc = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8") || "{}");
    let value;
    try { value = new Function("d", "return d." + process.argv[2])(doc); } catch { value = undefined; }
    if (value === undefined || value === null) process.stdout.write("");
    else process.stdout.write(typeof value === "string" ? value : JSON.stringify(value));
  ' "$1" "$2"
}

# json_object FILE KEY=VALUE...: writes a JSON object of string values; a VALUE of
# @path takes the file's content (certificates, tokens), a KEY ending in :json
# takes VALUE as raw JSON. Values never pass through a command line.
json_object() {
  local out="$1"; shift
  node -e '
    const fs = require("fs");
    const object = {};
    for (const arg of process.argv.slice(2)) {
      const eq = arg.indexOf("=");
      let key = arg.slice(0, eq), value = arg.slice(eq + 1);
      if (value.startsWith("@")) value = fs.readFileSync(value.slice(1), "utf8").trim();
      if (key.endsWith(":json")) { key = key.slice(0, -5); value = JSON.parse(value); }
      object[key] = value;
    }
    fs.writeFileSync(process.argv[1], JSON.stringify(object), { mode: 0o600 });
  ' "$out" "$@"
}

log "waiting for Vault at $VAULT_ADDR"
for _ in $(seq 1 150); do
  if curl -fsS --max-time 2 "$VAULT_ADDR/v1/sys/health" >"$tmp/health" 2>/dev/null; then break; fi
  sleep 0.2
done
[ "$(json_get "$tmp/health" initialized)" = true ] && [ "$(json_get "$tmp/health" sealed)" = false ] ||
  die "Vault at $VAULT_ADDR is not up, initialized and unsealed"

# --- secrets engines ---------------------------------------------------------
vault_api GET sys/mounts >"$tmp/mounts"

kv_type="$(json_get "$tmp/mounts" 'data["secret/"].type')"
kv_version="$(json_get "$tmp/mounts" 'data["secret/"].options.version')"
case "$kv_type/$kv_version" in
  kv/2) log "KV v2 at secret/: present" ;;
  /)
    log "KV v2 at secret/: enabling"
    json_object "$tmp/body" type=kv 'options:json={"version":"2"}'
    vault_api POST sys/mounts/secret "$tmp/body" >/dev/null
    ;;
  kv/* | generic/*)
    log "KV at secret/ is version ${kv_version:-1}: upgrading to v2"
    json_object "$tmp/body" 'options:json={"version":"2"}'
    vault_api POST sys/mounts/secret/tune "$tmp/body" >/dev/null
    ;;
  *) die "secret/ is mounted as '$kv_type', not KV v2: refusing to touch it" ;;
esac

transit_type="$(json_get "$tmp/mounts" 'data["transit/"].type')"
case "$transit_type" in
  transit) log "Transit at transit/: present" ;;
  "")
    log "Transit at transit/: enabling"
    json_object "$tmp/body" type=transit
    vault_api POST sys/mounts/transit "$tmp/body" >/dev/null
    ;;
  *) die "transit/ is mounted as '$transit_type', not Transit: refusing to touch it" ;;
esac

# The key erasure certificates are signed with (ed25519, never exportable):
# the operator may sign with it and read its public half, nothing more.
if vault_api GET "$TRANSIT_MOUNT/keys/$ERASURE_SIGNING_KEY" >"$tmp/signing" 2>/dev/null; then
  [ "$(json_get "$tmp/signing" 'data.type')" = ed25519 ] \
    || die "Transit key $ERASURE_SIGNING_KEY exists and is not ed25519: refusing to touch it"
  log "Transit key $ERASURE_SIGNING_KEY: present"
else
  log "Transit key $ERASURE_SIGNING_KEY: creating (ed25519)"
  json_object "$tmp/body" type=ed25519
  vault_api POST "$TRANSIT_MOUNT/keys/$ERASURE_SIGNING_KEY" "$tmp/body" >/dev/null
fi

# --- the reviewer service account ----------------------------------------------
log "ServiceAccount kube-system/vault-auth with ClusterRole system:auth-delegator"
"${kubectl[@]}" apply -f - >/dev/null <<'EOF'
apiVersion: v1
kind: ServiceAccount
metadata:
  name: vault-auth
  namespace: kube-system
  labels: { app.kubernetes.io/part-of: tenant-operator-dev }
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: vault-auth-token-reviewer
  labels: { app.kubernetes.io/part-of: tenant-operator-dev }
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: system:auth-delegator
subjects:
  - kind: ServiceAccount
    name: vault-auth
    namespace: kube-system
EOF
# A fresh token on every run: the previous one may be close to expiry, and Vault
# never shows the one it holds.
"${kubectl[@]}" -n kube-system create token vault-auth --duration="$REVIEWER_TOKEN_DURATION" \
  >"$tmp/reviewer.jwt"
chmod 600 "$tmp/reviewer.jwt"
[ -s "$tmp/reviewer.jwt" ] || die "kubectl create token returned nothing"

kubernetes_host="$("${kubectl[@]}" config view --minify -o jsonpath='{.clusters[0].cluster.server}')"
[ -n "$kubernetes_host" ] || die "no server in $KUBECONFIG"

# --- the Kubernetes auth method ------------------------------------------------
vault_api GET sys/auth >"$tmp/auths"
auth_type="$(json_get "$tmp/auths" 'data["kubernetes/"].type')"
case "$auth_type" in
  kubernetes) log "auth method at auth/kubernetes/: present" ;;
  "")
    log "auth method at auth/kubernetes/: enabling"
    json_object "$tmp/body" type=kubernetes description="Kubernetes service accounts (tenant-operator)"
    vault_api POST sys/auth/kubernetes "$tmp/body" >/dev/null
    ;;
  *) die "auth/kubernetes/ is a '$auth_type' auth method, not kubernetes: refusing to touch it" ;;
esac

# Issuer validation stays at Vault 1.21's default (off): the TokenReview by the
# API server is what authenticates a token. disable_local_ca_jwt: Vault runs
# outside any pod, so it must never pick up a host's service account files.
log "auth/kubernetes/config: kubernetes_host=$kubernetes_host, CA $ca_file, reviewer kube-system/vault-auth"
json_object "$tmp/body" kubernetes_host="$kubernetes_host" "kubernetes_ca_cert=@$ca_file" \
  "token_reviewer_jwt=@$tmp/reviewer.jwt" 'disable_local_ca_jwt:json=true'
vault_api POST auth/kubernetes/config "$tmp/body" >/dev/null
rm -f "$tmp/body" "$tmp/reviewer.jwt"

# --- the operator's own identity ------------------------------------------------
log "ServiceAccount $OPERATOR_NAMESPACE/$OPERATOR_SERVICE_ACCOUNT (the operator's Vault identity)"
"${kubectl[@]}" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Namespace
metadata:
  name: $OPERATOR_NAMESPACE
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: $OPERATOR_SERVICE_ACCOUNT
  namespace: $OPERATOR_NAMESPACE
  labels: { app.kubernetes.io/part-of: tenant-operator-dev }
EOF

# What the operator does with Vault, and nothing more:
# - tenant credentials: KV v2 data and metadata (incl. custom_metadata) under tenants/;
# - DatabaseServer admin credentials: read only, under database-servers/;
# - per-tenant ACL policies and Kubernetes auth roles named tenant-*; a role
#   may bind only tenant namespaces (never the operator's own) and grant only
#   tenant-* policies (never the operator's), so the operator cannot mint a
#   role that gives more than a tenant's policy;
# - per-tenant Transit keys named tenant-*: create, read, rotate, configure
#   (min_decryption_version, deletion at purge), delete; never `exportable`
#   nor `allow_plaintext_backup` (refused whatever the value), no import of
#   outside key material, no export, no key backup; and no data keys,
#   decrypt or rewrap: the operator never holds a tenant's data key;
# - backup identities: policies backup-* and restore-*, Kubernetes auth roles
#   backup-* bound only to ServiceAccounts backup-* in its own namespace and
#   granting only backup-* policies (tenant roles, tenant-*, never bind its
#   namespace);
# - restore tokens: through the token role $RESTORE_TOKEN_ROLE only, asking
#   for restore-* policies only; the role itself allows nothing but restore-*
#   (and never root, default or the operator's own policy);
# - the names (only) of all ACL policies, Kubernetes auth roles and Transit
#   keys, one LIST each, for the inventory that catches deletions;
# - its own token: lookup-self, renew-self, revoke-self come with `default`.
# Everything else (sys/, other KV prefixes, other auth methods and roles,
# other token creation, token roles) is refused.
cat >"$tmp/operator.hcl" <<EOF
# tenant-operator: the operator's own identity (hack/vault-config.sh)
path "$KV_MOUNT/data/tenants/*" {
  capabilities = ["create", "read", "update", "delete"]
}
path "$KV_MOUNT/metadata/tenants/*" {
  capabilities = ["create", "read", "update", "patch", "delete", "list"]
}
path "$KV_MOUNT/data/database-servers/*" {
  capabilities = ["read"]
}
path "sys/policies/acl/tenant-*" {
  capabilities = ["create", "read", "update", "delete"]
}
# Names only, one request for all tenants: a policy, role or key deleted
# behind the operator's back is seen at the next resync (src/vault/inventory.ts).
path "sys/policies/acl" {
  capabilities = ["list"]
}
path "auth/kubernetes/role" {
  capabilities = ["list"]
}
path "$TRANSIT_MOUNT/keys" {
  capabilities = ["list"]
}
path "sys/policies/acl/$OPERATOR_VAULT_NAME" {
  capabilities = ["deny"]
}
path "auth/kubernetes/role/tenant-*" {
  capabilities = ["create", "read", "update", "delete"]
  allowed_parameters = {
    "bound_service_account_names" = []
    "bound_service_account_namespaces" = ["tenant-*"]
    "token_policies" = ["tenant-*"]
    "token_ttl" = []
    "token_max_ttl" = []
    "token_period" = []
    "token_explicit_max_ttl" = []
    "audience" = []
  }
  denied_parameters = {
    "bound_service_account_namespaces" = ["$OPERATOR_NAMESPACE"]
    "token_policies" = ["$OPERATOR_VAULT_NAME"]
  }
}
path "auth/kubernetes/role/$OPERATOR_VAULT_NAME" {
  capabilities = ["deny"]
}
path "$TRANSIT_MOUNT/keys/tenant-*" {
  capabilities = ["create", "read", "update", "delete"]
  # exportable/allow_plaintext_backup would let key material leave Vault;
  # ciphertext/public_key are how keys/<name>/import[_version] bring in
  # material the operator would know (BYOK): either way the operator could
  # unwrap data keys without Vault.
  denied_parameters = {
    "exportable" = []
    "allow_plaintext_backup" = []
    "ciphertext" = []
    "public_key" = []
  }
}
path "$TRANSIT_MOUNT/sign/$ERASURE_SIGNING_KEY" {
  capabilities = ["update"]
}
path "$TRANSIT_MOUNT/keys/$ERASURE_SIGNING_KEY" {
  capabilities = ["read"]
}
path "sys/policies/acl/backup-*" {
  capabilities = ["create", "read", "update", "delete"]
}
path "sys/policies/acl/restore-*" {
  capabilities = ["create", "read", "update", "delete"]
}
path "auth/kubernetes/role/backup-*" {
  capabilities = ["create", "read", "update", "delete"]
  allowed_parameters = {
    "bound_service_account_names" = ["backup-*"]
    "bound_service_account_namespaces" = ["$OPERATOR_NAMESPACE"]
    "token_policies" = ["backup-*"]
    "token_ttl" = []
    "token_max_ttl" = []
    "token_period" = []
    "token_explicit_max_ttl" = []
    "audience" = []
  }
}
path "auth/token/create/$RESTORE_TOKEN_ROLE" {
  capabilities = ["update"]
  required_parameters = ["policies"]
  allowed_parameters = {
    "policies" = ["restore-*"]
  }
}
EOF
log "policy $OPERATOR_VAULT_NAME (least privilege for the operator)"
json_object "$tmp/body" "policy=@$tmp/operator.hcl"
vault_api PUT "sys/policies/acl/$OPERATOR_VAULT_NAME" "$tmp/body" >/dev/null

log "auth/kubernetes/role/$OPERATOR_VAULT_NAME: $OPERATOR_NAMESPACE/$OPERATOR_SERVICE_ACCOUNT, audience $OPERATOR_AUDIENCE, TTL $OPERATOR_TOKEN_TTL (max $OPERATOR_TOKEN_MAX_TTL)"
json_object "$tmp/body" \
  "bound_service_account_names:json=[\"$OPERATOR_SERVICE_ACCOUNT\"]" \
  "bound_service_account_namespaces:json=[\"$OPERATOR_NAMESPACE\"]" \
  "token_policies:json=[\"$OPERATOR_VAULT_NAME\"]" \
  token_ttl="$OPERATOR_TOKEN_TTL" token_max_ttl="$OPERATOR_TOKEN_MAX_TTL" \
  audience="$OPERATOR_AUDIENCE" token_type=service
vault_api POST "auth/kubernetes/role/$OPERATOR_VAULT_NAME" "$tmp/body" >/dev/null
rm -f "$tmp/body" "$tmp/operator.hcl"

# Restore tokens: orphans, so that they do not die with the operator's login
# token (renewed, replaced, revoked at shutdown); 15 minutes, not renewable
# (token roles have no token_ttl: the explicit max TTL is the one bound, and
# the operator's policy lets it ask for no other ttl); service tokens, so that
# revoke-self works; no `default` policy, so that a token holds exactly one
# tenant's restore policy (which grants its own revoke-self). The glob is
# anchored at the start: "restore-*" cannot match tenant-operator, default,
# root or a tenant's own tenant-* policy, and those are refused by name too.
log "auth/token/roles/$RESTORE_TOKEN_ROLE: restore-* policies only, orphan, 15m, not renewable"
json_object "$tmp/body" \
  'allowed_policies_glob:json=["restore-*"]' \
  "disallowed_policies:json=[\"root\",\"default\",\"$OPERATOR_VAULT_NAME\"]" \
  'disallowed_policies_glob:json=["tenant-*","backup-*"]' \
  'orphan:json=true' 'renewable:json=false' 'token_no_default_policy:json=true' \
  token_type=service token_explicit_max_ttl=15m
vault_api POST "auth/token/roles/$RESTORE_TOKEN_ROLE" "$tmp/body" >/dev/null
rm -f "$tmp/body"

# --- check what Vault now holds -----------------------------------------------
vault_api GET auth/kubernetes/config >"$tmp/config"
[ "$(json_get "$tmp/config" data.kubernetes_host)" = "$kubernetes_host" ] ||
  die "auth/kubernetes/config did not keep kubernetes_host"
[ "$(json_get "$tmp/config" data.token_reviewer_jwt_set)" = true ] ||
  die "auth/kubernetes/config did not keep the reviewer token"
vault_api GET sys/mounts >"$tmp/mounts"
[ "$(json_get "$tmp/mounts" 'data["secret/"].options.version')" = 2 ] || die "secret/ is not KV v2"
[ "$(json_get "$tmp/mounts" 'data["transit/"].type')" = transit ] || die "transit/ is not mounted"
vault_api GET "auth/kubernetes/role/$OPERATOR_VAULT_NAME" >"$tmp/role"
[ "$(json_get "$tmp/role" data.token_policies)" = "[\"$OPERATOR_VAULT_NAME\"]" ] ||
  die "auth/kubernetes/role/$OPERATOR_VAULT_NAME does not grant exactly policy $OPERATOR_VAULT_NAME"
vault_api GET "sys/policies/acl/$OPERATOR_VAULT_NAME" >/dev/null
vault_api GET "auth/token/roles/$RESTORE_TOKEN_ROLE" >"$tmp/token-role"
[ "$(json_get "$tmp/token-role" data.allowed_policies_glob)" = '["restore-*"]' ] &&
  [ "$(json_get "$tmp/token-role" data.allowed_policies)" = '[]' ] &&
  [ "$(json_get "$tmp/token-role" data.token_no_default_policy)" = true ] &&
  [ "$(json_get "$tmp/token-role" data.token_explicit_max_ttl)" = 900 ] ||
  die "auth/token/roles/$RESTORE_TOKEN_ROLE does not allow exactly restore-* policies"
log "Vault at $VAULT_ADDR configured: secret/ (KV v2), transit/, auth/kubernetes/, operator role and policy $OPERATOR_VAULT_NAME, token role $RESTORE_TOKEN_ROLE"
