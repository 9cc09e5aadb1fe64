# Sourced by scripts/demo, the examples and .ci/run: a private dockerd (own data-root, exec-root,
# API socket and pidfile under DIR; no iptables, no bridge). Usage:
#   start_private_dockerd DIR     # exports DOCKER_HOST=unix://DIR/docker.sock and DOCKER (the
#                                 # client that goes with the daemon); fails with the log tail
#   stop_private_dockerd DIR      # SIGTERM, wait, unmount what a stop leaves, delete DIR
# CHAOSVOL_DOCKERD picks the daemon: 20 (default: this machine's dockerd, Debian 12's 20.10) or 26
# (Debian 13's 26.1 from the chroot scripts/build-dockerd-26 makes, built on first use).
_CHAOSVOL_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

start_private_dockerd() {
    local dir=$1 root
    shift
    : >"$dir/flags"
    [ $# -eq 0 ] || printf '%s\n' "$@" >"$dir/flags"
    case ${CHAOSVOL_DOCKERD:-20} in
        20)
            dockerd --data-root "$dir/root" --exec-root "$dir/exec" -H "unix://$dir/docker.sock" \
                    --pidfile "$dir/docker.pid" --iptables=false --bridge=none --debug "$@" >>"$dir/dockerd.log" 2>&1 &
            DOCKER=/usr/bin/docker
            ;;
        26)
            root=${CHAOSVOL_DOCKERD_26_ROOT:-$_CHAOSVOL_REPO/build/dockerd-26}
            bash "$_CHAOSVOL_REPO/scripts/build-dockerd-26" "$root" || return 1
            R=$root S=$dir unshare --mount --propagation private bash "$_CHAOSVOL_REPO/chaosvol/testing/dockerd-chroot.sh" \
                --data-root "$dir/root" -H "unix://$dir/docker.sock" --iptables=false --bridge=none --debug "$@" \
                </dev/null >>"$dir/dockerd.log" 2>&1 &
            echo $! >"$dir/chroot-dockerd.pid"  # its pidfile is inside the chroot's /run
            DOCKER=$root/usr/bin/docker
            ;;
        *)
            echo "CHAOSVOL_DOCKERD=${CHAOSVOL_DOCKERD}: use 20 (this machine's dockerd) or 26 (Debian 13's, from a chroot)" >&2
            return 2
            ;;
    esac
    export DOCKER DOCKER_HOST="unix://$dir/docker.sock"
    for _ in $(seq 150); do "$DOCKER" version >/dev/null 2>&1 && return 0; sleep 0.2; done
    echo "dockerd did not start; the end of its log:" >&2
    tail -40 "$dir/dockerd.log" >&2
    return 1
}

_kill_private_dockerd() {
    local dir=$1 pid pidfile
    for pidfile in "$dir/docker.pid" "$dir/chroot-dockerd.pid"; do
        [ -f "$pidfile" ] || continue
        pid=$(cat "$pidfile")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        rm -f "$pidfile"
    done
}

restart_private_dockerd() {
    local dir=$1 flags=()
    _kill_private_dockerd "$dir"
    mapfile -t flags <"$dir/flags"
    start_private_dockerd "$dir" "${flags[@]}"
}

stop_private_dockerd() {
    local dir=$1 containers
    # A container left running would outlive a --live-restore daemon, and its mounts this directory.
    containers=$("${DOCKER:-docker}" ps -aq 2>/dev/null || true)
    if [ -n "$containers" ]; then "${DOCKER:-docker}" rm -f $containers >/dev/null 2>&1 || true; fi
    _kill_private_dockerd "$dir"
    # What the daemon left mounted under DIR (a live-restore daemon keeps its data-root mounted), deepest first.
    awk -v d="$dir/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
    rm -rf "$dir"
}
