#!/usr/bin/env bash
# Sets up and runs corral in the foreground with its embedded defaults (no config file
# needed): installs the run-time packages, the npm dependencies, builds, then serves CRI
# on /run/corral/corral.sock. Extra arguments go to `corral serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
npm run build --silent
exec node dist/server/main.js serve "$@"
