#!/usr/bin/env bash
# flaky: a few percent of every fault, seeded: a small workload, then an audit.
. "$(dirname "$0")/lib.sh"
example_start flaky

say "ten times: docker volume create, docker run -v, docker volume rm (each failure is said)"
for i in $(seq 10); do
    "$DOCKER" volume create -d "$DRIVER" "flaky-$i" >/dev/null 2>&1 || echo "create flaky-$i failed"
    "$DOCKER" run --rm -v "flaky-$i:/data" bb:local true >/dev/null 2>&1 || echo "run on flaky-$i failed"
    "$DOCKER" volume rm "flaky-$i" >/dev/null 2>&1 || echo "rm flaky-$i failed"
done
say "what happened (chaosvol report; --html writes a timeline to open in a browser)"
run "$CHAOSVOL" report "$EVENTS"
audit
