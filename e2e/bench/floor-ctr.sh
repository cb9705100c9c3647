#!/usr/bin/env bash
# The floor of a container's create+start and stop+remove (containers bench): conmon and the
# same OCI runtime on the spec corral wrote, with no daemon. The bundle DIR (config.json with
# root.path DIR/rootfs) is prepared beforehand; the rootfs overlay is mounted here, as corral
# mounts it during CreateContainer.
#
#   floor-ctr.sh start DIR ID LOWERDIR RUNTIME RUNTIME_ROOT EXIT_DIR -- CONMON ARGS...
#   floor-ctr.sh stop|clean DIR ID LOWERDIR RUNTIME RUNTIME_ROOT EXIT_DIR
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
  # conmon writes the exit file once the container has exited (conmon itself lingers for a
  # while after that, so waiting for conmon would overstate the floor). Polls every ms with
  # bash's read -t on an idle fifo as the sleep: no process per poll. As StopContainer with a
  # 10 s timeout does: SIGKILL when TERM was not enough (a shell that is pid 1 ignores TERM
  # until its trap is set). Bounded: ~20 s.
  mkfifo "$d/tick"
  exec 9<>"$d/tick"
  i=0
  while [ ! -e "$exits/$id" ]; do
    i=$((i + 1))
    read -r -t 0.001 -u 9 _ || true
    [ $i -ne 10000 ] || "$runtime" --root="$root" kill "$id" KILL || true
    [ $i -le 20000 ] || { echo "no exit file for $id" >&2; exit 1; }
  done
  exec 9>&-
  "$runtime" --root="$root" delete "$id"
  umount "$d/rootfs"
  rm -rf "$d" "$exits/$id"
  ;;
clean)
  # After a failure: whatever is left of this floor container goes.
  "$runtime" --root="$root" delete --force "$id" 2>/dev/null || true
  umount "$d/rootfs" 2>/dev/null || true
  rm -rf "$d" "$exits/$id"
  ;;
*) echo "usage: floor-ctr.sh start|stop|clean ..." >&2; exit 2 ;;
esac
