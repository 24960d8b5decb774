#!/usr/bin/env bash
# Builds the Vault server from github.com/hashicorp/vault at $VAULT_VERSION,
# once. Prints the binary directory.
#
# OpenBao was tried first (see hack/versions.env): the module proxy here refuses
# every OpenBao release commit's pseudo-version with 403 "not available".
set -euo pipefail
. "$(dirname "$0")/lib.sh"

version="$VAULT_VERSION"
out="$(bin_dir vault "$version")"
if build_done vault "$version"; then echo "$out"; exit 0; fi

work="$TENANT_OPERATOR_CACHE/build/vault-$version"
wrapper_module "$work" vault
cd "$work"

log "resolving github.com/hashicorp/vault@$version"
gomod="$(go mod download -json "github.com/hashicorp/vault@$version" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
[ -f "$gomod" ] || die "could not download the go.mod of vault@$version"
# Vault's go.mod swaps a few third-party modules for forks; those replace lines
# must hold for us too. Its ./api and ./sdk replaces point at the published
# module versions it also requires, so they are left out.
grep -E '^replace [^ ]+( v[^ ]+)? => [^.][^ ]* v' "$gomod" | while read -r _ from rest; do
  old="$from"; set -- $rest
  if [ "$1" != "=>" ]; then old="$from@$1"; shift; fi
  go mod edit -replace "$old=$2@$3"
done

go get "github.com/hashicorp/vault@$version"
log "building vault (15-30 minutes on 2 cores the first time)"
mkdir -p "$out"
go build -trimpath -ldflags "-s -w" -o "$out/vault" github.com/hashicorp/vault
mark_done vault "$version"
log "built into $out"
echo "$out"
