"""Which call an empty-body retry retries: dockerd's retries linked to the calls chaosvol cut.

When a connection closes after dockerd sent its request but before an answer (a `reset` or
`crash` rule, a backend that died half-way through a long answer), dockerd retries on a new
connection about 1, 3, 7 and 15 s later, and every retry carries an empty body (moby#39331,
protocol.md §4.3): nothing in it says which volume it is about. The proxy knows which calls it
cut, so it can say: the empty-body Create that arrives 1 s after the Create of `c1` was cut is a
retry of that Create. Pure: the shell says when calls are cut, answered and retried, with its
clock.

One link per retry: the call it retries (the first attempt, the one that carried the body), and
that call's volume and mount ID. When two calls of the same operation were cut and are both
still within dockerd's retry window, an empty body could belong to either: the link is then
`None`, with the reason, and never a guess.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from chaosvol.core.protocol import Operation, PluginCall

# dockerd gives up about 15 s after the first attempt (attempts at 0, +1, +3, +7, +15 s); a cut
# call is awaited that long after its last attempt, with room for a slow daemon.
RETRY_WINDOW: Final = 20.0


@dataclass(frozen=True, slots=True)
class RetryLink:
    """What an empty-body retry is a retry of: `retry_of` (the seq of the first attempt) with its
    `volume` and `mount_id`; or `retry_of` None, and `reason` says why."""

    retry_of: int | None
    volume: str | None = None
    mount_id: str | None = None
    reason: str | None = None


@dataclass(slots=True)
class _Cut:
    seq: int
    operation: Operation
    volume: str | None
    mount_id: str | None
    last_attempt: float  # when the last attempt (the call, or a retry of it) was cut


@dataclass(slots=True)
class RetryTracker:
    """The calls cut after dockerd sent their body, awaiting dockerd's empty-body retries."""

    window: float = RETRY_WINDOW
    _cut: list[_Cut] = field(default_factory=list)

    def cut(self, seq: int, call: PluginCall, now: float, link: RetryLink | None = None) -> None:
        """`call` (number `seq`) got no answer after its body was read: dockerd will retry it.
        A retry that is cut again (`link` says what it retries) keeps its chain waiting."""
        if not call.operation.carries_body:
            return  # Activate and List: an empty body is their usual one, a retry cannot be told
        self._forget_before(now)  # a client that never retries (Podman) must not make this grow
        if call.retry:
            for cut in self._cut:
                if link is not None and cut.seq == link.retry_of:
                    cut.last_attempt = now
            return
        self._cut.append(_Cut(seq, call.operation, call.volume, call.mount_id, now))

    def retry(self, call: PluginCall, now: float) -> RetryLink:
        """The link of `call`, an empty-body retry arriving at `now`."""
        self._forget_before(now)
        waiting = [cut for cut in self._cut if cut.operation is call.operation]
        if not waiting:
            return RetryLink(None, reason=f"no {call.operation.value} was cut in the last {self.window:g}s: not a retry of a call chaosvol cut")
        if len(waiting) > 1:
            seqs = ", ".join(str(cut.seq) for cut in waiting)
            return RetryLink(None, reason=f"ambiguous: {call.operation.value} calls {seqs} were all cut and may each be retried")
        (cut,) = waiting
        return RetryLink(cut.seq, cut.volume, cut.mount_id)

    def _forget_before(self, now: float) -> None:
        if self._cut and now - self._cut[0].last_attempt > self.window:
            self._cut = [cut for cut in self._cut if now - cut.last_attempt <= self.window]

    def answered(self, link: RetryLink) -> None:
        """The retry `link` describes got an answer: dockerd's retries of that call are over."""
        self._cut = [cut for cut in self._cut if cut.seq != link.retry_of]
