#!/usr/bin/env bash
# build.sh: the Kubernetes programs the kubelet suites need, built from the Go module proxy into
# <repo>/.tools/bin and cached by version (a stamp per set; never committed).
#   kubelet kube-apiserver kube-controller-manager kube-scheduler kubectl   k8s.io/kubernetes $K8S_VERSION
#   etcd                                                                   go.etcd.io/etcd/server/v3 $ETCD_VERSION
# k8s.io/kubernetes is not meant to be required as a module: its go.mod replaces every
# k8s.io/<name> by ./staging/src/k8s.io/<name>. A throwaway module requires it and points each of
# those replaces at the published k8s.io/<name> v0.<minor>.<patch> instead; all five programs are
# built by one `go build` so they share the compile cache (~15 min cold on 2 cores, seconds warm).
# The version variables that `kubectl version` and the node's status report are set as the
# release build sets them (the API server compares kubelet and kubectl versions against its own).
# Usage: bash e2e/kube/build.sh [--e2e-node]
#   --e2e-node also builds the node conformance suite (e2e_node.test, ~30 CPU-min cold) and agnhost
#   (k8s.io/kubernetes/test/images/agnhost, static), the program of the suite's agnhost images.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
K8S_VERSION=${K8S_VERSION:-v1.37.2}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
BIN=$REPO/.tools/bin
WORK=$REPO/.tools/kube-build
export PATH=$PATH:/usr/local/go/bin HOME=${HOME:-/root}
export GOTOOLCHAIN=${GOTOOLCHAIN:-auto} GOFLAGS=${GOFLAGS:--buildvcs=false} CGO_ENABLED=0
log() { echo "kube/build: $*" >&2; }
mkdir -p "$BIN"

stamp_ok() { [ "$(cat "$BIN/.$1.version" 2>/dev/null)" = "$2" ]; }

# The throwaway module: go.mod with the staging replaces resolved to published versions.
prepare_module() {
  [ -f "$WORK/.ready-$K8S_VERSION" ] && return 0
  rm -rf "$WORK"; mkdir -p "$WORK"
  cd "$WORK"
  go mod init corral-kube-build >/dev/null 2>&1
  local gomod staging_minor
  gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p')
  [ -f "$gomod" ] || { log "no go.mod for k8s.io/kubernetes@$K8S_VERSION"; exit 1; }
  staging_minor="v0.${K8S_VERSION#v1.}"
  {
    echo "require k8s.io/kubernetes $K8S_VERSION"
    # "k8s.io/api => ./staging/src/k8s.io/api" -> "k8s.io/api => k8s.io/api v0.37.2"
    sed -n 's#^\s*\(k8s\.io/[A-Za-z0-9._/-]*\) => \./staging/src/.*$#replace \1 => \1 '"$staging_minor"'#p' "$gomod"
  } >> go.mod
  # The programs' packages, so that `go mod tidy` records every module they need.
  {
    printf 'package main\n\nimport (\n'
    printf '\t_ "%s"\n' k8s.io/kubernetes/cmd/kubelet/app k8s.io/kubernetes/cmd/kube-apiserver/app \
      k8s.io/kubernetes/cmd/kube-controller-manager/app k8s.io/kubernetes/cmd/kube-scheduler/app \
      k8s.io/kubectl/pkg/cmd k8s.io/component-base/cli
    printf ')\n\nfunc main() {}\n'
  } > tools.go
  go mod tidy
  touch "$WORK/.ready-$K8S_VERSION"
}

ldflags() {
  local minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  local p=k8s.io/component-base/version
  echo "-s -w -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
}

PROGRAMS=(kubelet kube-apiserver kube-controller-manager kube-scheduler kubectl)
need=0
for p in "${PROGRAMS[@]}"; do [ -x "$BIN/$p" ] || need=1; done
stamp_ok kube "$K8S_VERSION" || need=1
if [ "$need" = 1 ]; then
  log "building ${PROGRAMS[*]} $K8S_VERSION"
  prepare_module
  cd "$WORK"
  pkgs=(); for p in "${PROGRAMS[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$p"); done
  go build -mod=mod -trimpath -ldflags "$(ldflags)" -o "$BIN/" "${pkgs[@]}"
  echo "$K8S_VERSION" > "$BIN/.kube.version"
fi

if [ ! -x "$BIN/etcd" ] || ! stamp_ok etcd "$ETCD_VERSION"; then
  log "building etcd $ETCD_VERSION"
  ew=$(mktemp -d); trap 'rm -rf "$ew"' EXIT
  (
    cd "$ew"
    go mod init corral-etcd-build >/dev/null 2>&1
    go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null 2>&1
    go build -mod=mod -trimpath -ldflags "-s -w" -o "$BIN/etcd" go.etcd.io/etcd/server/v3
  )
  echo "$ETCD_VERSION" > "$BIN/.etcd.version"
  rm -rf "$ew"; trap - EXIT
fi

if [ "${1:-}" = --e2e-node ] && { [ ! -x "$BIN/e2e_node.test" ] || ! stamp_ok e2e_node "$K8S_VERSION"; }; then
  log "building the node e2e suite $K8S_VERSION"
  prepare_module
  cd "$WORK"
  go test -c -mod=mod -vet=off -trimpath -ldflags "$(ldflags)" -o "$BIN/e2e_node.test" k8s.io/kubernetes/test/e2e_node
  echo "$K8S_VERSION" > "$BIN/.e2e_node.version"
fi
if [ "${1:-}" = --e2e-node ] && { [ ! -x "$BIN/agnhost" ] || ! stamp_ok agnhost "$K8S_VERSION"; }; then
  log "building agnhost $K8S_VERSION"
  prepare_module
  cd "$WORK"
  go build -mod=mod -trimpath -ldflags "-s -w" -o "$BIN/agnhost" k8s.io/kubernetes/test/images/agnhost
  # The files agnhost's image adds beside the program: the porter's localhost certificate and key
  # (netexec --tls-cert-file /localhost.crt in the https hook specs).
  src=$(go list -mod=mod -m -f '{{.Dir}}' k8s.io/kubernetes)/test/images/agnhost/porter
  mkdir -p "$BIN/agnhost.d"
  cp "$src/localhost.crt" "$src/localhost.key" "$BIN/agnhost.d/"
  chmod 644 "$BIN/agnhost.d/"*
  echo "$K8S_VERSION" > "$BIN/.agnhost.version"
fi
log "ready: $(ls "$BIN" | tr '\n' ' ')"
