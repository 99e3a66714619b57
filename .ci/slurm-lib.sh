# Shared by .ci/slurm-up.sh and .ci/slurm-down.sh (sourced, not run).

# Alive and not a zombie (a killed daemon may linger as <defunct> under gVisor).
alive() { [ -r "/proc/$1/stat" ] && ! awk '{exit !($3 == "Z")}' "/proc/$1/stat"; }

# Stop the daemon whose pid a file holds (TERM, then KILL after 5 s) and remove the file.
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
