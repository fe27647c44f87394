#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, for the `slurm`-marked tests (CI, as root, Debian).
#
#   eval "$(bash .ci/slurm.sh start)"  # install slurm-wlm if needed, write the config, start the
#                                      # daemons, wait (bounded) until the node is idle; prints
#                                      # `export SLURM_CONF=...` for the caller to evaluate
#   bash .ci/slurm.sh stop             # stop the daemons this script started (by PID), nothing else
#
# No systemd and no cgroups: munged, slurmctld and slurmd run in the foreground as background
# processes (ProctrackType=proctrack/linuxproc, TaskPlugin=task/none). No accounting: submitit's
# `sacct` calls fail, which is the case otdata's launcher must handle (see docs/CLUSTER.md).
# Everything lives in $OTDATA_SLURM_DIR (default /tmp/otdata-slurm); /etc/slurm is not touched.
set -euo pipefail

dir="${OTDATA_SLURM_DIR:-/tmp/otdata-slurm}"
wait_s="${OTDATA_SLURM_WAIT_S:-60}"

log() { echo "[slurm.sh] $*" >&2; }

install() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null; then
    return
  fi
  log "installing slurm-wlm"
  export DEBIAN_FRONTEND=noninteractive
  timeout 600 apt-get update -qq
  timeout 600 apt-get install -y -qq slurm-wlm >/dev/null
}

write_config() {
  local host node
  host=$(hostname -s)
  # `slurmd -C` prints this host's CPUs, sockets, cores and memory as a NodeName line.
  node=$(slurmd -C | head -n 1)
  mkdir -p "$dir/state" "$dir/spool" "$dir/munge"
  cat >"$dir/slurm.conf" <<EOF
ClusterName=otdata-ci
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=600
$node State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

start_daemon() {  # name, command...: started in the foreground mode, its PID recorded
  local name=$1
  shift
  "$@" >"$dir/$name.out" 2>&1 &
  echo $! >>"$dir/started.pids"
  log "$name started (pid $!)"
}

start() {
  local pid
  for pid in $(cat "$dir/started.pids" 2>/dev/null); do
    if kill -0 "$pid" 2>/dev/null; then
      log "a cluster started by this script is already running in $dir (pid $pid): stop it first"
      return 1
    fi
  done
  local started=$SECONDS
  install
  write_config
  : >"$dir/started.pids"
  export SLURM_CONF="$dir/slurm.conf"
  if [ -S /run/munge/munge.socket.2 ] && munge -n >/dev/null 2>&1; then
    log "munged already running: using it"
  else
    mkdir -p /run/munge && chown munge:munge /run/munge
    start_daemon munged setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged --foreground
    for _ in $(seq 50); do munge -n >/dev/null 2>&1 && break; sleep 0.2; done
  fi
  start_daemon slurmctld /usr/sbin/slurmctld -D -i -f "$SLURM_CONF"
  start_daemon slurmd /usr/sbin/slurmd -D -f "$SLURM_CONF"
  local deadline=$((SECONDS + wait_s)) state=""
  while [ $SECONDS -lt $deadline ]; do
    state=$(sinfo -h -o %T 2>/dev/null | head -n 1 || true)
    [ "$state" = idle ] && break
    sleep 1
  done
  if [ "$state" != idle ]; then
    log "the node is not idle after ${wait_s}s (state: '${state:-no answer}'); logs:"
    tail -n 20 "$dir"/*.log "$dir"/*.out >&2 || true
    stop
    return 1
  fi
  log "node idle after $((SECONDS - started))s: $(sinfo -h -o '%P %D nodes, %c CPUs, %m MB')"
  echo "export SLURM_CONF=$SLURM_CONF"
}

stop() {
  [ -f "$dir/started.pids" ] || return 0
  local pid
  # slurmd first, then slurmctld, then munged: the reverse of the start order.
  for pid in $(tac "$dir/started.pids"); do
    kill "$pid" 2>/dev/null || true
  done
  for pid in $(tac "$dir/started.pids"); do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
  done
  rm -f "$dir/started.pids"
  log "stopped the daemons it started"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
