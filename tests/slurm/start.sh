#!/usr/bin/env bash
# A throw-away single-node SLURM cluster on this machine, for tests/test_slurm.py (profiles/slurm
# against real sbatch/sacct). Debian's slurm-wlm + munge + slurmdbd + MariaDB, started by hand
# (no systemd), every file of it under one folder, every daemon stopped by its PID.
#
#   bash tests/slurm/start.sh install   apt-get the packages when a binary is missing (root)
#   bash tests/slurm/start.sh start     fresh state, start the daemons, wait until the node is idle
#   bash tests/slurm/start.sh status    exit 0 when every daemon is alive and the node answers
#   bash tests/slurm/start.sh stop      cancel jobs, stop the daemons by PID, delete the folder
#   bash tests/slurm/start.sh env       the line that points SLURM's clients at this cluster
#
# start is idempotent (a running cluster is left as it is) and never installs anything.
# Clients find the cluster through SLURM_CONF (printed by `start` and `env`). The one file outside
# the folder is the link /etc/slurm/slurm.conf -> the folder's slurm.conf, made only where no
# slurm.conf exists and removed by `stop`: the executor plugin's job step (-jobstep 0.6) strips
# SLURM_* variables, SLURM_CONF too, before its inner `srun`, which then only finds the default
# path. munged and MariaDB listen on a socket and a port of their own, so a system munge or
# database is left alone.
#
# The cluster: one node (this host, its real CPUs), two partitions named like the profile's
# (`cpu`, default, and `gpu`), two fake GPUs (gres on /dev/null and /dev/zero: a job may ask
# --gpus=1 and sees CUDA_VISIBLE_DEVICES=0 or 1, but torch finds no CUDA), accounting in slurmdbd
# so that `sacct` (the executor plugin's status command) works. The node claims HEADSTART_SLURM_MEMORY MB so that the
# profile's per-rule memory (up to 32 GB) is accepted as written; nothing enforces memory here.
#
# Environment: HEADSTART_SLURM_DIR (default /tmp/headstart-slurm), HEADSTART_SLURM_MEMORY (MB,
# default 65536), HEADSTART_SLURM_DB_PORT (MariaDB on 127.0.0.1, default 13306).
set -euo pipefail

DIR=${HEADSTART_SLURM_DIR:-/tmp/headstart-slurm}
MEMORY=${HEADSTART_SLURM_MEMORY:-65536}
DB_PORT=${HEADSTART_SLURM_DB_PORT:-13306}
CLUSTER=headstart
ETC_CONF=/etc/slurm/slurm.conf
NODE=$(hostname -s)
PACKAGES="slurm-wlm munge slurmdbd mariadb-server"
BINARIES="slurmctld slurmd slurmdbd sbatch sacct munged mariadbd mariadb-install-db"
export SLURM_CONF=$DIR/etc/slurm.conf
PATH=$PATH:/usr/sbin:/sbin

say()  { echo "[slurm $(date +%T)] $*"; }
die()  { echo "[slurm] ERROR: $*" >&2; exit 1; }
# logtail <file>: the end of a daemon's log, for an error message
logtail() { [ -f "$1" ] && { echo "--- last lines of $1:" >&2; tail -n 25 "$1" >&2; } || true; }
# wait_until <seconds> <what> <log file> <command...>: poll every 0.1 s; on timeout (or when the
# process $WATCH, if set, has died) show the command's last output and the daemon's log, and fail
WATCH=
wait_until() {
  local secs=$1 what=$2 logf=$3; shift 3
  local end=$((SECONDS + secs)) why="not ready after ${secs} s"
  until "$@" > "$DIR/.probe" 2>&1; do
    if [ -n "$WATCH" ] && ! kill -0 "$WATCH" 2>/dev/null; then why="exited"; end=0; fi
    if ((SECONDS >= end)); then
      echo "--- last try of: $*" >&2; tail -n 5 "$DIR/.probe" >&2; logtail "$logf"
      echo "[slurm] $what: $why" >&2
      return 1
    fi
    sleep 0.1
  done
}
# remember <name> <pid file>: record a started daemon's PID (stop kills them in reverse order)
remember() { echo "$1 $(cat "$2")" >> "$DIR/pids"; }
missing() { local b; for b in $BINARIES; do command -v "$b" >/dev/null || echo "$b"; done; }

# ------------------------------------------------------------------------------------ install
install_packages() {
  [ -z "$(missing)" ] && { say "packages already installed"; return 0; }
  [ "$(id -u)" = 0 ] || die "installing needs root (missing: $(missing | xargs))"
  # no service may start during the install (our daemons are started by hand, below)
  local own=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; own=1
  fi
  say "apt-get install $PACKAGES"
  local rc=0
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $PACKAGES; } \
    > /tmp/headstart-slurm-apt.log 2>&1 || rc=$?
  [ $own = 1 ] && rm -f /usr/sbin/policy-rc.d
  [ $rc = 0 ] || { tail -n 30 /tmp/headstart-slurm-apt.log >&2; die "apt-get install failed"; }
  [ -z "$(missing)" ] || die "still missing after the install: $(missing | xargs)"
}

# ------------------------------------------------------------------------------------ configs
write_configs() {
  install -d -m 0755 "$DIR" "$DIR/etc"
  install -d -o slurm -g slurm -m 0755 "$DIR/ctld" "$DIR/spool" "$DIR/log" "$DIR/run"
  install -d -o munge -g munge -m 0755 "$DIR/munge"   # munged: the socket folder must be searchable by all
  install -d -o mysql -g mysql -m 0755 "$DIR/db"
  # this host as slurmd sees it (CPUs, sockets, cores, threads), with the claimed memory
  local hw
  hw=$(slurmd -C | head -n 1 | sed -E "s/RealMemory=[0-9]+/RealMemory=$MEMORY/")
  [[ $hw == NodeName=* ]] || die "unexpected 'slurmd -C' output: $hw"
  cat > "$DIR/etc/slurm.conf" <<EOF
# written by tests/slurm/start.sh; removed by 'stop'
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
AuthInfo=socket=$DIR/munge/socket
CredType=cred/munge
StateSaveLocation=$DIR/ctld
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ReturnToService=2
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# a job without --mem takes this per CPU, not the whole node
DefMemPerCPU=500
# no cgroups on these machines
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
# sacct reads slurmdbd (the executor plugin polls job states with sacct)
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
# the munge socket for talking to slurmdbd (else the default /run/munge one)
AccountingStoragePass=$DIR/munge/socket
AccountingStorageTRES=gres/gpu
# keep the comment (the plugin writes rule_<name> there) for sacct
AccountingStoreFlags=job_comment
# finished jobs stay visible to squeue/scontrol for 5 minutes; scancel: SIGKILL 5 s after SIGTERM
MinJobAge=300
KillWait=5
# take the node line below as written (the claimed memory), not what slurmd measures
SlurmdParameters=config_overrides
GresTypes=gpu
$hw NodeAddr=127.0.0.1 Gres=gpu:2 State=UNKNOWN
PartitionName=cpu Nodes=ALL Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=ALL MaxTime=INFINITE State=UP
EOF
  # two fake GPUs (two training jobs side by side, one per CPU): a gpu gres needs a device file
  # per GPU; any existing file will do
  cat > "$DIR/etc/gres.conf" <<EOF
AutoDetect=off
NodeName=$NODE Name=gpu File=/dev/null
NodeName=$NODE Name=gpu File=/dev/zero
EOF
  cat > "$DIR/etc/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$DIR/munge/socket
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=slurm
PidFile=$DIR/run/slurmdbd.pid
LogFile=$DIR/log/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=headstart
StorageLoc=slurm_acct_db
EOF
  chown slurm:slurm "$DIR/etc/slurmdbd.conf"; chmod 600 "$DIR/etc/slurmdbd.conf"   # slurmdbd insists
}

# the default path, for the jobs' inner srun (see the top); never replaces another cluster's file
link_default_conf() {
  if [ -L "$ETC_CONF" ] && [ "$(readlink "$ETC_CONF")" = "$SLURM_CONF" ]; then return 0; fi
  [ -e "$ETC_CONF" ] || [ -L "$ETC_CONF" ] \
    && die "$ETC_CONF exists (another cluster's?): the jobs' inner srun would read it instead of ours; move it away"
  install -d -m 0755 "$(dirname "$ETC_CONF")"
  ln -s "$SLURM_CONF" "$ETC_CONF"
}
unlink_default_conf() {
  if [ -L "$ETC_CONF" ] && [ "$(readlink "$ETC_CONF")" = "$SLURM_CONF" ]; then rm -f "$ETC_CONF"; fi
}

# ------------------------------------------------------------------------------------ daemons
start_munge() {
  local m=$DIR/munge
  # a key of our own, readable by munged only
  dd if=/dev/urandom of="$m/key" bs=1024 count=1 status=none
  chown munge:munge "$m/key"; chmod 400 "$m/key"
  runuser -u munge -- munged --socket="$m/socket" --key-file="$m/key" --pid-file="$m/munged.pid" \
    --log-file="$m/munged.log" --seed-file="$m/seed" || { logtail "$m/munged.log"; die "munged did not start"; }
  wait_until 10 munged "$m/munged.log" test -s "$m/munged.pid" || die "the cluster did not start"
  remember munged "$m/munged.pid"
  wait_until 10 "munge round trip" "$m/munged.log" sh -c "munge -S '$m/socket' -n | unmunge -S '$m/socket'" || die "the cluster did not start"
}

start_mariadb() {
  local db=$DIR/db   # data, socket, pid file and log, owned by mysql
  mariadb-install-db --user=mysql --datadir="$db/data" --auth-root-authentication-method=socket \
    > "$DIR/log/mariadb-install.log" 2>&1 || { logtail "$DIR/log/mariadb-install.log"; die "mariadb-install-db failed"; }
  # --no-defaults: none of /etc/mysql; TCP on 127.0.0.1 only (for slurmdbd), a socket for us
  setsid mariadbd --no-defaults --user=mysql --datadir="$db/data" --socket="$db/socket" \
    --pid-file="$db/mariadbd.pid" --log-error="$db/mariadbd.log" --bind-address=127.0.0.1 \
    --port="$DB_PORT" --innodb-buffer-pool-size=32M < /dev/null > "$DIR/log/mariadbd.out" 2>&1 &
  WATCH=$!
  wait_until 30 mariadbd "$db/mariadbd.log" mariadb-admin --no-defaults --socket="$db/socket" ping || die "the cluster did not start"
  WATCH=
  wait_until 10 "mariadbd pid file" "$db/mariadbd.log" test -s "$db/mariadbd.pid" || die "the cluster did not start"
  remember mariadbd "$db/mariadbd.pid"
  mariadb --no-defaults --socket="$db/socket" -e "
    CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY 'headstart';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
}

start_slurmdbd() {
  slurmdbd || { logtail "$DIR/log/slurmdbd.log"; die "slurmdbd did not start"; }
  wait_until 20 slurmdbd "$DIR/log/slurmdbd.log" test -s "$DIR/run/slurmdbd.pid" || die "the cluster did not start"
  remember slurmdbd "$DIR/run/slurmdbd.pid"
  wait_until 30 "slurmdbd answers sacctmgr" "$DIR/log/slurmdbd.log" sacctmgr -n -P show cluster || die "the cluster did not start"
  sacctmgr -i -Q add cluster "$CLUSTER" > /dev/null
}

start_slurm() {
  slurmctld || { logtail "$DIR/log/slurmctld.log"; die "slurmctld did not start"; }
  wait_until 20 slurmctld "$DIR/log/slurmctld.log" test -s "$DIR/run/slurmctld.pid" || die "the cluster did not start"
  remember slurmctld "$DIR/run/slurmctld.pid"
  wait_until 30 "slurmctld answers scontrol ping" "$DIR/log/slurmctld.log" sh -c 'scontrol ping | grep -q UP' || die "the cluster did not start"
  slurmd || { logtail "$DIR/log/slurmd.log"; die "slurmd did not start"; }
  wait_until 20 slurmd "$DIR/log/slurmd.log" test -s "$DIR/run/slurmd.pid" || die "the cluster did not start"
  remember slurmd "$DIR/run/slurmd.pid"
  if ! wait_until 30 "node $NODE idle" "$DIR/log/slurmd.log" sh -c "[ \"\$(sinfo -h -n $NODE -o %T | sort -u)\" = idle ]"; then
    sinfo -R >&2 || true; logtail "$DIR/log/slurmctld.log"
    die "node $NODE did not become idle (reason above)"
  fi
}

# ------------------------------------------------------------------------------------ commands
running() {
  [ -s "$DIR/pids" ] || return 1
  local name pid
  while read -r name pid; do kill -0 "$pid" 2>/dev/null || return 1; done < "$DIR/pids"
  scontrol ping 2>/dev/null | grep -q UP
}

start() {
  [ "$(id -u)" = 0 ] || die "start needs root (munged, slurmd and the state folder's owners)"
  [ -z "$(missing)" ] || die "missing $(missing | xargs): run 'bash $0 install' (or apt-get install $PACKAGES)"
  if running; then say "already running ($DIR)"; env_line; return 0; fi
  stop quiet      # a half-started or stale cluster of an earlier session
  local t0=$SECONDS
  trap 'stop_daemons quiet; unlink_default_conf; echo "[slurm] start failed: daemons stopped, logs kept in $DIR" >&2' ERR EXIT
  write_configs
  link_default_conf
  start_munge
  start_mariadb
  start_slurmdbd
  start_slurm
  trap - ERR EXIT
  say "cluster '$CLUSTER' up in $((SECONDS - t0)) s ($DIR)"
  sinfo -o '%P %D %T %c %m %G' || true
  env_line
}

# stop_daemons [quiet]: cancel the jobs, stop every daemon we started by its PID (SIGTERM to all,
# SIGKILL to any still alive after 10 s). Keeps the folder (logs) for a failed start.
stop_daemons() {
  [ -s "$DIR/pids" ] || return 0
  if scontrol ping 2>/dev/null | grep -q UP; then
    squeue -h -o %i 2>/dev/null | xargs -r scancel 2>/dev/null || true
  fi
  local name pid alive
  tac "$DIR/pids" | while read -r name pid; do kill "$pid" 2>/dev/null || true; done
  for _ in $(seq 100); do
    alive=0
    while read -r name pid; do kill -0 "$pid" 2>/dev/null && alive=1; done < "$DIR/pids"
    [ $alive = 0 ] && break
    sleep 0.1
  done
  while read -r name pid; do
    if kill -0 "$pid" 2>/dev/null; then say "$name ($pid) ignored SIGTERM: SIGKILL"; kill -9 "$pid" 2>/dev/null || true; fi
    [ "${1:-}" = quiet ] || say "stopped $name ($pid)"
  done < "$DIR/pids"
  rm -f "$DIR/pids"
}

stop() {
  stop_daemons "${1:-}"
  unlink_default_conf
  rm -rf "$DIR"
}

status() {
  if running; then
    say "running ($DIR)"; cat "$DIR/pids"; sinfo -o '%P %D %T %c %m %G'; return 0
  fi
  say "not running ($DIR)"; return 1
}

env_line() { echo "export SLURM_CONF=$SLURM_CONF"; }

case "${1:-}" in
  install) install_packages ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  env) env_line ;;
  *) echo "usage: $0 install|start|status|stop|env" >&2; exit 2 ;;
esac
