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
    return round(total, 6)  # to the microsecond, the finest unit: 13.995ms is 0.013995, not 0.013994999...


def format_duration(seconds: float) -> str:
    """The shortest profile spelling of `seconds` that reads back as the same number of
    microseconds (used by replay, which must reproduce a recorded delay, and in messages)."""
    micro = round(seconds * 1_000_000)
    if micro == 0:
        return "0s"
    if micro < 1_000_000:
        return f"{micro / 1000:.3f}".rstrip("0").rstrip(".") + "ms"
    if micro % 1000:
        return f"{micro / 1_000_000:.6f}".rstrip("0") + "s"
    if micro % 1_000_000 == 0:
        whole = micro // 1_000_000
        minutes, rest = divmod(whole, 60)
        if minutes and whole >= 60:
            return f"{minutes}m{rest}s" if rest else f"{minutes}m"
        return f"{whole}s"
    return f"{micro / 1_000_000:.3f}".rstrip("0") + "s"
