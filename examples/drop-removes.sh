#!/usr/bin/env bash
# drop-removes: `docker volume rm` succeeds, and the volume comes back without its labels.
. "$(dirname "$0")/lib.sh"
example_start drop-removes

say "create a volume through chaosvol, and write to it from a container"
run "$DOCKER" volume create -d "$DRIVER" --label team=demo v1
run "$DOCKER" run --rm -v v1:/data bb:local sh -c 'echo hi > /data/f && cat /data/f'

say "remove it: docker says it worked"
run_may_fail "$DOCKER" volume rm v1

say "and yet it is still there"
run "$DOCKER" volume ls
audit
say "looking it up makes dockerd adopt it again, without its label"
run "$DOCKER" volume inspect v1 --format '{{.Labels}}'
run cat "$WORK/volumes/volumes/v1/_data/f"
audit
say "the Remove was answered success and never reached the backend: the event log says so"
run grep '"op":"Remove"' "$EVENTS"
