#!/usr/bin/env bash
# busy-remove: Unmounts silently vanish; removal then fails with "device or resource busy".
. "$(dirname "$0")/lib.sh"
example_start busy-remove

run "$DOCKER" volume create -d "$DRIVER" v1
run "$DOCKER" run --rm -v v1:/data bb:local true
run "$DOCKER" run --rm -v v1:/data bb:local true
say "no error anywhere, yet:"
run_may_fail "$DOCKER" volume rm v1
audit
