#!/bin/sh
# The floor of one pod sandbox cycle (pods bench): what RunPodSandbox + StopPodSandbox +
# RemovePodSandbox cannot avoid doing, with no daemon. Pins net/ipc/uts with util-linux unshare
# (bind mounts onto files), runs the CNI chain ADD (loopback on lo, then the conflist's plugins
# on eth0 with prevResult chaining), then DEL in reverse order and unmounts.
#
#   floor-pod.sh host|bridge WORKDIR ID NETDIR TYPE...
#
# NETDIR holds loopback.json and plugin-K.json (K = 0.., in conflist order, each a one-line
# plugin config with cniVersion and name, WITHOUT its closing brace so that prevResult can be
# appended without jq); TYPE... are the plugin types in the same order.
# The loopback network is not deleted, as corral does not (DEL of loopback frees nothing).
set -eu
mode=$1
id=$3
d=$2/$id
net=$4
shift 4
cni=${CNI_BIN_DIR:-/usr/lib/cni}
mkdir -p "$d"
: > "$d/ipc"
: > "$d/uts"
if [ "$mode" = host ]; then
  unshare --ipc="$d/ipc" --uts="$d/uts" true
  umount "$d/ipc" "$d/uts"
  rm -rf "$d"
  exit 0
fi
: > "$d/net"
unshare --net="$d/net" --ipc="$d/ipc" --uts="$d/uts" true
export CNI_CONTAINERID="$id" CNI_NETNS="$d/net" CNI_PATH="$cni"
CNI_COMMAND=ADD CNI_IFNAME=lo "$cni/loopback" < "$net/loopback.json" > /dev/null
res=
k=0
for type in "$@"; do
  IFS= read -r conf < "$net/plugin-$k.json"
  if [ -z "$res" ]; then in="$conf}"; else in="$conf,\"prevResult\":$res}"; fi
  res=$(CNI_COMMAND=ADD CNI_IFNAME=eth0 "$cni/$type" <<IN
$in
IN
)
  k=$((k + 1))
done
# DEL in reverse order, each with the final result as prevResult (CNI spec 1.0).
while [ $k -gt 0 ]; do
  k=$((k - 1))
  IFS= read -r conf < "$net/plugin-$k.json"
  type=$(eval echo "\${$((k + 1))}")
  CNI_COMMAND=DEL CNI_IFNAME=eth0 "$cni/$type" > /dev/null <<IN
$conf,"prevResult":$res}
IN
done
umount "$d/net" "$d/ipc" "$d/uts"
rm -rf "$d"
