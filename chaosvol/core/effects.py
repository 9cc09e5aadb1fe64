"""Effects: the steps of a plan, and Plan, the ordered steps the shell runs for one call.

The core decides a Plan; the shell (server.run_plan) walks it left to right, keeping "the reply
so far": Forward fills it with the backend's answer, Reply replaces it, Rewrite alters it, and it
is sent when the plan ends. Hang and Reset end a plan without an answer. Order is meaning:
`(Forward(), Reply(error))` is a backend that acted while dockerd is told it failed;
`(Reply(error),)` is a backend that never saw the call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, TypeAlias

from chaosvol.core.protocol import PluginReply


class ReplyEdit(Protocol):
    """A change to the reply so far (hide names from List, break the body, ...)."""

    def apply(self, reply: PluginReply) -> PluginReply: ...


@dataclass(frozen=True, slots=True)
class Forward:
    """Send the call to the backend; its answer (or the honest error) becomes the reply."""


@dataclass(frozen=True, slots=True)
class Sleep:
    """Wait, then go on with the plan. The core asks for the wait; the shell does it."""

    seconds: float

    def __post_init__(self) -> None:
        if not self.seconds >= 0:  # this way round, so that NaN is refused too
            raise ValueError(f"Sleep needs seconds >= 0, not {self.seconds!r}")


@dataclass(frozen=True, slots=True)
class Reply:
    """Make `reply` the reply so far (the backend's answer, if any, is discarded)."""

    reply: PluginReply


@dataclass(frozen=True, slots=True)
class Rewrite:
    """Alter the reply so far."""

    edit: ReplyEdit


@dataclass(frozen=True, slots=True)
class Hold:
    """Park the call until `chaosvol ctl release` lets it go on, or until `timeout` seconds have
    passed (None: no timeout). The plan then goes on where it stopped."""

    timeout: float | None = None

    def __post_init__(self) -> None:
        if self.timeout is not None and not self.timeout >= 0:
            raise ValueError(f"Hold needs timeout >= 0 or None, not {self.timeout!r}")


@dataclass(frozen=True, slots=True)
class Hang:
    """Never answer: wait until dockerd gives up and closes the connection."""


@dataclass(frozen=True, slots=True)
class Reset:
    """Close the connection without an answer (dockerd then retries with an empty body)."""


@dataclass(frozen=True, slots=True)
class Crash:
    """After `after` seconds, the whole proxy dies as a plugin process would: its socket goes
    away and every connection closes unanswered. It comes back on the same socket after
    `restart` seconds, or never (the process exits)."""

    after: float = 0.0
    restart: float | None = None

    def __post_init__(self) -> None:
        if not self.after >= 0 or (self.restart is not None and not self.restart >= 0):
            raise ValueError(f"Crash needs after >= 0 and restart >= 0, not {self.after!r}, {self.restart!r}")


Effect: TypeAlias = Forward | Sleep | Hold | Reply | Rewrite | Hang | Reset | Crash
TERMINAL = (Hang, Reset, Crash)


@dataclass(frozen=True, slots=True)
class Plan:
    """What to do with one call, in order. A plan that exists can run:

    * Hang and Reset come last, if at all;
    * a plan that answers has a Forward or a Reply before anything that alters the reply;
    * the backend is asked at most once.
    """

    effects: tuple[Effect, ...]

    def __post_init__(self) -> None:
        has_reply = False
        forwards = 0
        for index, effect in enumerate(self.effects):
            if isinstance(effect, TERMINAL) and index != len(self.effects) - 1:
                raise ValueError(f"{type(effect).__name__} ends a call, so it must come last")
            if isinstance(effect, Rewrite) and not has_reply:
                raise ValueError("Rewrite needs a reply to change: put Forward or Reply before it")
            if isinstance(effect, Forward):
                forwards += 1
            has_reply = has_reply or isinstance(effect, Forward | Reply)
        if forwards > 1:
            raise ValueError("a plan forwards a call at most once")
        if self.answers and not has_reply:
            raise ValueError("a plan that answers needs Forward or Reply")

    @classmethod
    def of(cls, *effects: Effect) -> Plan:
        return cls(tuple(effects))

    @property
    def answers(self) -> bool:
        """False when the plan ends in Hang, Reset or Crash."""
        return not (self.effects and isinstance(self.effects[-1], TERMINAL))

    @property
    def forwards(self) -> bool:
        return any(isinstance(effect, Forward) for effect in self.effects)

    @classmethod
    def combine(cls, plans: list[Plan]) -> Plan:
        """One plan from several actions run in order (a profile's `actions: [...]`).

        Each plan is split at its Forward: what comes before runs first, in order, then one
        Forward (only if every plan forwards: any action that keeps the call from the backend
        keeps it from the backend), then what comes after, in order. So `[delay, error after]`
        waits, forwards, then reports failure.
        """
        before: list[Effect] = []
        after: list[Effect] = []
        every_plan_forwards = all(plan.forwards for plan in plans)
        for plan in plans:
            effects = plan.effects
            pivot = next((i for i, e in enumerate(effects) if isinstance(e, Forward)), len(effects))
            before.extend(effects[:pivot])
            after.extend(effects[pivot + 1 :])
        middle: list[Effect] = [Forward()] if every_plan_forwards else []
        return cls(tuple(before + middle + after))

    def __str__(self) -> str:
        return ", ".join(_describe(effect) for effect in self.effects)


def _describe(effect: Effect) -> str:
    match effect:
        case Sleep(seconds=seconds):
            return f"sleep {seconds:g}s"
        case Hold(timeout=timeout):
            return "hold" if timeout is None else f"hold (at most {timeout:g}s)"
        case Reply(reply=reply):
            return f"reply {reply.status}"
        case Rewrite(edit=edit):
            return f"rewrite {edit}"
        case _:
            return type(effect).__name__.lower()
