"""Event logs in tests, read the way the tools read them (chaosvol.core.events.parse_event_log): the
call lines as their JSON objects, the header and load lines left out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chaosvol.core.events import parse_event_log


def call_lines(log: str | Path, *, partial_tail: bool = False) -> list[dict[str, Any]]:
    """Each call's line of `log` (its text, or a file), in file order."""
    text = log.read_text() if isinstance(log, Path) else log
    return [dict(event.raw) for event in parse_event_log(text.splitlines(keepends=True), "events", partial_tail=partial_tail).events]
