#!/usr/bin/env bash
# The cgroup v2 leg: this host runs cgroups in hybrid mode, so the cgroup and container-resource
# tests run a second time inside a throwaway guest whose only hierarchy is cgroup v2, through the
# host facility ../shared/tools/run-in-v2.sh (UML backend, -u). Absent facility: prints
# "v2: skipped" and exits 0 (on a real cgroup v2 host the same tests run natively in the e2e step).
#
# In the guest (e2e/v2/guest.sh): a registry of its own (the guest has only loopback), the e2e
# files listed in e2e/v2/tests.txt under ava, the standalone kubelet suite (crun) when the kubelet
# is built, then the cgroup-related critest specs held at the
# "v2" entry of e2e/critest-floor. The daemon's state and root dirs live on a tmpfs (-T): overlay
# upperdirs cannot live on the guest's overlay root.
#
# Usage: bash e2e/v2/run.sh [--tap FILE] [--update-floor]     (env V2_TIMEOUT seconds, default 900)
# --tap FILE gets the ava TAP followed by totals that include the critest subset.
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
V2=$REPO/../shared/tools/run-in-v2.sh
TAP=""
UPDATE=0
while [ $# -gt 0 ]; do
  case $1 in
    --tap) TAP=$2; shift 2;;
    --update-floor) UPDATE=1; shift;;
    *) echo "usage: $0 [--tap FILE] [--update-floor]" >&2; exit 2;;
  esac
done

if [ ! -f "$V2" ]; then
  echo "v2: skipped (no $V2 on this host)"
  exit 0
fi
if [ ! -x /usr/bin/linux.uml ]; then
  bash "$V2" --setup uml || { echo "v2: run-in-v2.sh --setup uml failed"; exit 1; }
fi

OUT=$(mktemp -d "${TMPDIR:-/tmp}/corral-v2-out.XXXXXX")
trap 'rm -rf "$OUT"' EXIT
# Build (or refresh) the test images on the host: in the guest / is a throwaway overlay.
node "$REPO/dist/e2e/images/build.js" "$REPO/.tools/images" --quiet || { echo "v2: image build failed"; exit 1; }

GUEST_TMP=/var/tmp/corral-e2e-v2
cd "$REPO"
bash "$V2" -u -t "${V2_TIMEOUT:-900}" -m 3072 -T "$GUEST_TMP" -w "$OUT" -- \
  env CORRAL_E2E_TMPDIR="$GUEST_TMP" CORRAL_E2E_EXCLUSIVE=1 CORRAL_E2E_V2=1 CORRAL_E2E_IMAGES="$REPO/.tools/images" \
  V2_OUT="$OUT" V2_UPDATE_FLOOR="$UPDATE" bash e2e/v2/guest.sh
rc=$?

# run-in-v2.sh returns when the guest has reported, while the UML kernel's host processes
# (linux.uml) are still winding down; wait for them (bounded) so the host check that follows
# does not see them as left behind.
for _ in $(seq 1 100); do
  pgrep -x linux.uml >/dev/null 2>&1 || break
  sleep 0.2
done

# Totals: the ava files' TAP counts plus the critest subset (its failing specs count as skipped
# while the v2 floor holds, as in the main critest run).
p=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$OUT/ava.tap" 2>/dev/null | tail -1)
f=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$OUT/ava.tap" 2>/dev/null | tail -1)
s=$(sed -n 's/^# skip \([0-9]*\)$/\1/p' "$OUT/ava.tap" 2>/dev/null | tail -1)
if [ -z "$p" ] && [ -z "$f" ] && [ -s "$OUT/ava.tap" ]; then   # runner died: count its test lines
  p=$(grep -c '^ok ' "$OUT/ava.tap") f=$(grep -c '^not ok ' "$OUT/ava.tap")
fi
p=${p:-0} f=${f:-0} s=${s:-0}
if [ ! -s "$OUT/ava.tap" ] || [ "$(cat "$OUT/ava.rc" 2>/dev/null)" != 0 ] && [ "$f" = 0 ]; then f=$((f + 1)); fi
# The standalone kubelet suite, when the guest ran it (the kubelet is built): its TAP counts too.
if [ -s "$OUT/kubelet.tap" ]; then
  kp=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$OUT/kubelet.tap" | tail -1)
  kf=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$OUT/kubelet.tap" | tail -1)
  [ -z "$kp" ] && [ -z "$kf" ] && { kp=$(grep -c '^ok ' "$OUT/kubelet.tap"); kf=$(( $(grep -c '^not ok ' "$OUT/kubelet.tap") + 1 )); }
  kp=${kp:-0} kf=${kf:-0}
  [ "$(cat "$OUT/kubelet.rc" 2>/dev/null)" != 0 ] && [ "$kf" = 0 ] && kf=1
  p=$((p + kp)) f=$((f + kf))
fi
if [ -s "$OUT/critest-summary.json" ]; then
  read -r cp cf cs < <(jq -r '"\(.passed) \(.failed) \(.skipped)"' "$OUT/critest-summary.json")
  p=$((p + cp)) f=$((f + cf)) s=$((s + cs))
  [ "$UPDATE" = 1 ] && [ -s "$OUT/critest-floor" ] && cp "$OUT/critest-floor" "$REPO/e2e/critest-floor"
else
  echo "v2: the critest subset left no summary"
  f=$((f + 1))
fi
[ "$rc" != 0 ] && [ "$f" = 0 ] && { echo "v2: guest exited $rc"; f=1; }
if [ -n "$TAP" ]; then
  { cat "$OUT/ava.tap" "$OUT/kubelet.tap" 2>/dev/null; echo "# v2 totals (ava + kubelet + critest subset)"; echo "# pass $p"; echo "# fail $f"; echo "# skip $s"; } > "$TAP"
fi
echo "v2: $p passed, $f failed, $s skipped"
[ "$f" = 0 ]
