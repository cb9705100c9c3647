#!/usr/bin/env bash
# Runs inside the cgroup v2 guest (see run.sh); results go to $V2_OUT, shared with the host.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
echo "v2 guest: $(uname -r), cgroup controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
mkdir -p "$CORRAL_E2E_TMPDIR"

files=()
while read -r name _; do
  case $name in ''|'#'*) continue;; esac
  f=dist/e2e/tests/$name.e2e.js
  if [ -f "$f" ]; then files+=("$f"); else echo "v2 guest: no $f, skipped"; fi
done < e2e/v2/tests.txt

# One registry for both steps; the builder finds the host-built images up to date.
node dist/e2e/harness/with-registry.js -- bash -c '
  if [ $# -gt 0 ]; then
    node dist/e2e/harness/run-tap.js -- node_modules/.bin/ava --config e2e/ava.config.js --tap "$@" 2>&1 | tee "$V2_OUT/ava.tap"
    echo "${PIPESTATUS[0]}" > "$V2_OUT/ava.rc"
  else
    printf "# no e2e files for the v2 leg\n# pass 0\n# fail 0\n" > "$V2_OUT/ava.tap"; echo 0 > "$V2_OUT/ava.rc"
  fi
  # The standalone kubelet suite (crun) on cgroup v2, when e2e/kube/build.sh has built the kubelet.
  if [ -x .tools/bin/kubelet ] && [ -f dist/e2e/kubelet/standalone-crun.e2e.js ]; then
    # The cpuinfo of UML has no "cpu MHz" line, and cadvisor in the kubelet refuses to start
    # without a clock speed ("could not detect clock speed"): in this throwaway guest only, the
    # kubelet reads the cpuinfo of UML with that line added. (No apostrophes in this block:
    # it is one single-quoted bash -c script.)
    if ! grep -q "^cpu MHz" /proc/cpuinfo; then
      { cat /proc/cpuinfo; printf "cpu MHz\t\t: 1000.000\n"; } > /tmp/cpuinfo-with-mhz
      mount --bind /tmp/cpuinfo-with-mhz /proc/cpuinfo
    fi
    node dist/e2e/harness/run-tap.js -- node_modules/.bin/ava --config e2e/kubelet/ava.config.js --tap \
      dist/e2e/kubelet/standalone-crun.e2e.js 2>&1 | tee "$V2_OUT/kubelet.tap"
    echo "${PIPESTATUS[0]}" > "$V2_OUT/kubelet.rc"
  fi
  floor=()
  [ "$V2_UPDATE_FLOOR" = 1 ] && floor=(--update-floor)
  node dist/e2e/critest/run.js --mode spdy --floor-key v2 --timeout 8m \
    --focus "stats|OOMKilled|basic operations on container|Mount Readonly|Image Volume|UserNamespaces" \
    --report-dir "$V2_OUT/critest" --summary "$V2_OUT/critest-summary.json" "${floor[@]}"
  [ "$V2_UPDATE_FLOOR" = 1 ] && cp e2e/critest-floor "$V2_OUT/critest-floor"
  exit 0
' v2-guest "${files[@]}"
