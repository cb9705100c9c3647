#!/usr/bin/env bash
# setup-test-tools.sh: installs everything the test suites need, idempotently.
#   - the runtime dependencies (deploy/install-deps.sh when it exists, else the same list here)
#   - the test packages from Debian (registry, busybox, skopeo, umoci, ...)
#   - node modules (npm ci, only when node_modules is missing or older than the lock file)
#   - crictl, critest v1.37.0 (and the ginkgo CLI that `critest -parallel` needs) built from the Go module proxy into <repo>/.tools/bin (gitignored;
#     skipped when the right version is already there)
#   - the UML backend of ../shared/tools/run-in-v2.sh when that host facility is present
# Usage: bash e2e/setup-test-tools.sh        (env: SKIP_APT=1 skips apt-get, SKIP_V2=1 skips UML)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CRI_TOOLS_VERSION=v1.37.0
TOOLS_BIN=$REPO/.tools/bin
export PATH=$PATH:/usr/local/go/bin:/usr/lib/go/bin
# Go keeps its module and build caches under $HOME; a CI environment may come without one.
export HOME=${HOME:-/root}
log() { echo "setup-test-tools: $*" >&2; }

# --- Debian packages -------------------------------------------------------------------------
RUNTIME_PKGS=(crun runc conmon containernetworking-plugins iptables catatonit util-linux mount)
TEST_PKGS=(docker-registry busybox-static skopeo umoci zstd openssl apache2-utils tmux socat jq curl netcat-openbsd
           iproute2 nginx-light procps psmisc kmod ca-certificates)

missing_pkgs() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || echo "$p"
  done
}

apt_install() {
  local need
  need=$(missing_pkgs "$@")
  [ -n "$need" ] || return 0
  log "apt-get install $need"
  if [ ! -e /tmp/.corral-apt-updated ]; then
    apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null
    touch /tmp/.corral-apt-updated
  fi
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
    --no-install-recommends $need >/dev/null
}

if [ "${SKIP_APT:-0}" != 1 ]; then
  if [ -x "$REPO/deploy/install-deps.sh" ] || [ -f "$REPO/deploy/install-deps.sh" ]; then
    bash "$REPO/deploy/install-deps.sh"
  else
    apt_install "${RUNTIME_PKGS[@]}"
  fi
  apt_install "${TEST_PKGS[@]}"
fi

# --- Debian's dynamic busybox, unpacked, never installed (it conflicts with busybox-static) ---
# The critest busybox stand-in needs a shell that behaves like the upstream image's: an ash that
# executes commands from PATH (busybox-static's ash runs applets in-process, so masking /bin/ls
# cannot fail `sh -c ls`) and execs the last command of `sh -c` (so `sh -c top` leaves top as
# pid 1, which has a SIGTERM handler; a shell left as pid 1 ignores SIGTERM). e2e/images uses
# .tools/busybox-dyn/bin/busybox as /bin/sh of that image when it exists.
BB_DIR=$REPO/.tools/busybox-dyn
if [ ! -x "$BB_DIR/bin/busybox" ] && [ "${SKIP_APT:-0}" != 1 ]; then
  log "unpacking Debian's busybox into $BB_DIR"
  bb_tmp=$(mktemp -d)
  chmod 755 "$bb_tmp"   # apt-get download runs as _apt where it can
  if ! (cd "$bb_tmp" && apt-get download busybox >/dev/null 2>&1); then
    apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null
    (cd "$bb_tmp" && apt-get download busybox >/dev/null 2>&1) || log "apt-get download busybox failed"
  fi
  for deb in "$bb_tmp"/busybox_*.deb; do
    [ -f "$deb" ] && mkdir -p "$BB_DIR" && dpkg-deb -x "$deb" "$BB_DIR"
  done
  rm -rf "$bb_tmp"
fi

# --- node modules ----------------------------------------------------------------------------
if [ ! -d "$REPO/node_modules" ] || [ "$REPO/package-lock.json" -nt "$REPO/node_modules/.package-lock.json" ]; then
  log "npm ci"
  (cd "$REPO" && npm ci --no-audit --no-fund --loglevel=error)
fi

# --- crictl and critest ----------------------------------------------------------------------
have_version() {   # the stamp is written only after a successful build of exactly this version
  [ -x "$TOOLS_BIN/$1" ] && [ "$(cat "$TOOLS_BIN/.$1.version" 2>/dev/null)" = "$CRI_TOOLS_VERSION" ]
}

mkdir -p "$TOOLS_BIN"
if ! have_version crictl || ! have_version critest; then
  # bookworm's golang-go (1.19) is too old for cri-tools v1.37 and cannot fetch a newer toolchain.
  command -v go >/dev/null 2>&1 || { log "no Go toolchain (need Go >= 1.21 on PATH or in /usr/local/go)"; exit 1; }
fi
LDFLAGS="-X sigs.k8s.io/cri-tools/pkg/version.Version=${CRI_TOOLS_VERSION#v}"
# cri-tools declares its minimum Go in go.mod; an older local Go fetches that toolchain from the proxy.
export GOTOOLCHAIN=${GOTOOLCHAIN:-auto} GOFLAGS=${GOFLAGS:--buildvcs=false}

if ! have_version crictl; then
  log "building crictl $CRI_TOOLS_VERSION"
  GOBIN=$TOOLS_BIN go install -ldflags "$LDFLAGS" "sigs.k8s.io/cri-tools/cmd/crictl@$CRI_TOOLS_VERSION"
  echo "$CRI_TOOLS_VERSION" > "$TOOLS_BIN/.crictl.version"
fi

if ! have_version critest || [ ! -x "$TOOLS_BIN/ginkgo" ]; then
  # critest is a Go test binary (cmd/critest has only _test.go files): build it with `go test -c`
  # from a throwaway module that requires cri-tools at the pinned version.
  log "building critest $CRI_TOOLS_VERSION"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  (
    cd "$work"
    go mod init corral-critest-build >/dev/null 2>&1
    go get -t "sigs.k8s.io/cri-tools/cmd/critest@$CRI_TOOLS_VERSION" >/dev/null 2>&1
    go test -c -ldflags "$LDFLAGS" -o "$TOOLS_BIN/critest" sigs.k8s.io/cri-tools/cmd/critest
    # `critest -parallel N` (N > 1) runs itself through the ginkgo CLI: the version critest uses.
    GOBIN=$TOOLS_BIN go install "github.com/onsi/ginkgo/v2/ginkgo@$(go list -m -f '{{.Version}}' github.com/onsi/ginkgo/v2)"
  )
  echo "$CRI_TOOLS_VERSION" > "$TOOLS_BIN/.critest.version"
  rm -rf "$work"
  trap - EXIT
fi

# --- the cgroup v2 leg's guest (host facility; absent outside this workplace) ------------------
V2=$REPO/../shared/tools/run-in-v2.sh
if [ "${SKIP_V2:-0}" != 1 ] && [ -f "$V2" ] && [ ! -x /usr/bin/linux.uml ]; then
  log "run-in-v2.sh --setup uml"
  bash "$V2" --setup uml
fi

log "ready: $("$TOOLS_BIN/crictl" --version 2>/dev/null), critest $(cat "$TOOLS_BIN/.critest.version")"
