#!/usr/bin/env bash
# Installs what the tests and the local stack need on a fresh machine:
# Debian packages, then the servers built from their Go modules (cached).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

need_apt=()
command -v openssl >/dev/null || need_apt+=(openssl)
command -v curl >/dev/null || need_apt+=(curl)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing ${need_apt[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
command -v go >/dev/null || die "Go is needed to build the test servers (etcd, kube-apiserver, Vault)"

"$HACK_DIR/build-etcd.sh" >/dev/null
"$HACK_DIR/build-kube.sh" >/dev/null
"$HACK_DIR/build-vault.sh" >/dev/null
"$HACK_DIR/build-versitygw.sh" >/dev/null
