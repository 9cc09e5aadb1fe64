#!/usr/bin/env bash
# slow-activate: the plugin never answers Plugin.Activate; every `docker volume ls` hangs.
. "$(dirname "$0")/lib.sh"
example_start slow-activate

say "docker volume ls hangs (we give it 5 s)"
run_may_fail timeout 5 "$DOCKER" volume ls
say "other drivers still work"
run "$DOCKER" volume create local-1
say "once the plugin answers, everything goes on"
chaosvol_start passthrough
run "$DOCKER" volume ls
