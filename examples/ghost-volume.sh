#!/usr/bin/env bash
# ghost-volume: Get claims a volume exists; create exits 0 and the backend never sees Create.
. "$(dirname "$0")/lib.sh"
example_start ghost-volume

run "$DOCKER" volume create -d "$DRIVER" ghost-1
run ls "$WORK/volumes/volumes"
run "$DOCKER" volume inspect ghost-1 --format '{{.Status}}'
say "using it fails: the backend cannot mount what it never created"
run_may_fail "$DOCKER" run --rm -v ghost-1:/data bb:local true
audit
