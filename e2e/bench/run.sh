#!/usr/bin/env bash
# Builds corral and runs the benchmarks (as root; takes several minutes; not part of the tests).
#   bash e2e/bench/run.sh [--only pods,containers,streaming,stats,pull] [--out FILE] [--quick]
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "run.sh: the benchmarks need root (namespaces, mounts, CNI)" >&2; exit 1; }
[ -d proto/gen ] || npm run gen-types --silent
# tsc emits even when some file has a type error; the bench only needs its own files to compile.
npx tsc -p . >/tmp/corral-bench-tsc.log 2>&1 || grep -E '^e2e/bench/' /tmp/corral-bench-tsc.log >&2 || true
[ -x .tools/bin/crictl ] || bash e2e/setup-test-tools.sh
exec node dist/e2e/bench/run.js "$@"
