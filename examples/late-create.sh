#!/usr/bin/env bash
# late-create: Create finishes after dockerd's 120 s timeout; an orphan without labels remains.
. "$(dirname "$0")/lib.sh"
example_start late-create

say "docker volume create waits 120 s, then gives up (the backend gets the call at 125 s)"
run_may_fail "$DOCKER" volume create -d "$DRIVER" --label k=v late-1
sleep 6
run "$DOCKER" volume ls
run "$DOCKER" volume inspect late-1 --format 'labels={{.Labels}}'
audit
