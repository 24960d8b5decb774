#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager and kubectl from the
# k8s.io/kubernetes Go module at $KUBERNETES_VERSION, once; later runs reuse the
# cached binaries. Prints the binary directory.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

version="$KUBERNETES_VERSION"
out="$(bin_dir kubernetes "$version")"
if build_done kubernetes "$version"; then echo "$out"; exit 0; fi

work="$TENANT_OPERATOR_CACHE/build/kubernetes-$version"
wrapper_module "$work" kubernetes
cd "$work"

log "resolving k8s.io/kubernetes@$version"
gomod="$(go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
[ -f "$gomod" ] || die "could not download the go.mod of k8s.io/kubernetes@$version"

# k8s.io/kubernetes requires its staging modules at v0.0.0 and points them at
# ./staging with replace lines that do not apply to us. Each staging module is
# published at v0.<minor>.<patch>: derive the replace list from the go.mod itself.
staging_version="v0.${version#v1.}"
replaces="$(awk '$2 == "v0.0.0" && $1 ~ /^k8s\.io\// { print $1 }' "$gomod" | sort -u)"
[ -n "$replaces" ] || die "found no staging modules in $gomod"
for module in $replaces; do
  go mod edit -replace "$module=$module@$staging_version"
done

log "fetching packages (first run downloads a few hundred MB of modules)"
packages=(k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kubectl)
go get "${packages[@]/%/@$version}"

# The servers report this version through /version, as a release build would.
minor="${version#v1.}"; minor="${minor%%.*}"
pkgs=(k8s.io/component-base/version k8s.io/client-go/pkg/version)
ldflags="-s -w"
for p in "${pkgs[@]}"; do
  ldflags+=" -X $p.gitVersion=$version -X $p.gitMajor=1 -X $p.gitMinor=$minor"
  ldflags+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
done

log "building ${packages[*]} (10-30 minutes on 2 cores the first time)"
mkdir -p "$out"
go build -trimpath -ldflags "$ldflags" -o "$out/" "${packages[@]}"
mark_done kubernetes "$version"
log "built into $out"
echo "$out"
