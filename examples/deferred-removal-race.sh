#!/usr/bin/env bash
# deferred-removal-race: removal fails twice with "device or resource busy", then works.
. "$(dirname "$0")/lib.sh"
example_start deferred-removal-race

run "$DOCKER" volume create -d "$DRIVER" v1
run_may_fail "$DOCKER" volume rm v1
run_may_fail "$DOCKER" volume rm v1
run_may_fail "$DOCKER" volume rm v1
audit
