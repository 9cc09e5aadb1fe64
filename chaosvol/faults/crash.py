"""crash: the proxy dies as a plugin process would, and maybe comes back.

Its socket disappears and every connection closes unanswered, the call that fired it included.
dockerd then retries for about 15 s (1, 2, 4, 8 s apart): a plugin back within that window is
transparent, with no new Activate; one that stays away makes every call fail after 15 s, and a
daemon restarting meanwhile stalls about 15 s per volume of the driver (dockerd-behaviour.md
§4.13). Without `restart` the process exits (status 3), as a dead plugin would.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from chaosvol.core.durations import Seconds
from chaosvol.core.effects import Crash as CrashEffect
from chaosvol.core.effects import Plan
from chaosvol.core.protocol import PluginCall
from chaosvol.faults import Fault, FaultContext, register


@register("crash")
@dataclass(frozen=True, slots=True)
class Crash(Fault):
    """Die `after` the call arrives (default at once); come back after `restart`, or never."""

    after: Seconds = 0.0
    restart: Seconds | None = None
    example: ClassVar[str] = "crash: {after: 0s, restart: 5s}"

    def plan(self, call: PluginCall, context: FaultContext) -> Plan:
        return Plan.of(CrashEffect(self.after, self.restart))
