#!/usr/bin/env bash
# remove-fails-after-delete: the backend deletes, dockerd is told it failed; `run -v` then
# silently uses a new local volume.
. "$(dirname "$0")/lib.sh"
example_start remove-fails-after-delete

say "a volume with data"
run "$DOCKER" volume create -d "$DRIVER" v1
run "$DOCKER" run --rm -v v1:/data bb:local sh -c 'echo important > /data/f'
say "remove it: docker says it failed, but the backend deleted it"
run_may_fail "$DOCKER" volume rm v1
run ls "$WORK/volumes/volumes"
audit
say "a container asking for v1 (no driver named) silently gets a new, empty local volume"
run "$DOCKER" run --rm -v v1:/data bb:local ls -la /data
run "$DOCKER" volume ls
