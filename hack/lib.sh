# Shared helpers for hack/ scripts. Sourced, not executed.
# shellcheck shell=bash

HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
. "$HACK_DIR/versions.env"

TENANT_OPERATOR_CACHE="${TENANT_OPERATOR_CACHE:-$HOME/.cache/tenant-operator}"
export GOFLAGS="${GOFLAGS:--buildvcs=false}"
# Keep Go's own caches beside ours so a machine that keeps ~/.cache keeps both.
export GOMODCACHE="${GOMODCACHE:-$(go env GOMODCACHE)}"

log() { printf '[hack] %s\n' "$*" >&2; }
die() { printf '[hack] error: %s\n' "$*" >&2; exit 1; }

# bin_dir COMPONENT VERSION -> the cache directory for that build.
bin_dir() { printf '%s/bin/%s-%s\n' "$TENANT_OPERATOR_CACHE" "$1" "$2"; }

# A build is complete only when its marker file exists: a build killed half-way
# leaves no marker and is redone.
build_done() { [ -f "$(bin_dir "$1" "$2")/.complete" ]; }
mark_done() { touch "$(bin_dir "$1" "$2")/.complete"; }

# wrapper_module DIR NAME: an empty Go module in which we `go get` a server's
# module, so that the server's own replace directives (which only apply when it
# is the main module) do not stop the build.
wrapper_module() {
  local dir="$1" name="$2"
  rm -rf "$dir" && mkdir -p "$dir"
  (cd "$dir" && go mod init "tenant-operator.local/build/$name" >/dev/null 2>&1)
}

# go_install_once COMPONENT VERSION PACKAGE HOW_LONG: `go install PACKAGE@VERSION`
# into the cache, once, for modules whose go.mod needs no replace lines.
# Prints the binary directory.
go_install_once() {
  local component="$1" version="$2" package="$3" how_long="$4" out
  out="$(bin_dir "$component" "$version")"
  if build_done "$component" "$version"; then echo "$out"; return 0; fi
  log "building $component $version ($how_long)"
  mkdir -p "$out"
  GOBIN="$out" go install -trimpath -ldflags "-s -w" "$package@$version"
  mark_done "$component" "$version"
  log "built into $out"
  echo "$out"
}
