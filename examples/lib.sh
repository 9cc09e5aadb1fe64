# Shared by the scenario examples: sourced, never run. Each example calls
#   example_start PROFILE
# and then runs docker commands with `run` (prints, then runs), `say` (a heading), `audit`.
#
# By default everything happens in a private mount namespace with its own /run/docker/plugins
# and a private dockerd, so no daemon on the machine sees the plugin and nothing is left behind.
# USE_MY_DOCKERD=1 uses the dockerd DOCKER_HOST points at instead (the plugin is then visible
# to every daemon on the host while the example runs).
set -euo pipefail
EXAMPLES=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$EXAMPLES")
. "$REPO/scripts/as-root.sh"  # as another user: the example runs again through sudo
CHAOSVOL="$REPO/.venv/bin/chaosvol"
DOCKER=/usr/bin/docker
[ -x "$DOCKER" ] || DOCKER=$(command -v docker)

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() {
    local arg shown=()
    for arg in "${@/#$DOCKER/docker}"; do
        if [[ $arg =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then shown+=("$arg"); else shown+=("'${arg//\'/\'\\\'\'}'"); fi
    done
    printf '$ %s\n' "${shown[*]}"
    "$@"
}
# Like run, but a failure is part of the story, not the end of the script.
run_may_fail() { set +e; run "$@"; local code=$?; set -e; echo "(exit status $code)"; }

example_start() {  # PROFILE [DOCKERD FLAGS...] (flags for the private dockerd, e.g. --live-restore)
    PROFILE=$1
    shift
    DRIVER=chaosvol
    if [ -z "${CHAOSVOL_EXAMPLE_INSIDE:-}" ]; then
        bash "$REPO/scripts/setup"
        if [ "${USE_MY_DOCKERD:-}" != 1 ]; then
            mkdir -p /run/docker/plugins
            CHAOSVOL_EXAMPLE_INSIDE=1 exec unshare --mount --propagation private -- "$(realpath "$0")"
        fi
    fi
    WORK=$(mktemp -d /tmp/cvex.XXXXXX)
    EVENTS="$WORK/events.jsonl"
    BACKEND="builtin:$WORK/volumes"
    trap example_cleanup EXIT
    if [ "${USE_MY_DOCKERD:-}" != 1 ]; then
        mount -t tmpfs tmpfs /run/docker/plugins
        . "$REPO/scripts/dockerd.sh"
        mkdir -p "$WORK/dockerd"
        start_private_dockerd "$WORK/dockerd" "$@"
        echo "a private dockerd ($("$DOCKER" version --format '{{.Server.Version}}')) is up"
    fi
    if ! "$DOCKER" image inspect bb:local >/dev/null 2>&1; then
        mkdir -p "$WORK/bb/bin" && cp "$(command -v busybox)" "$WORK/bb/bin/"
        for a in $("$WORK/bb/bin/busybox" --list); do [ "$a" = busybox ] || ln -s busybox "$WORK/bb/bin/$a"; done
        tar -C "$WORK/bb" -c . | "$DOCKER" import -c 'ENV PATH=/bin' -c 'CMD ["/bin/sh"]' - bb:local >/dev/null
    fi
    chaosvol_start "$PROFILE"
}

# Stop the private dockerd and start it again on the same state (chaosvol keeps running).
restart_dockerd() {
    if [ "${USE_MY_DOCKERD:-}" = 1 ]; then
        echo "this example restarts dockerd: run it without USE_MY_DOCKERD=1" >&2
        exit 2
    fi
    echo '$ (dockerd stops: SIGTERM; then starts again on the same state)'
    restart_private_dockerd "$WORK/dockerd"
}

chaosvol_start() {
    chaosvol_stop
    "$CHAOSVOL" serve --name "$DRIVER" --profile "$1" --backend "$BACKEND" --events "$EVENTS" 2>>"$WORK/chaosvol.log" &
    CHAOSVOL_PID=$!
    for _ in $(seq 100); do grep -q "chaosvol: serving" "$WORK/chaosvol.log" 2>/dev/null && break; sleep 0.1; done
    echo "chaosvol serves $DRIVER with the $1 profile (events: $EVENTS)"
}

chaosvol_stop() {
    if [ -n "${CHAOSVOL_PID:-}" ]; then
        kill "$CHAOSVOL_PID" 2>/dev/null || true
        wait "$CHAOSVOL_PID" 2>/dev/null || true
        CHAOSVOL_PID=
    fi
    : > "$WORK/chaosvol.log"
}

audit() {
    say "chaosvol audit"
    set +e
    run "$CHAOSVOL" audit --driver "$DRIVER" --backend "$BACKEND" --events "$EVENTS"
    echo "(exit status $?: 0 consistent, 1 inconsistencies found)"
    set -e
}

example_cleanup() {
    set +e
    if [ "${USE_MY_DOCKERD:-}" = 1 ]; then
        # Leave the user's dockerd as we found it: remove what we made while chaosvol still answers.
        chaosvol_start passthrough >/dev/null
        for v in $("$DOCKER" volume ls -q -f "driver=$DRIVER"); do "$DOCKER" volume rm -f "$v" >/dev/null; done
    fi
    chaosvol_stop
    [ "${USE_MY_DOCKERD:-}" = 1 ] || stop_private_dockerd "$WORK/dockerd"
    rm -rf "$WORK"
}
