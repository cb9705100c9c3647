#!/bin/sh
# The floor of a container's create+start and stop+remove (containers bench): conmon and the
# same OCI runtime on the spec corral wrote, with no daemon. The bundle DIR (config.json with
# root.path DIR/rootfs) is prepared beforehand; the rootfs overlay is mounted here, as corral
# mounts it during CreateContainer.
#
#   floor-ctr.sh start DIR ID LOWERDIR RUNTIME RUNTIME_ROOT EXIT_DIR -- CONMON ARGS...
#   floor-ctr.sh stop  DIR ID LOWERDIR RUNTIME RUNTIME_ROOT EXIT_DIR
set -eu
op=$1 d=$2 id=$3 lower=$4 runtime=$5 root=$6 exits=$7
shift 7
case $op in
start)
  shift # --
  mkdir -p "$d/rootfs" "$d/upper" "$d/work"
  mount -t overlay overlay -o "lowerdir=$lower,upperdir=$d/upper,workdir=$d/work" "$d/rootfs"
  # conmon forks; its child runs `runtime create` and reports the container pid (or -1 and a
  # message) on the sync pipe, fd 3 here.
  out=$(_OCI_SYNCPIPE=3 "$@" 3>&1 >/dev/null 2>>"$d/conmon.stderr" | head -n 1)
  case $out in
  *'"data": -'* | *'"data":-'* | '') echo "conmon: ${out:-no answer}" >&2; exit 1 ;;
  esac
  "$runtime" --root="$root" start "$id"
  ;;
stop)
  "$runtime" --root="$root" kill "$id" TERM
  # conmon writes the exit file once the container has exited (bounded: 20 s).
  i=0
  while [ ! -e "$exits/$id" ]; do
    i=$((i + 1))
    [ $i -le 20000 ] || { echo "no exit file for $id" >&2; exit 1; }
    sleep 0.001
  done
  "$runtime" --root="$root" delete "$id"
  umount "$d/rootfs"
  rm -rf "$d" "$exits/$id"
  ;;
*) echo "usage: floor-ctr.sh start|stop ..." >&2; exit 2 ;;
esac
