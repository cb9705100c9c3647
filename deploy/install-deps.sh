#!/usr/bin/env bash
# Installs what corral needs at run time from the distribution, idempotently:
# Node.js (>= 20.19) is assumed; the OCI runtimes, conmon, CNI plugins, iptables and
# catatonit (the infra process of pods that share a pid namespace) come from apt.
set -euo pipefail
PKGS=(crun runc conmon containernetworking-plugins iptables catatonit iproute2 util-linux)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
node -e 'const [a,b]=process.versions.node.split(".").map(Number); if (a<20||(a===20&&b<19)) { console.error("corral needs Node.js >= 20.19, found "+process.versions.node); process.exit(1) }'
