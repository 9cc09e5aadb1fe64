# Sourced by scripts/demo and .ci/run: a private dockerd (own data-root, exec-root, API socket
# and pidfile under DIR; no iptables, no bridge). Usage:
#   start_private_dockerd DIR     # exports DOCKER_HOST=unix://DIR/docker.sock; fails with the log tail
#   stop_private_dockerd DIR      # SIGTERM, wait, unmount what a stop leaves, delete DIR
start_private_dockerd() {
    local dir=$1
    dockerd --data-root "$dir/root" --exec-root "$dir/exec" -H "unix://$dir/docker.sock" \
            --pidfile "$dir/docker.pid" --iptables=false --bridge=none --debug >"$dir/dockerd.log" 2>&1 &
    export DOCKER_HOST="unix://$dir/docker.sock"
    for _ in $(seq 150); do /usr/bin/docker version >/dev/null 2>&1 && return 0; sleep 0.2; done
    echo "dockerd did not start; the end of its log:" >&2
    tail -40 "$dir/dockerd.log" >&2
    return 1
}

stop_private_dockerd() {
    local dir=$1 pid
    if [ -f "$dir/docker.pid" ]; then
        pid=$(cat "$dir/docker.pid")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    fi
    umount "$dir/exec/netns/default" 2>/dev/null || true
    rm -rf "$dir"
}
