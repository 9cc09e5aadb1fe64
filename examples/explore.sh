#!/usr/bin/env bash
# explore: which faults break a workload? This one labels a volume, writes to it from a container
# and removes it, trying once more when `docker volume ls` still lists it. chaosvol explore fails
# each Get and each Remove in turn, then pairs of them: a dropped Remove alone is healed by the
# retry, and so is a failed lookup in `volume rm`; together they leave the volume behind. Each
# failure is shrunk to a minimal profile that reproduces it.
. "$(dirname "$0")/lib.sh"
example_start passthrough
chaosvol_stop  # explore serves the plugin itself, for every run

cat >"$WORK/workload.sh" <<EOF
$DOCKER volume create -d "\$CHAOSVOL_DRIVER" --label team=demo v1 >/dev/null || exit 0
$DOCKER run --rm -v v1:/data bb:local sh -c 'echo hi > /data/f' >/dev/null 2>&1
for attempt in 1 2; do
    $DOCKER volume rm v1 >/dev/null 2>&1
    $DOCKER volume ls -q | grep -qx v1 || exit 0
    echo "v1 is still listed after volume rm \$attempt"
done
exit 1
EOF
say "the workload"
run cat "$WORK/workload.sh"

say "explore it: single faults on Get and Remove, then pairs (about 20 s)"
run_may_fail "$CHAOSVOL" explore --name "$DRIVER" ${DOCKER_HOST:+--docker-host "$DOCKER_HOST"} --ops Get,Remove \
    --actions 'drop; {error: {when: before}}' --depth 2 --work "$WORK/explore" -o "$WORK/found" -- bash "$WORK/workload.sh"

say "the pair that breaks it only together, as a profile: serve it and run the workload to see it again"
PAIR=$(grep -l '^# faults: Get#[0-9]* {error: {when: before}} + Remove#1 drop$' "$WORK"/found/failure-*.yaml)
run cat "$PAIR"
