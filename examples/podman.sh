#!/usr/bin/env bash
# Podman scenarios, one command each, against a private Podman (its own storage and
# containers.conf in a temporary directory; the machine's Podman is not touched):
#
#   examples/podman.sh drop-removes    # rm exits 0; the backend keeps an orphan Podman never shows
#   examples/podman.sh get-fails       # rm fails with 125, yet Podman dropped the volume: no Remove sent
#   examples/podman.sh list-fails      # volume reload drops every unused plugin volume
#   examples/podman.sh create-err-200  # Err in a 200 is success to Podman: a phantom volume
#   examples/podman.sh unmount-fails   # run exits 0, the mount leaks, Podman's count stays stuck
#
# Each ends with `chaosvol audit --podman`. USE_MY_PODMAN=1 uses the machine's Podman instead,
# registering the driver with `chaosvol podman register` for the duration of the script.
set -euo pipefail
SCENARIO=${1:-}
case $SCENARIO in
    drop-removes|get-fails|list-fails|create-err-200|unmount-fails) ;;
    *) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
. "$(dirname "$0")/lib.sh"
bash "$REPO/scripts/setup"
command -v podman >/dev/null || { echo "podman is not installed (Debian: apt-get install podman)" >&2; exit 2; }

WORK=$(mktemp -d /tmp/cvpodman.XXXXXX)
DRIVER=chaosvol-podman
SOCKET=$WORK/chaosvol.sock
BACKEND="builtin:$WORK/volumes"
EVENTS=$WORK/events.jsonl
IMAGE=localhost/bb:local
if [ "${USE_MY_PODMAN:-}" = 1 ]; then
    PODMAN=(podman)
    "$CHAOSVOL" podman register "$DRIVER" --socket "$SOCKET"
else
    PODMAN=(podman --root "$WORK/root" --runroot "$WORK/run" --tmpdir "$WORK/tmp" --storage-driver vfs)
    export CONTAINERS_CONF=$WORK/containers.conf
    cat > "$CONTAINERS_CONF" <<EOF
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
netns = "none"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$WORK/podman-events.log"
[engine.volume_plugins]
"$DRIVER" = "$SOCKET"
EOF
fi
podman_() { run "${PODMAN[@]}" "$@"; }
cleanup() {
    set +e
    serve passthrough >/dev/null 2>&1
    for v in $("${PODMAN[@]}" volume ls -q --filter "driver=$DRIVER" 2>/dev/null); do "${PODMAN[@]}" volume rm -f "$v" >/dev/null 2>&1; done
    [ -z "${SERVE_PID:-}" ] || { kill "$SERVE_PID"; wait "$SERVE_PID"; } 2>/dev/null
    if [ "${USE_MY_PODMAN:-}" = 1 ]; then
        "$CHAOSVOL" podman unregister "$DRIVER"
    else
        "${PODMAN[@]}" rm -af -t 0 >/dev/null 2>&1
        grep -o " $WORK[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
serve() {
    [ -z "${SERVE_PID:-}" ] || { kill "$SERVE_PID"; wait "$SERVE_PID"; } 2>/dev/null || true
    : > "$WORK/chaosvol.log"
    "$CHAOSVOL" serve --socket "$SOCKET" --no-control --profile "$1" --backend "$BACKEND" --events "$EVENTS" 2>>"$WORK/chaosvol.log" &
    SERVE_PID=$!
    for _ in $(seq 100); do grep -q "chaosvol: serving" "$WORK/chaosvol.log" 2>/dev/null && break; sleep 0.1; done
    echo "chaosvol serves $DRIVER with the $1 profile"
}
if ! "${PODMAN[@]}" image exists "$IMAGE" 2>/dev/null; then
    mkdir -p "$WORK/bb/bin" && cp "$(command -v busybox)" "$WORK/bb/bin/"
    for a in $("$WORK/bb/bin/busybox" --list); do [ "$a" = busybox ] || ln -s busybox "$WORK/bb/bin/$a"; done
    tar -C "$WORK/bb" -cf "$WORK/bb.tar" . && "${PODMAN[@]}" import -q --change "ENV PATH=/bin" "$WORK/bb.tar" "$IMAGE" >/dev/null
fi

serve "$SCENARIO"
case $SCENARIO in
    drop-removes)
        podman_ volume create --driver "$DRIVER" --label k=v precious
        podman_ volume rm precious
        say "Podman forgot it; the backend still has it (and Podman's ls never asks the plugin's List)"
        podman_ volume ls
        say "the backend's volumes"
        run ls "$WORK/volumes/volumes" ;;
    get-fails)
        podman_ volume create --driver "$DRIVER" precious
        run_may_fail "${PODMAN[@]}" volume rm precious
        say "no Remove was ever sent; the backend keeps it"
        run grep -c '"op":"Remove"' "$EVENTS" || true
        run ls "$WORK/volumes/volumes" ;;
    list-fails)
        podman_ volume create --driver "$DRIVER" one
        podman_ volume create --driver "$DRIVER" two
        run_may_fail "${PODMAN[@]}" volume reload
        say "both gone from Podman, both still in the backend"
        podman_ volume ls
        say "the backend's volumes"
        run ls "$WORK/volumes/volumes" ;;
    create-err-200)
        podman_ volume create --driver "$DRIVER" phantom
        say "the backend never created it; Podman's every volume ls now fails on it"
        run ls "$WORK/volumes/volumes" 2>/dev/null || true
        run_may_fail "${PODMAN[@]}" volume ls ;;
    unmount-fails)
        podman_ volume create --driver "$DRIVER" data
        podman_ run --rm -v data:/data "$IMAGE" echo "the container ran; its Unmount fails in a cleanup process nobody watches"
        sleep 1
        say "Podman still counts a mount, and so does the backend"
        podman_ volume inspect --format '{{.MountCount}}' data ;;
esac
say "chaosvol audit --podman"
set +e
run "$CHAOSVOL" audit --podman "${PODMAN[*]}" --driver "$DRIVER" --backend "$BACKEND" --events "$EVENTS"
echo "(exit status $?: 0 consistent, 1 inconsistencies found)"
set -e
