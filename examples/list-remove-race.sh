#!/usr/bin/env bash
# list-remove-race: a slow List racing a remove shows a stale `docker volume ls` (moby#21403).
. "$(dirname "$0")/lib.sh"
example_start list-remove-race

run "$DOCKER" volume create -d "$DRIVER" old
say "docker volume ls starts; its List answer is computed now and delivered 8 s later"
( "$DOCKER" volume ls -q > "$WORK/ls.out" ) &
sleep 2
run "$DOCKER" volume rm old
run "$DOCKER" volume create -d "$DRIVER" new
wait
say "what that ls printed: the removed volume, not the new one"
cat "$WORK/ls.out"
chaosvol_start passthrough
say "a fresh ls is right again (nothing lingers on dockerd >= 1.11)"
run "$DOCKER" volume ls -q
audit
