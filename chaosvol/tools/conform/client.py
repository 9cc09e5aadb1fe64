"""The daemon's side of the conversation, written byte for byte as a Shape says.

h11 frames the messages (it writes the headers in the order given, with the casing given), so
a plugin sees what the daemon would send; the answer is read whole. Each call is timed, and gives
up where the daemon would (Create and Mount after 120 s, the rest after 60 s; Podman after 5 s:
then it goes on waiting, up to dockerd's limit, so that the latency check can say how late).
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Final

import h11
import trio

from chaosvol.backends.spec import Address
from chaosvol.core.protocol import Operation, decode_first_json_value
from chaosvol.tools.conform.shapes import Shape

DOCKERD_LONG: Final = frozenset({Operation.CREATE, Operation.MOUNT})
MAX_ANSWER: Final = 16 * 1024 * 1024


def dockerd_timeout(operation: Operation) -> float:
    """dockerd's per-call timeout (protocol.md §4.1); Activate has none, 60 s stands for it here."""
    return 120.0 if operation in DOCKERD_LONG else 60.0


@dataclass(slots=True)
class Answer:
    """What came back: an HTTP answer, or `error` (no answer: refused, reset, timed out)."""

    operation: Operation
    sent: bytes
    status: int | None = None
    body: bytes = b""
    error: str | None = None
    seconds: float = 0.0

    @property
    def value(self) -> Any:
        """The body's first JSON value (as dockerd decodes it), or None."""
        try:
            return decode_first_json_value(self.body)
        except (ValueError, UnicodeDecodeError):
            return None

    @property
    def err(self) -> str | None:
        """The answer's Err when it says one (non-empty), else None."""
        value = self.value
        found = _field(value, "Err") if isinstance(value, dict) else None
        return found if isinstance(found, str) and found else None

    @property
    def ok(self) -> bool:
        """Success as dockerd reads it: 200, a JSON object, no Err."""
        return self.status == 200 and isinstance(self.value, dict) and self.err is None

    def field(self, name: str) -> Any:
        value = self.value
        return _field(value, name) if isinstance(value, dict) else None

    def describe(self) -> str:
        """The answer in a few words, for a check's message."""
        if self.error is not None:
            return self.error
        body = self.body[:160].decode("utf-8", "replace").strip()
        return f"{self.status} {body!r}" + ("..." if len(self.body) > 160 else "")


def _field(value: dict[str, Any], name: str) -> Any:
    """A field as dockerd reads it: exact case first, then any case."""
    if name in value:
        return value[name]
    lowered = name.lower()
    return next((v for k, v in value.items() if isinstance(k, str) and k.lower() == lowered), None)


@dataclass(slots=True)
class _Connection:
    stream: trio.abc.Stream
    h11: h11.Connection = field(default_factory=lambda: h11.Connection(h11.CLIENT))


class ConformClient:
    """Requests to one plugin, shaped as one daemon writes them; every call timed."""

    def __init__(self, address: Address, shape: Shape) -> None:
        self.address = address
        self.shape = shape
        self.host = shape.host if address.path is not None and shape.host is not None else f"{address.host}:{address.port}"
        self.seconds: dict[Operation, list[float]] = defaultdict(list)
        self._idle: list[_Connection] = []

    async def call(self, operation: Operation, value: Any = None, *, raw: bytes | None = None) -> Answer:
        """Send `operation` with the JSON `value` as its body (the shape's bodiless operations
        are sent without one), or `raw` bytes as they are."""
        if raw is not None:
            body = raw
        elif operation in self.shape.bodiless:
            body = b""
        else:
            body = self.shape.body(value if value is not None else {})
        return await self.send(operation, body)

    async def send(self, operation: Operation, body: bytes) -> Answer:
        request = h11.Request(method="POST", target=operation.target, headers=self.shape.headers(self.host, len(body)))
        answer = Answer(operation, body)
        started = time.monotonic()
        with trio.move_on_after(dockerd_timeout(operation)) as scope:
            await self._exchange(request, body, answer)
        answer.seconds = time.monotonic() - started
        if scope.cancelled_caught:
            answer.error = f"no answer in {dockerd_timeout(operation):g}s (dockerd gives up there)"
        if answer.error is None:
            self.seconds[operation].append(answer.seconds)
        return answer

    async def _exchange(self, request: h11.Request, body: bytes, answer: Answer) -> None:
        connection: _Connection | None = None
        try:
            connection = self._idle.pop() if self._idle else _Connection(await self.address.connector()())
            data = connection.h11.send(request) or b""
            if body:
                data += connection.h11.send(h11.Data(data=body)) or b""
            data += connection.h11.send(h11.EndOfMessage()) or b""
            await connection.stream.send_all(data)
            received = bytearray()
            while True:
                event = connection.h11.next_event()
                if event is h11.NEED_DATA:
                    connection.h11.receive_data(bytes(await connection.stream.receive_some(65536)))
                elif isinstance(event, h11.Response):
                    answer.status = event.status_code
                elif isinstance(event, h11.Data):
                    received += event.data
                    if len(received) > MAX_ANSWER:
                        raise h11.RemoteProtocolError(f"an answer of over {MAX_ANSWER} bytes")
                elif isinstance(event, h11.EndOfMessage):
                    answer.body = bytes(received)
                    break
                elif isinstance(event, h11.ConnectionClosed):
                    raise h11.RemoteProtocolError("connection closed before an answer")
        except OSError as exc:
            answer.error = f"cannot talk to the plugin: {exc.strerror or exc}"
        except (h11.ProtocolError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            answer.error = f"no valid answer: {exc or type(exc).__name__}"
        finally:
            if connection is not None:
                if answer.error is None and connection.h11.our_state is h11.DONE and connection.h11.their_state is h11.DONE:
                    connection.h11.start_next_cycle()
                    self._idle.append(connection)
                else:
                    with trio.CancelScope(shield=True):
                        await trio.aclose_forcefully(connection.stream)

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            await trio.aclose_forcefully(connection.stream)


def pretty(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
