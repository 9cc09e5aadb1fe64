"""late: the call reaches the backend (or its answer reaches the daemon) just after the daemon
gave up on it, whatever the operation: dockerd's per-call timeout is 2 minutes for Create and
Mount and 1 minute for the rest (protocol.md §4.1), Podman's 5 s for every call.

One rule, `{match: {op: [Create, Mount, Unmount]}, action: late}`, makes every matching call a
late success, each past its own timeout: a Create that lands after dockerd reported failure (the
volume appears without its labels), a Mount whose Unmount never comes, an Unmount that never
happened as far as the daemon knows (dockerd-behaviour.md §4.4). With `delay` the same needs a
rule per timeout, and the timeouts by heart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Final, Literal

from chaosvol.core.durations import Seconds
from chaosvol.core.effects import Forward, Plan, Sleep
from chaosvol.core.protocol import PODMAN_PLUGIN_TIMEOUT, Operation, PluginCall
from chaosvol.faults import Fault, FaultContext, register

# dockerd's per-call timeouts (volume/drivers/proxy.go: longTimeout, shortTimeout). Activate has
# none at all: nothing is late for it, so `late` refuses it.
DOCKERD_LONG: Final = 120.0
DOCKERD_SHORT: Final = 60.0
DOCKERD_LONG_OPERATIONS: Final = frozenset({Operation.CREATE, Operation.MOUNT})


def daemon_timeout(daemon: Literal["dockerd", "podman"], operation: Operation) -> float:
    """How long `daemon` waits for an answer to `operation` before it gives up."""
    if daemon == "podman":
        return PODMAN_PLUGIN_TIMEOUT
    return DOCKERD_LONG if operation in DOCKERD_LONG_OPERATIONS else DOCKERD_SHORT


@register("late")
@dataclass(frozen=True, slots=True)
class Late(Fault):
    """Wait until `margin` after the daemon's timeout for this call's operation, then forward
    (`when: before`: the backend acts after the daemon gave up) or answer (`when: after`: the
    backend acted at once, the answer finds the daemon gone)."""

    when: Literal["before", "after"] = "before"
    daemon: Literal["dockerd", "podman"] = "dockerd"
    margin: Seconds = 1.0
    example: ClassVar[str] = "late: {when: before, daemon: dockerd, margin: 1s}"
    operations: ClassVar[frozenset[Operation]] = frozenset(Operation) - {Operation.ACTIVATE}

    def plan(self, call: PluginCall, context: FaultContext) -> Plan:
        wait = Sleep(daemon_timeout(self.daemon, call.operation) + self.margin)
        return Plan.of(wait, Forward()) if self.when == "before" else Plan.of(Forward(), wait)
