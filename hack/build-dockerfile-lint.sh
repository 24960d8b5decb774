#!/usr/bin/env bash
# Builds hack/tools/dockerfile-lint (BuildKit's Dockerfile checks, offline)
# against github.com/moby/buildkit at $BUILDKIT_VERSION, once per version of
# its source. Prints the binary directory.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

tool="$HACK_DIR/tools/dockerfile-lint"
# The cache key carries the tool's own source too: an edit rebuilds it.
source_hash="$(cat "$tool/main.go" "$tool/go.mod" "$tool/go.sum" | sha256sum | cut -c1-12)"
version="$BUILDKIT_VERSION-$source_hash"
out="$(bin_dir dockerfile-lint "$version")"
if build_done dockerfile-lint "$version"; then echo "$out"; exit 0; fi
log "building dockerfile-lint with BuildKit $BUILDKIT_VERSION (about a minute)"
mkdir -p "$out"
(cd "$tool" && go build -trimpath -ldflags "-s -w" -o "$out/dockerfile-lint" .)
mark_done dockerfile-lint "$version"
log "built into $out"
echo "$out"
