#!/usr/bin/env bash
# empty-mountpoint: Mount answers "", and the container sees the runtime's bundle directory.
. "$(dirname "$0")/lib.sh"
example_start empty-mountpoint

run "$DOCKER" volume create -d "$DRIVER" v1
run "$DOCKER" run --rm -v v1:/data bb:local ls /data
