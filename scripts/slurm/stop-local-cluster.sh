#!/usr/bin/env bash
# Stop the cluster started by start-local-cluster.sh: cancel what is queued, wait for the
# queue to drain, then SIGTERM each recorded daemon PID in reverse start order.
set -uo pipefail
DIR=$(realpath -m "${1:-/tmp/seg58-slurm}")
export SLURM_CONF=$DIR/etc/slurm.conf

alive() {  # a zombie still answers kill -0: treat state Z as gone
  kill -0 "$1" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null
}

if [ -f "$DIR/run/slurmctld.pid" ] && alive "$(cat "$DIR/run/slurmctld.pid")"; then
  timeout 10 scancel --user="$(id -un)" 2>/dev/null
  timeout 30 bash -c 'while [ -n "$(squeue -h 2>/dev/null)" ]; do sleep 0.5; done'
fi
for name in slurmd slurmctld slurmdbd mariadb munged; do
  pidfile=$DIR/run/$name.pid
  [ -f "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  if alive "$pid"; then
    kill -TERM "$pid"
    for _ in $(seq 100); do alive "$pid" || break; sleep 0.1; done
    alive "$pid" && { echo "$name ($pid) ignored SIGTERM; sending SIGKILL" >&2; kill -KILL "$pid"; }
  fi
  rm -f "$pidfile"
done
echo "SLURM cluster in $DIR stopped"
