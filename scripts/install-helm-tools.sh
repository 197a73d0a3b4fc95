#!/usr/bin/env bash
# Builds the helm CLI from source through the Go module proxy into a cache folder, once.
# The chart tests (tests/helm/) call it; nothing is downloaded outside the package registries.
#
#   usage: scripts/install-helm-tools.sh          prints the absolute path of the helm binary
#   env:   VSA_TOOLS_DIR   where binaries go (default ~/.cache/vsa/tools)
#          HELM_VERSION    a helm v3 tag on the Go module proxy (default below)
#          GOMODCACHE / GOCACHE are Go's own and are honoured as usual.
#
# Idempotent: when the binary for HELM_VERSION is already there it prints its path and exits.
# A cold build (empty Go caches) takes a few minutes on a 2-core machine; see docs/kubernetes.md.
# Everything but the last line (the path) goes to stderr, so callers can read the path from stdout.
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v3.22.0}"
# The Kubernetes version helm assumes for `helm template` / `helm lint` (.Capabilities.KubeVersion)
# follows its k8s.io/client-go module, as helm's own Makefile does (client-go v0.37 -> 1.37).
HELM_K8S_MINOR="${HELM_K8S_MINOR:-37}"
TOOLS_DIR="${VSA_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vsa/tools}"
BIN_DIR="$TOOLS_DIR/helm-$HELM_VERSION/bin"
HELM="$BIN_DIR/helm"

if [[ -x "$HELM" ]] && "$HELM" version --template '{{.Version}}' 2>/dev/null | grep -qx "$HELM_VERSION"; then
  echo "$HELM"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  echo "go is not installed; helm is built from the Go module proxy." >&2
  echo "install Go >= 1.26 (or Debian's golang-go with GOTOOLCHAIN=auto) and run this again" >&2
  exit 1
fi

mkdir -p "$BIN_DIR"
start=$(date +%s)
echo "building helm $HELM_VERSION with $(go version) into $BIN_DIR ..." >&2
pkg=helm.sh/helm/v3
ldflags="-s -w -X $pkg/internal/version.version=$HELM_VERSION"
ldflags+=" -X $pkg/internal/version.gitTreeState=clean"
for p in pkg/chartutil pkg/lint/rules; do
  ldflags+=" -X $pkg/$p.k8sVersionMajor=1 -X $pkg/$p.k8sVersionMinor=$HELM_K8S_MINOR"
done
# GOFLAGS=-mod=mod: resolve from helm's own go.mod through the proxy, ignoring any vendor dir.
# GOTOOLCHAIN=auto lets an older local Go fetch the toolchain helm's go.mod asks for (a Go module
# on the same proxy).
GOFLAGS=-mod=mod GOTOOLCHAIN="${GOTOOLCHAIN:-auto}" CGO_ENABLED=0 GOBIN="$BIN_DIR" \
  go install -trimpath -ldflags "$ldflags" "$pkg/cmd/helm@$HELM_VERSION" >&2
"$HELM" version --short >&2
echo "helm $HELM_VERSION built in $(( $(date +%s) - start )) s" >&2
echo "$HELM"
