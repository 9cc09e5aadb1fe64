"""CallRecord: what happened to one call, and its event-log line (the contract's short keys).

One JSON object per line, written when the call ends:

    {"t": "2026-11-23T07:30:00.123456Z", "seq": 17, "conn": 3, "op": "Remove", "volume": "v1",
     "mount_id": null, "rule": "drop-first-remove", "action": "drop", "forwarded": false,
     "backend": null, "reply": {"status": 200, "err": null}, "ms": 0.4,
     "retry": false, "outcome": "answered", "injected": true}

* `t`: when the call arrived (UTC); `ms`: how long it took until answered, cut or abandoned.
* `backend`: what the backend answered (`status`, `err`) or `{"error": "..."}` for a transport
  failure; null when it was not asked.
* `reply`: what the daemon was sent (for Get, `found` says whether it carried a volume); null
  when nothing was (`outcome` says why: `hung`,
  `reset`, `client-gone` when the daemon hung up first, `cut` at shutdown, `crashed` when a crash
  rule killed the proxy with the call in flight).
* `retry`: an empty body where dockerd always sends one: its retry after a dropped connection.
* `injected`: a rule fired. A real failure has `injected: false` and names the backend.
* `held`: null, or how a `hold` ended for this call: `released`, `timeout`, or `cancelled` (the
  proxy stopped or crashed while it was held).
* `opts`: the options of a Create (null for other calls), so that an audit can tell which
  options dockerd should still know; values of options whose names look like credentials
  (password, token, secret, key, credential, auth, cert) are written as `<redacted>`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

from chaosvol.protocol import PluginReply, field_of

# Options whose names look like credentials are never written in clear.
SECRET_OPTION: Final = re.compile(r"pass|token|secret|key|credential|auth|cert", re.IGNORECASE)
REDACTED: Final = "<redacted>"
_ENCODER: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)  # one, not one per line
_encode_string: Final = json.encoder.encode_basestring  # what _ENCODER does to a str (C, when built)


def redact(opts: dict[str, str] | None) -> dict[str, str] | None:
    if opts is None:
        return None
    return {k: REDACTED if SECRET_OPTION.search(k) else v for k, v in opts.items()}


Outcome = Literal["answered", "hung", "reset", "client-gone", "cut", "refused", "crashed"]


@dataclass(frozen=True, slots=True)
class BackendOutcome:
    """What the backend answered (`reply`), or the transport failure (`error`) when it did not."""

    reply: PluginReply | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        if self.error is not None or self.reply is None:
            return {"error": self.error}
        return {"status": self.reply.status, "err": self.reply.err}


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One call's record. It keeps the replies themselves: what the log says of them (`err`,
    `found`) is worked out when the line is written, off the call's path, and only if it is."""

    started_at: float  # Unix time
    seq: int
    conn: int
    operation: str | None
    volume: str | None
    mount_id: str | None
    rule: str | None
    action: str | None
    forwarded: bool
    backend: BackendOutcome | None
    reply: PluginReply | None  # what the daemon was sent
    elapsed: float  # seconds
    retry: bool = False
    outcome: Outcome = "answered"
    opts: dict[str, str] | None = None
    held: str | None = None  # held by a hold rule: how the hold ended (released, timeout, cancelled)

    @property
    def retained_bytes(self) -> int:
        """Body bytes this record keeps alive."""
        size = len(self.reply.body) if self.reply is not None else 0
        backend = self.backend.reply if self.backend is not None else None
        if backend is not None and backend is not self.reply:
            size += len(backend.body)
        return size

    def to_json(self) -> dict[str, Any]:
        return {
            "t": _timestamp(self.started_at),
            "seq": self.seq,
            "conn": self.conn,
            "op": self.operation,
            "volume": self.volume,
            "mount_id": self.mount_id,
            "rule": self.rule,
            "action": self.action,
            "forwarded": self.forwarded,
            "backend": self.backend.to_json() if self.backend is not None else None,
            "reply": self._reply(),
            "ms": round(self.elapsed * 1000, 3),
            "retry": self.retry,
            "outcome": self.outcome,
            "injected": self.rule is not None,
            "opts": redact(self.opts),
            "held": self.held,
        }

    def _reply(self) -> dict[str, Any] | None:
        if self.reply is None:
            return None
        reply: dict[str, Any] = {"status": self.reply.status, "err": self.reply.err}
        if self.operation == "Get":
            reply["found"] = _found(self.reply)
        return reply

    def to_line(self) -> str:
        """`to_json()` as one compact JSON line, byte for byte what the json module writes for it
        (tests/unit/test_events.py checks that on generated records), built directly: a third of
        the time, and the event log writes one per call."""
        reply = self.reply
        if reply is None:
            reply_text = "null"
        else:
            err, found = _summary(reply)
            reply_text = f'{{"status":{reply.status},"err":{err}'
            if self.operation == "Get":
                reply_text += ',"found":true}' if found else ',"found":false}'
            else:
                reply_text += "}"
        backend = self.backend
        if backend is None:
            backend_text = "null"
        elif backend.error is not None or backend.reply is None:
            backend_text = f'{{"error":{_string(backend.error)}}}'
        else:
            backend_text = f'{{"status":{backend.reply.status},"err":{_summary(backend.reply)[0]}}}'
        opts = "null" if self.opts is None else _ENCODER.encode(redact(self.opts))
        return (
            f'{{"t":"{_timestamp(self.started_at)}","seq":{self.seq},"conn":{self.conn},'
            f'"op":{_string(self.operation)},"volume":{_string(self.volume)},"mount_id":{_string(self.mount_id)},'
            f'"rule":{_string(self.rule)},"action":{_string(self.action)},'
            f'"forwarded":{"true" if self.forwarded else "false"},"backend":{backend_text},"reply":{reply_text},'
            f'"ms":{round(self.elapsed * 1000, 3)!r},"retry":{"true" if self.retry else "false"},'
            f'"outcome":{_string(self.outcome)},"injected":{"false" if self.rule is None else "true"},'
            f'"opts":{opts},"held":{_string(self.held)}}}\n'
        )


# What a short answer says (its err, encoded for the line, and whether it carries a volume), by
# status and body. Daemons ask the same things again and again and backends answer them the same
# way (every Create's `{"Err":""}`, each volume's Get), and decoding the body was the largest part
# of writing a line.
_SUMMARIES: Final[dict[tuple[int, bytes], tuple[str, bool]]] = {}
_SUMMARIES_MAX: Final = 4096
_SUMMARIZED_BODY: Final = 1024


def _summary(reply: PluginReply) -> tuple[str, bool]:
    """The reply's `err` as JSON, and whether it carries a volume (for Get)."""
    if len(reply.body) > _SUMMARIZED_BODY:
        return _string(reply.err), _found(reply)
    key = (reply.status, reply.body)
    summary = _SUMMARIES.get(key)
    if summary is None:
        if len(_SUMMARIES) >= _SUMMARIES_MAX:
            _SUMMARIES.clear()
        summary = _SUMMARIES[key] = (_string(reply.err), _found(reply))
    return summary


def _found(reply: PluginReply) -> bool:
    """Whether a Get answer carried a volume."""
    value = reply.decoded()
    return isinstance(value, dict) and isinstance(field_of(value, "Volume"), dict)


def _string(value: str | None) -> str:
    return "null" if value is None else _encode_string(value)


def parse_line(line: str) -> dict[str, Any]:
    """One event-log line back into its JSON object (for tools that read logs)."""
    value = json.loads(line)
    if not isinstance(value, dict):
        raise ValueError("an event line is a JSON object")
    return value


_second_cache: list[object] = [None, ""]


def _timestamp(unix: float) -> str:
    """RFC 3339 with microseconds, UTC; the date part is formatted once per second."""
    second = int(unix)
    micro = round((unix - second) * 1_000_000)  # as datetime rounds
    if micro >= 1_000_000:
        second, micro = second + 1, micro - 1_000_000
    if _second_cache[0] != second:
        _second_cache[0] = second
        _second_cache[1] = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{_second_cache[1]}.{micro:06d}Z"
