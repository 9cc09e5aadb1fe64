"""ProxyState: what a running proxy knows and what its tester may change.

The plugin server serves calls with it; the control socket, sweep and the pytest plugin read it
and change it through its methods, never by reaching into the server. Changes are single
assignments made between two awaits: a call sees the old profile or the new, never a mix, and
nothing needs a lock.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Literal

import trio

from chaosvol import __version__
from chaosvol.backends import Backend
from chaosvol.core.engine import ChaosEngine
from chaosvol.core.events import CallRecord, header_line
from chaosvol.core.profile import Profile
from chaosvol.core.retries import RetryTracker
from chaosvol.proxy.eventlog import EventLog, RecentEvents
from chaosvol.proxy.holds import HoldRegistry
from chaosvol.proxy.settings import ServeSettings


class ProxyState:
    def __init__(
        self,
        settings: ServeSettings,
        backend: Backend,
        engine: ChaosEngine,
        events: EventLog | None = None,
        *,
        seed_override: int | None = None,
    ) -> None:
        """Args:
            seed_override: `--seed`, which also applies to profiles loaded later; without it a
                loaded profile brings its own seed, or keeps the current one.
        """
        self.settings = settings
        self.events = events
        self.seed_override = seed_override
        self.recent = RecentEvents()
        self.holds = HoldRegistry()
        self.retries = RetryTracker()
        self.calls_by_operation: Counter[str] = Counter()
        self.in_flight = 0
        self.connections = 0  # connections from the daemon open right now
        self.started_at = time.time()
        self.profile_loaded_at = time.time()
        # Read these three freely; change them only through the methods below. (Plain attributes:
        # the call path reads each once a call, and a property costs a function call.)
        self.engine = engine
        self.backend = backend
        self.paused = False  # the kill switch: every call passes through (rules still count)
        self.seq = 0  # the last call's number
        self._duties: trio.Nursery | None = None  # where backends' duties run (run_backend)
        self._duty: trio.CancelScope | None = None  # the duties of the backend in use

    # -- what the calls are served with ----------------------------------------------------

    def record(self, record: CallRecord) -> None:
        """Keep a call's record for `ctl events`, and write it to the event log."""
        self.recent.add(record)
        if self.events is not None:
            self.events.record(record)

    # -- what a tester changes -------------------------------------------------------------

    def load(self, profile: Profile) -> ChaosEngine:
        """Put `profile` in force at once. Rule counters start again (the count of Activates
        goes on); calls already held or delayed go on as planned."""
        engine = self.engine
        seed = self.seed_override if self.seed_override is not None else profile.seed if profile.seed is not None else engine.seed
        self.engine = ChaosEngine(profile, seed=seed, activations=engine.activations)
        self.profile_loaded_at = time.time()
        self.log_profile("load")
        return self.engine

    def pause(self) -> bool:
        """Pause; False when it already was."""
        was, self.paused = self.paused, True
        return not was

    def resume(self) -> bool:
        """Resume; False when it was not paused."""
        was, self.paused = self.paused, False
        return was

    async def use_backend(self, backend: Backend) -> Backend:
        """Send the calls that start from now on to `backend`, once its duties run (see
        Backend.run); the old one's stop. The old one is returned, for the caller to close."""
        old_duty = self._duty
        if self._duties is not None:
            await self._duties.start(self._run_duty, backend)
        old, self.backend = self.backend, backend
        if old_duty is not None:
            old_duty.cancel()
        return old

    async def run_backend(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the duties of the backend in use (and of the next, after use_backend()), until
        cancelled; started once the backend can take calls."""
        async with trio.open_nursery() as nursery:
            self._duties = nursery
            try:
                await nursery.start(self._run_duty, self.backend)
                task_status.started()
                await trio.sleep_forever()
            finally:
                self._duties = None

    async def _run_duty(self, backend: Backend, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        with trio.CancelScope() as self._duty:
            await backend.run(task_status=task_status)

    def log_profile(self, kind: Literal["header", "load"]) -> None:
        """The event log's line that says which chaosvol, profile and seed the records below
        come from (`header`: a run starts; `load`: another profile took over)."""
        if self.events is None:
            return
        profile = self.engine.profile
        settings = self.settings
        self.events.write_line(header_line(
            kind, version=__version__, seed=self.engine.seed, profile_source=profile.source, profile_digest=profile.digest,
            rules=len(profile.rules), started_at=time.time(), name=settings.name, socket=settings.socket_path,
            backend=settings.backend_label,
        ))
