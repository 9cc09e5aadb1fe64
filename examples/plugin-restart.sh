#!/usr/bin/env bash
# plugin-restart: the plugin dies and is back 5 s later; dockerd rides it out.
. "$(dirname "$0")/lib.sh"
example_start plugin-restart

run "$DOCKER" volume create -d "$DRIVER" --label k=v v1
say "docker volume ls kills the plugin; its socket is gone for 5 s"
echo '$ docker volume ls >/dev/null &'
( "$DOCKER" volume ls >/dev/null ) &
LS_PID=$!
sleep 0.5
run ls /run/docker/plugins
say "dockerd retries until the plugin is back"
run time "$DOCKER" volume inspect v1 --format 'labels={{.Labels}}'
wait "$LS_PID"
audit
