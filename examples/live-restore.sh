#!/usr/bin/env bash
# live-restore: dockerd restarts with live-restore and the plugin fails its lookups while dockerd
# restores the volumes: the mount is never released and the volume cannot be removed.
. "$(dirname "$0")/lib.sh"
if [ "${USE_MY_DOCKERD:-}" = 1 ]; then echo "live-restore.sh restarts its dockerd: run it without USE_MY_DOCKERD=1" >&2; exit 2; fi
example_start restore-get-fails --live-restore

run "$DOCKER" volume create -d "$DRIVER" --label team=a v1
run "$DOCKER" run -d --name c1 -v v1:/data bb:local sleep 600
say "dockerd restarts (live-restore: the container keeps running); it activates the plugin again, and its Gets fail"
restart_dockerd
run "$DOCKER" inspect -f '{{.State.Status}}' c1
say "docker stop sends no Unmount; the volume cannot be removed, yet it is listed"
run "$DOCKER" stop -t 1 c1
run "$DOCKER" rm c1
run_may_fail "$DOCKER" volume rm v1
run "$DOCKER" volume ls
say "the plugin still counts the container's mount"
run cat "$WORK/volumes/volumes/v1/meta.json"
echo
audit
