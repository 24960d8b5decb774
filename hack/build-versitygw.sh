#!/usr/bin/env bash
# Builds Versity Gateway (an S3-compatible server with a POSIX backend) from
# github.com/versity/versitygw at $VERSITYGW_VERSION, once. Prints the binary
# directory. Its go.mod has no replace lines, so `go install` builds it as is.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

version="$VERSITYGW_VERSION"
out="$(bin_dir versitygw "$version")"
if build_done versitygw "$version"; then echo "$out"; exit 0; fi

log "building versitygw $version (about a minute)"
mkdir -p "$out"
GOBIN="$out" go install -trimpath -ldflags "-s -w" "github.com/versity/versitygw/cmd/versitygw@$version"
mark_done versitygw "$version"
log "built into $out"
echo "$out"
