#!/usr/bin/env bash
# Start a real single-node SLURM cluster on this machine, for tests and demos:
# munge, MariaDB (private datadir), slurmdbd (accounting: submitit needs sacct), slurmctld, slurmd.
# Everything lives under one folder; every daemon's PID is recorded for stop-local-cluster.sh.
#
#   scripts/slurm/start-local-cluster.sh [DIR]      (default /tmp/seg58-slurm)
#   export SLURM_CONF=DIR/etc/slurm.conf            (printed at the end)
#
# Needs (Debian): slurmctld slurmd slurm-client slurmdbd munge mariadb-server. Run as root.
set -euo pipefail
DIR=$(realpath -m "${1:-/tmp/seg58-slurm}")
DB_PORT=${SEG58_SLURM_DB_PORT:-3398}
DBD_PORT=${SEG58_SLURM_DBD_PORT:-6819}
CTLD_PORT=${SEG58_SLURM_CTLD_PORT:-6817}
SLURMD_PORT=${SEG58_SLURM_SLURMD_PORT:-6818}

for bin in munged slurmctld slurmd slurmdbd mariadbd sbatch sacct; do
  command -v "$bin" >/dev/null || { echo "missing $bin: apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge slurmdbd mariadb-server" >&2; exit 1; }
done
if [ -e "$DIR/run/slurmctld.pid" ]; then
  echo "a cluster seems to run from $DIR already (stop it with stop-local-cluster.sh $DIR)" >&2; exit 1
fi
mkdir -p "$DIR"/{etc,state,spool,log,run,mysql,jobs}
export SLURM_CONF=$DIR/etc/slurm.conf

wait_for() {  # wait_for SECONDS DESCRIPTION CMD...
  local secs=$1 what=$2; shift 2
  if ! timeout "$secs" bash -c "until { $*; } >/dev/null 2>&1; do sleep 0.2; done"; then
    echo "timed out after ${secs}s waiting for $what; logs in $DIR/log" >&2; exit 1
  fi
}

# 1. munge, in the foreground as the munge user (setpriv keeps $! = munged's own PID)
install -d -o munge -g munge -m 0755 /run/munge
[ -s /etc/munge/munge.key ] || mungekey --create --force
setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged -F >"$DIR/log/munged.log" 2>&1 &
echo $! >"$DIR/run/munged.pid"
wait_for 10 munge "munge -n | unmunge"

# 2. slurm.conf before any slurm command (clients retry 60 s on a missing file); the accounting
#    database keeps each job's script and environment, as many sites do (`sacct --env-vars`)
HOST=$(hostname -s)
cat >"$SLURM_CONF" <<CONF
ClusterName=seg58
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid.daemon
SlurmdPidFile=$DIR/run/slurmd.pid.daemon
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
SchedulerParameters=batch_sched_delay=0
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
AccountingStoreFlags=job_env,job_script
JobRequeue=1
KillWait=2
MailProg=/bin/true
ReturnToService=2
CONF
# a small MaxArraySize (SEG58_SLURM_MAX_ARRAY_SIZE) makes a modest grid span several arrays, as a
# ten-thousand-cell one does with the default 1001 (the SLURM tests set 5)
[ -z "${SEG58_SLURM_MAX_ARRAY_SIZE:-}" ] || echo "MaxArraySize=$SEG58_SLURM_MAX_ARRAY_SIZE" >>"$SLURM_CONF"
NODE=$(slurmd -C | head -n 1)
echo "$NODE NodeAddr=127.0.0.1 State=UNKNOWN" >>"$SLURM_CONF"
NODENAME=$(sed -n 's/^NodeName=\([^ ]*\).*/\1/p' <<<"$NODE")
echo "PartitionName=debug Nodes=$NODENAME Default=YES MaxTime=INFINITE State=UP" >>"$SLURM_CONF"

# 3. MariaDB with a private datadir, TCP on loopback only
if [ ! -d "$DIR/mysql/mysql" ]; then
  mariadb-install-db --no-defaults --datadir="$DIR/mysql" --user=root --auth-root-authentication-method=normal \
    >"$DIR/log/mariadb-install.log" 2>&1
fi
mariadbd --no-defaults --datadir="$DIR/mysql" --socket="$DIR/run/mysqld.sock" --port="$DB_PORT" \
  --bind-address=127.0.0.1 --user=root --pid-file="$DIR/run/mysqld.pid.daemon" --skip-name-resolve \
  --log-error="$DIR/log/mariadb.log" &
echo $! >"$DIR/run/mariadb.pid"
wait_for 30 MariaDB "mariadb-admin --socket=$DIR/run/mysqld.sock -u root ping"
mariadb --socket="$DIR/run/mysqld.sock" -u root <<SQL
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'seg58-local';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
SQL

# 4. slurmdbd: reads slurmdbd.conf next to slurm.conf, which must be 0600
install -m 0600 /dev/null "$DIR/etc/slurmdbd.conf"
cat >"$DIR/etc/slurmdbd.conf" <<CONF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=seg58-local
StorageLoc=slurm_acct_db
LogFile=$DIR/log/slurmdbd.log
PidFile=$DIR/run/slurmdbd.pid.daemon
CONF
slurmdbd -D >>"$DIR/log/slurmdbd.out" 2>&1 &
echo $! >"$DIR/run/slurmdbd.pid"
wait_for 30 slurmdbd "sacctmgr -n list cluster"

# 5. controller and node daemon
slurmctld -D -i -f "$SLURM_CONF" >>"$DIR/log/slurmctld.out" 2>&1 &
echo $! >"$DIR/run/slurmctld.pid"
slurmd -D -f "$SLURM_CONF" >>"$DIR/log/slurmd.out" 2>&1 &
echo $! >"$DIR/run/slurmd.pid"
wait_for 30 "node $NODENAME idle" "sinfo -h -n $NODENAME -o %t | grep -qx idle"
echo "SLURM cluster up: export SLURM_CONF=$SLURM_CONF"
