#!/usr/bin/env bash
# Builds etcd from go.etcd.io/etcd/server/v3 at $ETCD_VERSION, once. Prints the
# binary directory.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

version="$ETCD_VERSION"
out="$(bin_dir etcd "$version")"
if build_done etcd "$version"; then echo "$out"; exit 0; fi

work="$TENANT_OPERATOR_CACHE/build/etcd-$version"
wrapper_module "$work" etcd
cd "$work"
log "building go.etcd.io/etcd/server/v3@$version"
go get "go.etcd.io/etcd/server/v3@$version"
mkdir -p "$out"
go build -trimpath -ldflags "-s -w" -o "$out/etcd" go.etcd.io/etcd/server/v3
mark_done etcd "$version"
log "built into $out"
echo "$out"
