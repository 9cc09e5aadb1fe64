#!/usr/bin/env bash
# unmount-fails: the backend keeps every mount; the volume can never be removed.
. "$(dirname "$0")/lib.sh"
example_start unmount-fails

run "$DOCKER" volume create -d "$DRIVER" v1
say "the container runs and exits 0: dockerd only logs the failed Unmount"
run "$DOCKER" run --rm -v v1:/data bb:local echo hi
audit
say "the backend still counts the mount and refuses to remove the volume"
run_may_fail "$DOCKER" volume rm v1
