"""The ChaosvolError tree. Each error that can reach dockerd knows the reply it should get.

Foreign exceptions are translated into these once per boundary (wire, profile, backends, cli),
always `from` the original, so a user sees one clear message and a developer keeps the cause.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from chaosvol.core.protocol import PluginReply


class ChaosvolError(Exception):
    """Base of every error chaosvol raises on purpose."""


class UsageError(ChaosvolError):
    """A flag, address or name given on the command line cannot be used (exit 2)."""


@dataclass(frozen=True, slots=True)
class Position:
    """Where something sits in a profile file; line and column are 1-based. Line 0 means the
    file as a whole (it cannot be read, or does not exist): then only the file is named."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        if self.line <= 0:
            return self.file
        return f"{self.file}:{self.line}:{self.column}"


class ProfileError(ChaosvolError, ValueError):
    """A profile is invalid. Carries every problem found, each with its position.

    `str()` gives one line per problem: `file:line:column: where: message`.
    """

    def __init__(self, problems: list[ProfileProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))

    @property
    def where(self) -> str:
        """The field of the first problem, e.g. `rules[2].action.delay.duration`."""
        return self.problems[0].where


@dataclass(frozen=True, slots=True)
class ProfileProblem:
    position: Position
    where: str
    message: str

    def __str__(self) -> str:
        where = f"{self.where}: " if self.where else ""
        return f"{self.position}: {where}{self.message}"


class RequestError(ChaosvolError):
    """dockerd (or another client) sent something we cannot serve.

    `status_hint` is the HTTP status to answer with: 400, 404, 405, 413 or 431.
    """

    def __init__(self, message: str, status_hint: int = 400) -> None:
        super().__init__(message)
        self.status_hint = status_hint

    def docker_reply(self) -> PluginReply:
        return PluginReply.error(f"chaosvol: {self}", self.status_hint)


class BackendError(ChaosvolError):
    """The backend could not give an answer. Never says `injected`: a real outage must not pass
    for a fault somebody asked for."""

    kind = "failed"

    def __init__(self, backend: str, reason: str) -> None:
        super().__init__(f"backend {backend} {self.kind}: {reason}")
        self.backend = backend
        self.reason = reason

    def docker_reply(self) -> PluginReply:
        return PluginReply.error(f"chaosvol: {self}", 502)


class BackendUnavailable(BackendError):
    """No connection could be made, or it broke before an answer came."""

    kind = "unavailable"


class BackendTimeout(BackendError):
    """The backend did not answer in time."""

    kind = "timed out"

    def docker_reply(self) -> PluginReply:
        return PluginReply.error(f"chaosvol: {self}", 504)


class BackendProtocolError(BackendError):
    """The backend answered something that is not HTTP, or does not speak VolumeDriver."""

    kind = "broke the protocol"


@contextmanager
def unwrapped() -> Iterator[None]:
    """What a trio nursery inside the block raised, as it was raised: a lone exception comes out
    of its ExceptionGroup (callers catch UsageError, not a group of one)."""
    try:
        yield
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise
