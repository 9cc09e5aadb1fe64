"""HoldRegistry: calls parked by a `hold` rule, each on its own trio.Event, until released.

A held call costs its own task and connection, never a lock: `park()` waits on the call's event
and nothing else waits on it. Releasing is synchronous (it sets events), so the control socket
answers at once however many calls are parked. A parked call leaves the registry however its wait
ends: released, timed out, or cancelled (dockerd gone at shutdown, the proxy crashing).
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import trio

from chaosvol.core.protocol import PluginCall

HowEnded = Literal["released", "timeout", "cancelled"]


@dataclass(slots=True)
class HeldCall:
    """One parked call, as `chaosvol ctl held` shows it."""

    ident: int
    call: PluginCall
    rule: str | None
    conn: int
    since: float  # trio clock, for how long it has waited
    since_wall: float  # time.time(), for people
    timeout: float | None
    released: trio.Event = field(default_factory=trio.Event)

    def to_json(self, now: float) -> dict[str, Any]:
        return {
            "id": self.ident,
            "op": self.call.operation.value,
            "volume": self.call.volume,
            "rule": self.rule,
            "conn": self.conn,
            "held_s": round(now - self.since, 3),
            "timeout_s": self.timeout,
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.since_wall)),
        }


@dataclass(frozen=True, slots=True)
class HoldMatch:
    """Which held calls a `release --match` means: by operation and by volume glob."""

    operation: str | None = None
    volume: str | None = None

    def matches(self, held: HeldCall) -> bool:
        if self.operation is not None and held.call.operation.value.lower() != self.operation.lower():
            return False
        if self.volume is not None:
            return held.call.volume is not None and fnmatch.fnmatchcase(held.call.volume, self.volume)
        return True


class HoldRegistry:
    """Every call parked right now, by id (ids count up from 1 over the proxy's life)."""

    def __init__(self) -> None:
        self._held: dict[int, HeldCall] = {}
        self._next = 0
        # Woken whenever a call is parked, so a test can wait for "the List is held now".
        self._parked = trio.Event()

    def __len__(self) -> int:
        return len(self._held)

    def __iter__(self) -> Iterator[HeldCall]:
        return iter(list(self._held.values()))

    async def park(self, call: PluginCall, *, rule: str | None, conn: int, timeout: float | None) -> HowEnded:
        """Wait until released or `timeout` passes. Returns how the wait ended; on cancellation
        the call leaves the registry and the cancellation goes on."""
        self._next += 1
        held = HeldCall(self._next, call, rule, conn, trio.current_time(), time.time(), timeout)
        self._held[held.ident] = held
        self._parked.set()
        self._parked = trio.Event()
        how: HowEnded = "cancelled"
        try:
            with trio.move_on_after(timeout if timeout is not None else float("inf")):
                await held.released.wait()
                how = "released"
                return how
            how = "timeout"
            return how
        finally:
            self._held.pop(held.ident, None)  # release() may have taken it out already

    def release(self, ident: int | None = None, *, match: HoldMatch | None = None) -> list[HeldCall]:
        """Let calls go on: the one with `ident`, those `match` selects, or (neither) all.
        Returns those released (empty: nothing matched)."""
        if ident is not None:
            chosen = [self._held[ident]] if ident in self._held else []
        else:
            chosen = [held for held in self._held.values() if match is None or match.matches(held)]
        for held in chosen:
            del self._held[held.ident]  # gone from `held` at once, not when its task next runs
            held.released.set()
        return chosen

    async def wait_for(self, match: HoldMatch, count: int = 1) -> list[HeldCall]:
        """Wait until at least `count` parked calls match; those calls."""
        while True:
            found = [held for held in self._held.values() if match.matches(held)]
            if len(found) >= count:
                return found
            await self._parked.wait()
