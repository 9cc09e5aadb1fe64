"""Durations as profiles write them: `250ms`, `2s`, `1m30s`, `1h`, `1.5s`.

A bare number is refused: `2` could mean seconds or milliseconds, and a profile that guesses
wrong runs a different experiment without saying so.
"""

from __future__ import annotations

import re
from typing import Annotated, Final

_UNITS: Final = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 0.000001}
_PART: Final = re.compile(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)")
DURATION_FORMS: Final = "a duration such as 250ms, 2s, 1m30s (units h, m, s, ms, us)"


class DurationMarker:
    """Marks a float field of a fault as a duration in profiles (see `Seconds`)."""


Seconds = Annotated[float, DurationMarker]


def parse_duration(text: str) -> float:
    """Seconds in `text`.

    Raises:
        ValueError: not a duration; the message says what is allowed.
    """
    stripped = text.strip()
    position = 0
    total = 0.0
    for match in _PART.finditer(stripped):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if not stripped or position != len(stripped):
        raise ValueError(f"{text!r} is not {DURATION_FORMS}")
    return total


def format_duration(seconds: float) -> str:
    """The shortest profile spelling of `seconds` (used by replay and in messages)."""
    if seconds == 0:
        return "0s"
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    minutes, rest = divmod(seconds, 60)
    if minutes and rest == int(rest):
        return f"{int(minutes)}m{int(rest)}s" if rest else f"{int(minutes)}m"
    return f"{seconds:g}s"
