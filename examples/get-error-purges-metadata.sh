#!/usr/bin/env bash
# get-error-purges-metadata: one failed Get and dockerd forgets a live volume's labels.
. "$(dirname "$0")/lib.sh"
example_start get-error-purges-metadata

run "$DOCKER" volume create -d "$DRIVER" --label team=a -o size=1 purge-1
say "one Get fails: dockerd says the volume does not exist"
run_may_fail "$DOCKER" volume inspect purge-1
say "the next lookup finds it again, without labels or options"
run "$DOCKER" volume inspect purge-1 --format 'labels={{.Labels}} options={{.Options}}'
audit
