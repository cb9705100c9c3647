#!/usr/bin/env bash
# build.sh: containerd and its runc shim, the reference runtime the comparisons run beside
# corral (node conformance, benchmarks), built from the Go module proxy into <repo>/.tools/bin
# and cached by version (a stamp; never committed). ~5 min cold on 2 cores, seconds warm.
#   containerd containerd-shim-runc-v2   github.com/containerd/containerd/v2 $CONTAINERD_VERSION
# The OCI runtime is the host's runc (the one corral's runc handler runs), so that the runtimes
# compared differ only in the daemon.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CONTAINERD_VERSION=${CONTAINERD_VERSION:-v2.4.2}
BIN=$REPO/.tools/bin
export PATH=$PATH:/usr/local/go/bin HOME=${HOME:-/root}
export GOTOOLCHAIN=${GOTOOLCHAIN:-auto} GOFLAGS=${GOFLAGS:--buildvcs=false}
log() { echo "containerd/build: $*" >&2; }
mkdir -p "$BIN"

if [ -x "$BIN/containerd" ] && [ -x "$BIN/containerd-shim-runc-v2" ] \
  && [ "$(cat "$BIN/.containerd.version" 2>/dev/null)" = "$CONTAINERD_VERSION" ]; then
  log "ready: containerd $CONTAINERD_VERSION"
  exit 0
fi
log "building containerd $CONTAINERD_VERSION"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cd "$work"
go mod init corral-containerd-build >/dev/null 2>&1
go get "github.com/containerd/containerd/v2@$CONTAINERD_VERSION" >/dev/null 2>&1
p=github.com/containerd/containerd/v2
ld="-s -w -X $p/version.Version=$CONTAINERD_VERSION -X $p/version.Package=github.com/containerd/containerd/v2"
# The daemon as containerd's release builds it (cgo off: no btrfs, no devmapper snapshotters);
# the shim is static.
CGO_ENABLED=0 go build -mod=mod -trimpath -tags "no_btrfs no_devmapper no_zfs" -ldflags "$ld" -o "$BIN/" "$p/cmd/containerd" "$p/cmd/containerd-shim-runc-v2"
echo "$CONTAINERD_VERSION" > "$BIN/.containerd.version"
log "ready: containerd $CONTAINERD_VERSION"
