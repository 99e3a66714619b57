#!/usr/bin/env bash
# Bring up a real single-node Slurm cluster (slurmctld + slurmd + munge) on this machine, for the
# Slurm tests (tests/test_slurm.py). Debian, run as root; no systemd needed.
#
#   .ci/slurm-up.sh            # idempotent: does nothing if `sinfo` already shows an idle node
#   .ci/slurm-down.sh          # stops the daemons again
#
# Environment:
#   SLURM_DIR              state, spool, pid and log files (default /tmp/mmicl-slurm)
#   MMICL_SLURM_FAKE_GPU=1 declare a fake `gpu:1` GRES (File=/dev/null) so GPU requests schedule
#
# Pitfalls (see README "Slurm in CI"): without slurmdbd `sacct` returns no rows with exit code 0,
# so Snakemake must poll with `squeue`, which needs MinJobAge >= 120 s to still see finished jobs.
set -euo pipefail

SLURM_DIR=${SLURM_DIR:-/tmp/mmicl-slurm}
FAKE_GPU=${MMICL_SLURM_FAKE_GPU:-0}
PARTITION=debug

# (`timeout`: without a controller sinfo waits about 10 s before giving up)
node_state() { timeout 5 sinfo -h -o %T 2>/dev/null | head -1 || true; }

if command -v sinfo >/dev/null 2>&1 && [ "$(node_state)" = idle ]; then
    echo "slurm-up: cluster already up ($(sinfo -h -o '%P %N %T' | head -1)); nothing to do"
    exit 0
fi

if [ "$(id -u)" != 0 ]; then
    echo "slurm-up: must run as root to install and start Slurm" >&2
    exit 1
fi

start=$(date +%s)
export DEBIAN_FRONTEND=noninteractive
if ! command -v slurmctld >/dev/null 2>&1 || ! command -v slurmd >/dev/null 2>&1 \
        || ! command -v munged >/dev/null 2>&1 || ! command -v sbatch >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || { echo "slurm-up: apt-get not available" >&2; exit 1; }
    echo "slurm-up: installing slurm-wlm and munge with apt"
    apt-get update -qq
    apt-get install -y -qq slurm-wlm munge >/dev/null
fi

# Stop daemons of an earlier (broken) bring-up before starting fresh ones.
source "$(dirname "$0")/slurm-lib.sh"
stop_pidfile "$SLURM_DIR/slurmd.pid"
stop_pidfile "$SLURM_DIR/slurmctld.pid"

NODE=$(hostname -s)
NCPU=$(nproc)
MEM_MB=$(( $(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo) - 1024 ))
mkdir -p "$SLURM_DIR"/{state,spool,log} /etc/slurm

# munge: Debian's postinst creates the key; create one only if it is missing.
if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
fi
mkdir -p /run/munge && chown munge:munge /run/munge
if ! { [ -s /run/munge/munged.pid ] && alive "$(cat /run/munge/munged.pid)"; }; then
    runuser -u munge -- /usr/sbin/munged --force
fi
munge -n | unmunge >/dev/null

GRES_CONF="" NODE_GRES=""
if [ "$FAKE_GPU" = 1 ]; then
    GRES_CONF="GresTypes=gpu"
    NODE_GRES="Gres=gpu:1"
    echo "NodeName=${NODE} Name=gpu File=/dev/null" > /etc/slurm/gres.conf
else
    rm -f /etc/slurm/gres.conf
fi

cat > /etc/slurm/slurm.conf <<CONF
# Written by mmicl .ci/slurm-up.sh: single-node test cluster, no accounting database.
ClusterName=mmicl-ci
SlurmctldHost=${NODE}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
# squeue (the status command Snakemake must use here) only sees jobs younger than MinJobAge.
MinJobAge=600
StateSaveLocation=${SLURM_DIR}/state
SlurmdSpoolDir=${SLURM_DIR}/spool
SlurmctldPidFile=${SLURM_DIR}/slurmctld.pid
SlurmdPidFile=${SLURM_DIR}/slurmd.pid
SlurmctldLogFile=${SLURM_DIR}/log/slurmctld.log
SlurmdLogFile=${SLURM_DIR}/log/slurmd.log
${GRES_CONF}
NodeName=${NODE} NodeAddr=127.0.0.1 CPUs=${NCPU} RealMemory=${MEM_MB} ${NODE_GRES} State=UNKNOWN
PartitionName=${PARTITION} Nodes=${NODE} Default=YES MaxTime=INFINITE State=UP
CONF

slurmctld
slurmd

for _ in $(seq 60); do
    state=$(node_state)
    [ "$state" = idle ] && break
    case "$state" in
        down*|drain*) scontrol update nodename="$NODE" state=resume 2>/dev/null || true ;;
    esac
    sleep 1
done
if [ "$(node_state)" != idle ]; then
    echo "slurm-up: node did not become idle (state '$(node_state)'); logs:" >&2
    tail -n 20 "$SLURM_DIR"/log/slurmctld.log "$SLURM_DIR"/log/slurmd.log >&2 || true
    exit 1
fi
echo "slurm-up: cluster up in $(( $(date +%s) - start )) s: $(sinfo -h -o '%P %N %T %c CPUs %m MB' | head -1)"
