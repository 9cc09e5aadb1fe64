"""The VolumeDriver protocol's vocabulary: operations, calls, replies and dockerd's Err convention.

Pure and synchronous. A `PluginCall` keeps the exact bytes dockerd sent, so forwarding never
re-encodes anything; its parsed fields (`volume`, `mount_id`, `opts`) exist for matching rules and
for the event log. A `PluginReply` likewise keeps the exact bytes to send back.

dockerd's rules this module encodes (shared/protocol.md §2):

* only status 200 is success; any other status is an error;
* an error is `{"Err": "..."}`, with status 200 or not; an empty `Err` means no error;
* dockerd reads the *first* JSON value of a body, matches keys case-insensitively and treats
  `null` as absent, so anything that reads a backend's answer here must be as lenient.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any, Final


class Operation(enum.Enum):
    """One endpoint of the plugin protocol; the value is the name profiles and logs use."""

    ACTIVATE = "Activate"
    CREATE = "Create"
    REMOVE = "Remove"
    MOUNT = "Mount"
    UNMOUNT = "Unmount"
    PATH = "Path"
    GET = "Get"
    LIST = "List"
    CAPABILITIES = "Capabilities"

    @property
    def target(self) -> str:
        """The HTTP request target dockerd posts to, e.g. `/VolumeDriver.Create`."""
        return _TARGETS[self]

    @property
    def carries_body(self) -> bool:
        """Whether every client always sends a JSON body, so that an empty one is dockerd's retry:
        all but Activate (empty from everyone) and List (Podman sends it empty)."""
        return self not in (Operation.ACTIVATE, Operation.LIST)

    @property
    def names_volume(self) -> bool:
        """Whether the call is about one volume (it carries `Name`)."""
        return self in _VOLUME_OPERATIONS

    def __str__(self) -> str:
        return self.value


_TARGETS: Final = {
    op: "/Plugin.Activate" if op is Operation.ACTIVATE else f"/VolumeDriver.{op.value}"
    for op in Operation
}
_VOLUME_OPERATIONS: Final = frozenset(
    {
        Operation.CREATE,
        Operation.REMOVE,
        Operation.MOUNT,
        Operation.UNMOUNT,
        Operation.PATH,
        Operation.GET,
    }
)
OPERATION_BY_TARGET: Final[dict[str, Operation]] = {op.target: op for op in Operation}
OPERATION_BY_NAME: Final[dict[str, Operation]] = {op.value: op for op in Operation}

# What dockerd sends in Accept since 1.10 (protocol.md §1); we send it to backends when the
# caller did not give one.
PLUGIN_ACCEPT: Final = "application/vnd.docker.plugins.v1.2+json"
# go-plugins-helpers answers with this Content-Type; dockerd never reads it.
PLUGIN_CONTENT_TYPE: Final = "application/vnd.docker.plugins.v1.1+json"
ACTIVATE_BODY: Final = b'{"Implements": ["VolumeDriver"]}\n'
# Podman's client gives every plugin call 5 s (containers.conf `volume_plugin_timeout`), then fails
# with no retry; and it takes any 200 answer as success, `Err` or not (podman-behaviour.md §2).
PODMAN_PLUGIN_TIMEOUT: Final = 5.0


def decode_first_json_value(body: bytes) -> Any:
    """Decode a body the way Go's `json.NewDecoder(body).Decode` does: the first value only.

    Raises:
        ValueError: the body is empty or does not start with a JSON value.
    """
    text = body.decode("utf-8")
    stripped = text.lstrip()
    if not stripped:
        raise ValueError("empty body")
    value, _ = _DECODER.raw_decode(stripped)
    return value


_DECODER: Final = json.JSONDecoder()  # one for all: making one per body cost more than the decode


def field_of(obj: dict[str, Any], name: str) -> Any:
    """Read a key as Go's decoder does: exact case first, then case-insensitively; None if absent."""
    if name in obj:
        return obj[name]
    lowered = name.lower()
    for key, value in obj.items():
        if key.lower() == lowered:
            return value
    return None


@dataclass(frozen=True, slots=True)
class PluginCall:
    """One request from the daemon, parsed for matching but kept as sent for forwarding.

    Attributes:
        operation: the endpoint.
        body: the exact bytes dockerd sent (forwarded as they are).
        volume: `Name`, when the call names a volume and its body could be read.
        mount_id: `ID` of Mount and Unmount.
        opts: `Opts` of Create (None when absent or null).
        retry: the body is empty although the endpoint always carries one: dockerd's retry after
            a dropped connection (moby#39331), forwarded as it came.
        headers: the request headers worth passing on to the backend (Host, User-Agent, Accept
            and the like; never framing headers), as they came.
    """

    operation: Operation
    body: bytes = b"{}\n"
    volume: str | None = None
    mount_id: str | None = None
    opts: dict[str, str] | None = None
    retry: bool = False
    headers: tuple[tuple[bytes, bytes], ...] = field(default=(), compare=False, repr=False)

    @classmethod
    def parse(
        cls,
        operation: Operation,
        body: bytes,
        *,
        headers: tuple[tuple[bytes, bytes], ...] = (),
    ) -> PluginCall:
        """Build a call from a request body, never failing: an unreadable body is forwarded as is.

        The backend is the judge of a body it cannot read, exactly as it would be without us;
        we only lose the fields we match on.
        """
        if operation.carries_body and not body:
            return cls(operation, body, retry=True, headers=headers)
        volume = mount_id = None
        opts: dict[str, str] | None = None
        if operation.names_volume:
            try:
                decoded = decode_first_json_value(body)
            except (ValueError, UnicodeDecodeError):
                decoded = None
            if isinstance(decoded, dict):
                name = field_of(decoded, "Name")
                volume = name if isinstance(name, str) else None
                ident = field_of(decoded, "ID")
                mount_id = ident if isinstance(ident, str) else None
                raw_opts = field_of(decoded, "Opts")
                if isinstance(raw_opts, dict):
                    opts = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in raw_opts.items()}
        return cls(operation, body, volume, mount_id, opts, False, headers)

    @classmethod
    def build(
        cls,
        operation: Operation,
        volume: str | None = None,
        *,
        mount_id: str | None = None,
        opts: dict[str, str] | None = None,
    ) -> PluginCall:
        """Build a call with the body dockerd would send for it (compact JSON and a newline)."""
        if operation is Operation.ACTIVATE:
            body = b""
        elif not operation.names_volume:
            body = b"{}\n"
        else:
            payload: dict[str, Any] = {"Name": volume}
            if operation is Operation.CREATE:
                payload["Opts"] = opts if opts is not None else {}
            if mount_id is not None:
                payload["ID"] = mount_id
            body = (json.dumps(payload, separators=(",", ":")) + "\n").encode()
        return cls.parse(operation, body)

    def as_retry_of(self, volume: str | None, mount_id: str | None) -> PluginCall:
        """This empty-body retry as rules see it: with the volume and mount ID of the call it
        retries (the body stays empty: the backend gets what dockerd sent)."""
        return PluginCall(self.operation, self.body, volume, mount_id, None, True, self.headers)

    def __str__(self) -> str:
        parts = [self.operation.value]
        if self.volume is not None:
            parts.append(repr(self.volume))
        if self.mount_id is not None:
            parts.append(f"id={self.mount_id[:12]}")
        if self.retry:
            parts.append("(empty-body retry)")
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class PluginReply:
    """One answer to the daemon: a status and the exact body bytes to send."""

    status: int
    body: bytes
    content_type: str | None = PLUGIN_CONTENT_TYPE
    _cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)  # decoded body, err

    def __post_init__(self) -> None:
        if not 100 <= self.status <= 599:
            raise ValueError(f"PluginReply needs an HTTP status, not {self.status!r}")

    @classmethod
    def json(cls, payload: dict[str, Any], status: int = 200) -> PluginReply:
        """A reply whose body is `payload` encoded as a Go plugin would (a newline at the end)."""
        return cls(status, (json.dumps(payload, separators=(",", ":")) + "\n").encode())

    @classmethod
    def error(cls, message: str, status: int = 500) -> PluginReply:
        """An error in dockerd's convention: `{"Err": message}`, 500 unless said otherwise."""
        return cls.json({"Err": message}, status)

    @classmethod
    def ok(cls) -> PluginReply:
        """The success answer of Create, Remove and Unmount, as go-plugins-helpers sends it."""
        return cls.json({"Err": ""})

    def decoded(self) -> Any:
        """The first JSON value of the body, or None when it has none. Computed once."""
        cache = self._cache
        if "decoded" not in cache:
            try:
                cache["decoded"] = decode_first_json_value(self.body)
            except (ValueError, UnicodeDecodeError):
                cache["decoded"] = None
        return cache["decoded"]

    @property
    def err(self) -> str | None:
        """The error dockerd would see in this reply, or None for a success. Computed once.

        A non-200 status is an error even with no `Err` (dockerd then shows the raw body).
        A large success answer (a List of thousands of volumes) that ends with an empty `Err`, or
        has no `Err` key at all, and looks like one JSON object is not decoded: the event log asks
        this of every answer.
        """
        cache = self._cache
        if "err" not in cache:
            cache["err"] = self._err()
        return cache["err"]  # type: ignore[no-any-return]

    def _err(self) -> str | None:
        if self.status == 200 and len(self.body) > LARGE_BODY:
            # A JSON object with no Err key at all, or whose one Err key is its last member and
            # empty (how Go plugins end every answer), is a success without decoding it: in
            # valid JSON those closing bytes can only be the top-level object's last member, and
            # with no other "err" anywhere no earlier value can carry one.
            stripped = self.body.strip()
            if stripped[:1] == b"{" and stripped[-1:] == b"}":
                errs = self.body.lower().count(b'"err"')
                if errs == 0 or (errs == 1 and stripped.endswith(b',"Err":""}')):
                    return None
        value = self.decoded()
        message = field_of(value, "Err") if isinstance(value, dict) else None
        if isinstance(message, str) and message:
            return message
        if self.status != 200:
            return self.body.decode("utf-8", "replace").strip() or f"HTTP {self.status}"
        if value is None:
            return "EOF" if not self.body.strip() else "undecodable body"
        return None

    @property
    def is_error(self) -> bool:
        return self.err is not None

    def with_fields(self, **fields: Any) -> PluginReply:
        """This reply with top-level JSON fields replaced (for rewriting faults)."""
        value = self.decoded()
        payload = dict(value) if isinstance(value, dict) else {}
        lowered = {name.lower() for name in fields}
        payload = {k: v for k, v in payload.items() if k.lower() not in lowered}
        payload.update(fields)
        return PluginReply.json(payload, self.status)


# The one size policy: an answer or record of LARGE_BODY bytes or more is "large". A large answer
# is judged without decoding it (`ok`), passed on to the daemon as it arrives when no rule
# rewrites it (backends.client), written after its head rather than copied into one buffer with
# it (server), and a large event-log record is turned into its line at once (eventlog).
LARGE_BODY: Final = 64 * 1024


def injected_message(operation: Operation, what: str = "failed") -> str:
    """The text of an injected error: it always starts with `chaosvol: injected:`."""
    return f"chaosvol: injected: {operation.value} {what}"
