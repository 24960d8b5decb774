#!/usr/bin/env bash
# Builds Versity Gateway (an S3-compatible server with a POSIX backend) from
# github.com/versity/versitygw at $VERSITYGW_VERSION, once. Prints the binary
# directory. Its go.mod has no replace lines, so `go install` builds it as is.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

go_install_once versitygw "$VERSITYGW_VERSION" github.com/versity/versitygw/cmd/versitygw "about a minute"
