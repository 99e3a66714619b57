#!/usr/bin/env bash
# Stop the single-node Slurm cluster started by .ci/slurm-up.sh (same SLURM_DIR). Jobs still
# queued or running are cancelled first. Safe to run when nothing is up.
set -uo pipefail

SLURM_DIR=${SLURM_DIR:-/tmp/mmicl-slurm}

if command -v scancel >/dev/null 2>&1 && command -v sinfo >/dev/null 2>&1 \
        && sinfo -h >/dev/null 2>&1; then
    scancel --user="$(id -un)" 2>/dev/null || true
fi

source "$(dirname "$0")/slurm-lib.sh"

stop_pidfile "$SLURM_DIR/slurmd.pid"
stop_pidfile "$SLURM_DIR/slurmctld.pid"
stop_pidfile /run/munge/munged.pid
echo "slurm-down: stopped (state kept in $SLURM_DIR)"
