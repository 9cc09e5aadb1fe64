#!/usr/bin/env bash
# list-remove-race: a List answer held while a remove completes shows a stale `docker volume ls`
# (moby#21403), every time: the List is parked by a hold rule until we release it.
. "$(dirname "$0")/lib.sh"
example_start list-remove-race

run "$DOCKER" volume create -d "$DRIVER" old
say "docker volume ls starts; its List is answered by the backend now and the answer is held"
echo '$ docker volume ls -q > ls.out &'
( "$DOCKER" volume ls -q > "$WORK/ls.out" ) &
LS_PID=$!
run "$CHAOSVOL" ctl --name "$DRIVER" held --wait 30s --match op=List
run "$DOCKER" volume rm old
run "$DOCKER" volume create -d "$DRIVER" new
run "$CHAOSVOL" ctl --name "$DRIVER" release --match op=List
wait "$LS_PID"
say "what that ls printed: the removed volume, not the new one"
run cat "$WORK/ls.out"
run "$CHAOSVOL" ctl --name "$DRIVER" pause
say "a fresh ls is right again (nothing lingers on dockerd >= 1.11)"
run "$DOCKER" volume ls -q
audit
