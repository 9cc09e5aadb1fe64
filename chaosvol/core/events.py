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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

from chaosvol.core.protocol import PluginReply, field_of
from chaosvol.faults import Fault, options_of

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


@dataclass(slots=True)
class CallRecord:
    """One call's record. It keeps the replies themselves: what the log says of them (`err`,
    `found`) is worked out when the line is written, off the call's path, and only if it is.

    Not frozen, though nothing changes a record once made: a frozen dataclass of 21 fields
    costs 3.7 us to build (object.__setattr__ per field), a plain one 0.3 us, on every call."""

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
    rule_index: int | None = None  # the rule's place in its profile, from 0
    actions: tuple[Fault, ...] = ()  # the rule's actions as resolved for this call
    volume_pattern: str | None = None  # the rule's volume glob
    retry_of: int | None = None  # an empty-body retry: the seq of the call it retries (volume: that call's)
    retry_link: str | None = None  # an empty-body retry with no retry_of: why it could not be linked

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
            "rule_index": self.rule_index,
            "decision": self._decision(),
            "forwarded": self.forwarded,
            "backend": self.backend.to_json() if self.backend is not None else None,
            "reply": self._reply(),
            "ms": round(self.elapsed * 1000, 3),
            "retry": self.retry,
            "retry_of": self.retry_of,
            "retry_link": self.retry_link,
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
        if self.rule is not None:
            reply["bytes"] = len(self.reply.body)
        return reply

    def _decision(self) -> dict[str, Any] | None:
        if self.rule is None:
            return None
        return {"actions": [{action.word: options_of(action)} for action in self.actions], "volume": self.volume_pattern}

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
                reply_text += ',"found":true' if found else ',"found":false'
            reply_text += f',"bytes":{len(reply.body)}}}' if self.rule is not None else "}"
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
            f'"rule_index":{"null" if self.rule_index is None else self.rule_index},"decision":{self._decision_text()},'
            f'"forwarded":{"true" if self.forwarded else "false"},"backend":{backend_text},"reply":{reply_text},'
            f'"ms":{round(self.elapsed * 1000, 3)!r},"retry":{"true" if self.retry else "false"},'
            f'"retry_of":{"null" if self.retry_of is None else self.retry_of},"retry_link":{_string(self.retry_link)},'
            f'"outcome":{_string(self.outcome)},"injected":{"false" if self.rule is None else "true"},'
            f'"opts":{opts},"held":{_string(self.held)}}}\n'
        )


    def _decision_text(self) -> str:
        if self.rule is None:
            return "null"
        # A rule without random choices resolves to the same tuple of actions every time: its
        # text is made once, found by identity (hashing the actions' fields costs more).
        key = (id(self.actions), self.volume_pattern)
        entry = _DECISIONS.get(key)
        if entry is None or entry[0] is not self.actions:
            if len(_DECISIONS) >= _SUMMARIES_MAX:
                _DECISIONS.clear()
            entry = _DECISIONS[key] = (self.actions, _ENCODER.encode(self._decision()))
        return entry[1]


_DECISIONS: Final[dict[tuple[int, str | None], tuple[tuple[Fault, ...], str]]] = {}


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


# -- reading logs: one typed reader for every tool (audit, replay, report, sweep) -----------------


class EventLogError(ValueError):
    """An event log chaosvol cannot read: the message starts with `file:line:`."""


@dataclass(frozen=True, slots=True)
class Seen:
    """What an answer said, as a log line records it: `status` and `err` (dockerd's reading:
    an empty Err is no error), or `error` when the backend gave no answer at all."""

    status: int | None = None
    err: str | None = None
    error: str | None = None
    found: bool | None = None  # Get: whether the answer carried a volume
    bytes: int | None = None  # the body's size, for the calls a rule fired on (schema 2)

    @property
    def ok(self) -> bool:
        """Success as dockerd reads it: status 200 and no Err."""
        return self.error is None and self.status == 200 and self.err is None

    @classmethod
    def from_json(cls, value: Any, key: str) -> Seen | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise TypeError(f"{key}: expected an object or null, found {type(value).__name__}")
        return cls(
            _typed(value, "status", int, f"{key}.status"), _typed(value, "err", str, f"{key}.err"),
            _typed(value, "error", str, f"{key}.error"), _typed(value, "found", bool, f"{key}.found"),
            _typed(value, "bytes", int, f"{key}.bytes"),
        )


@dataclass(frozen=True, slots=True)
class ResolvedAction:
    """One action of a fired rule as it was carried out: its word and every option (durations in
    seconds, a delay's jitter already drawn)."""

    word: str
    options: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class CallEvent:
    """One call's line, typed. `decision` is None for a call no rule fired on, and for a faulted
    call of a schema 1 log (which did not record its decision)."""

    line: int  # where it is in its file
    run: int  # which run of the file (a log appended by several runs), from 0
    t: str
    seq: int
    op: str | None
    volume: str | None
    conn: int | None = None
    mount_id: str | None = None
    rule: str | None = None
    action: str | None = None
    rule_index: int | None = None
    decision: tuple[ResolvedAction, ...] | None = None
    decision_volume: str | None = None  # the fired rule's volume glob
    forwarded: bool = False
    backend: Seen | None = None
    reply: Seen | None = None
    ms: float = 0.0
    retry: bool = False
    retry_of: int | None = None
    retry_link: str | None = None
    outcome: str = "answered"
    injected: bool = False
    opts: Mapping[str, str] | None = None
    held: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, value: Mapping[str, Any], *, line: int = 0, run: int = 0) -> CallEvent:
        """Raises:
            ValueError, TypeError: a key is missing or holds a value of the wrong type (the message names it)."""
        decision = value.get("decision")
        actions: tuple[ResolvedAction, ...] | None = None
        decision_volume = None
        if decision is not None:
            if not isinstance(decision, dict) or not isinstance(decision.get("actions"), list):
                raise ValueError("decision: expected an object with a list of actions")
            items = []
            for item in decision["actions"]:
                if not isinstance(item, dict) or len(item) != 1:
                    raise ValueError("decision.actions: each action is an object with one key, its word")
                ((word, options),) = item.items()
                if not isinstance(options, dict):
                    raise TypeError(f"decision.actions: the options of {word!r} are not an object")
                items.append(ResolvedAction(str(word), options))
            actions = tuple(items)
            decision_volume = _typed(decision, "volume", str, "decision.volume")
        rule = _typed(value, "rule", str, "rule")
        return cls(
            line=line, run=run, t=_typed(value, "t", str, "t") or "", seq=_required(value, "seq", int),
            op=_typed(value, "op", str, "op"), volume=_typed(value, "volume", str, "volume"), conn=_typed(value, "conn", int, "conn"),
            mount_id=_typed(value, "mount_id", str, "mount_id"), rule=rule, action=_typed(value, "action", str, "action"),
            rule_index=_typed(value, "rule_index", int, "rule_index"), decision=actions, decision_volume=decision_volume,
            forwarded=bool(value.get("forwarded")), backend=Seen.from_json(value.get("backend"), "backend"),
            reply=Seen.from_json(value.get("reply"), "reply"), ms=float(_typed(value, "ms", (int, float), "ms") or 0.0),
            retry=bool(value.get("retry")), retry_of=_typed(value, "retry_of", int, "retry_of"),
            retry_link=_typed(value, "retry_link", str, "retry_link"), outcome=_typed(value, "outcome", str, "outcome") or "answered",
            injected=bool(value.get("injected", rule is not None)), opts=_typed(value, "opts", dict, "opts"),
            held=_typed(value, "held", str, "held"), raw=value,
        )


@dataclass(frozen=True, slots=True)
class RunHeader:
    """A `header` line (a run starts) or a `load` line (another profile took over)."""

    line: int
    kind: str
    schema: int
    version: str
    t: str
    seed: int | None
    profile_source: str | None
    profile_digest: str | None
    rules: int | None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class EventLogContents:
    """A whole log: its call events in arrival order and its header and load lines."""

    source: str
    events: tuple[CallEvent, ...]
    headers: tuple[RunHeader, ...]

    @property
    def schema(self) -> int:
        """The log's format: 1 (no header: before logs named their schema) or the header's."""
        return max((h.schema for h in self.headers), default=1)

    @property
    def runs(self) -> int:
        return max((event.run for event in self.events), default=-1) + 1

    def run(self, index: int) -> tuple[CallEvent, ...]:
        return tuple(event for event in self.events if event.run == index)


def parse_event_log(lines: Iterable[str], source: str, *, partial_tail: bool = False) -> EventLogContents:
    """Every line of a log, checked and typed.

    Args:
        partial_tail: a last line cut short is skipped instead of refused (reading a log that a
            running proxy is still writing).

    Raises:
        EventLogError: `source:line: what is wrong`: a line that is not JSON, not an object, not
        chaosvol's, of a schema newer than this chaosvol reads, or (unless `partial_tail`) the
        last line cut short.
    """
    events: list[CallEvent] = []
    headers: list[RunHeader] = []
    run = -1
    for number, text in enumerate(lines, 1):
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except ValueError as exc:
            if not text.endswith("\n"):
                if partial_tail:
                    break
                raise EventLogError(f"{source}:{number}: the last line is cut short (the log was truncated, or its writer killed mid-line)") from exc
            raise EventLogError(f"{source}:{number}: not JSON: {exc}") from exc
        if not isinstance(value, dict):
            raise EventLogError(f"{source}:{number}: not an event-log line: a JSON {type(value).__name__}, not an object")
        try:
            kind = value.get("kind")
            if kind in ("header", "load"):
                header = _header(value, number)
                if header.schema > SCHEMA:
                    raise EventLogError(
                        f"{source}:{number}: written by chaosvol {header.version} in event schema {header.schema}; "
                        f"this chaosvol reads schemas 1 to {SCHEMA}: upgrade it to read this log"
                    )
                headers.append(header)
                if kind == "header" or run < 0:
                    run += 1
                continue
            if kind is not None:
                raise ValueError(f"unknown kind {kind!r} (a log of a newer chaosvol?)")
            if "seq" not in value or "op" not in value:
                raise ValueError("not a chaosvol event: it has no seq and op")
            if run < 0:
                run = 0  # a log of schema 1 (no header) is one run... until a header says otherwise
            elif events and value["seq"] <= events[-1].seq and (not headers or headers[-1].line < events[-1].line):
                run += 1  # schema 1 logs appended by several runs: seq starts again
            events.append(CallEvent.from_json(value, line=number, run=run))
        except EventLogError:
            raise
        except (ValueError, TypeError) as exc:
            raise EventLogError(f"{source}:{number}: {exc}") from exc
    return EventLogContents(source, tuple(events), tuple(headers))


def _header(value: Mapping[str, Any], number: int) -> RunHeader:
    profile = value.get("profile") or {}
    if not isinstance(profile, dict):
        raise TypeError("profile: expected an object")
    return RunHeader(
        number, str(value["kind"]), _required(value, "schema", int), str(value.get("chaosvol", "?")), str(value.get("t", "")),
        _typed(value, "seed", int, "seed"), _typed(profile, "source", str, "profile.source"),
        _typed(profile, "sha256", str, "profile.sha256"), _typed(profile, "rules", int, "profile.rules"),
        _typed(value, "name", str, "name"),
    )


def _typed(value: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    item = value.get(key)
    if item is None:
        return None
    if not isinstance(item, kind) or (kind is int and isinstance(item, bool)):
        raise ValueError(f"{where}: expected {_kind_name(kind)}, found {json.dumps(item)[:60]}")
    return item


def _required(value: Mapping[str, Any], key: str, kind: type) -> Any:
    item = _typed(value, key, kind, key)
    if item is None:
        raise ValueError(f"{key}: missing")
    return item


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {int: "an integer", float: "a number", str: "a string", dict: "an object", bool: "true or false"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


# The event log's format: 1, the lines of chaosvol before its logs named a schema (no header, no
# decision); 2, a header line opens each run and every faulted call carries its decision.
SCHEMA: Final = 2


def header_line(kind: Literal["header", "load"], *, version: str, seed: int, profile_source: str, profile_digest: str | None,
                rules: int, started_at: float, name: str | None = None, socket: str | None = None,
                backend: str | None = None) -> str:
    """The line that opens a run's records (`header`), or says a new profile took over (`load`)."""
    record: dict[str, Any] = {"kind": kind, "schema": SCHEMA, "chaosvol": version, "t": _timestamp(started_at), "seed": seed,
                              "profile": {"source": profile_source, "sha256": profile_digest, "rules": rules}}
    if kind == "header":
        record.update({"name": name, "socket": socket, "backend": backend})
    return _ENCODER.encode(record) + "\n"


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
