#!/usr/bin/env bash
# Builds helm from helm.sh/helm/v3 at $HELM_VERSION, once. Prints the binary
# directory. The chart tests run `helm lint` and `helm template` with it, and
# apply what it renders to the local API server.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

go_install_once helm "$HELM_VERSION" helm.sh/helm/v3/cmd/helm "about two minutes on two cores"
