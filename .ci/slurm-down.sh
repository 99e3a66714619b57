#!/usr/bin/env bash
# Stop the single-node Slurm cluster started by .ci/slurm-up.sh (same SLURM_DIR). Jobs still
# queued or running are cancelled first. Safe to run when nothing is up.
set -uo pipefail

SLURM_DIR=${SLURM_DIR:-/tmp/mmicl-slurm}

if command -v scancel >/dev/null 2>&1 && command -v sinfo >/dev/null 2>&1 \
        && sinfo -h >/dev/null 2>&1; then
    scancel --user="$(id -un)" 2>/dev/null || true
fi

# Alive and not a zombie (a killed daemon may linger as <defunct> under gVisor).
alive() { [ -r "/proc/$1/stat" ] && ! awk '{exit !($3 == "Z")}' "/proc/$1/stat"; }
stop_pidfile() {
    local pidfile=$1 pid
    [ -s "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    if alive "$pid"; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
        alive "$pid" && kill -9 "$pid" 2>/dev/null
    fi
    rm -f "$pidfile"
}

stop_pidfile "$SLURM_DIR/slurmd.pid"
stop_pidfile "$SLURM_DIR/slurmctld.pid"
stop_pidfile /run/munge/munged.pid
echo "slurm-down: stopped (state kept in $SLURM_DIR)"
