"""h11 glue, both roles: bytes from dockerd become PluginCalls, PluginReplies become bytes, and
the same for the backend side. Synchronous and free of trio, so it is tested with plain calls,
byte by byte.

What the server side accepts, because dockerd and Podman send it (protocol.md §1): POST with a
Content-Length (0 included), no Content-Type, an empty or odd Host, keep-alive, pipelined
requests, a peer that closes between requests. What it refuses, with the HTTP status a
RequestError carries: a target that is no plugin endpoint (404, connection kept), another method
(405, kept), a body over MAX_REQUEST_BODY (413, closed), anything h11 cannot parse (400 or 431,
closed).
"""

from __future__ import annotations

import enum
import http
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import h11

from chaosvol.errors import RequestError
from chaosvol.protocol import (
    OPERATION_BY_TARGET,
    PLUGIN_ACCEPT,
    Operation,
    PluginCall,
    PluginReply,
)

# dockerd's largest request is a Create with its options: a few hundred bytes. 1 MiB leaves room
# for any real client and stops a broken one from making us buffer without limit.
MAX_REQUEST_BODY: Final = 1024 * 1024
# h11's own default for one incomplete event (the request line and headers).
MAX_HEADER_BYTES: Final = 16 * 1024
# A List of 10,000 volumes is about 1.5 MB; a backend answering more than this is broken.
MAX_REPLY_BODY: Final = 64 * 1024 * 1024

_REASONS: Final = {int(status): status.phrase.encode("ascii") for status in http.HTTPStatus}

# Headers a hop owns: never passed on, because we frame each side's message ourselves.
_HOP_BY_HOP: Final = frozenset(
    {b"connection", b"keep-alive", b"transfer-encoding", b"content-length", b"te", b"trailer", b"upgrade"}
)


class WireState(enum.Enum):
    NEED_DATA = enum.auto()  # feed more bytes with receive_data()
    CLOSED = enum.auto()  # the peer closed cleanly between messages


@dataclass(frozen=True, slots=True)
class Refused:
    """A complete request we answer with an error without closing the connection (404, 405)."""

    error: RequestError
    target: str


class ServerWire:
    """The server side of one connection from dockerd."""

    def __init__(self) -> None:
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)
        self._request: h11.Request | None = None
        self._body = bytearray()

    def receive_data(self, data: bytes | bytearray) -> None:
        """Feed bytes read from the socket; b"" means the peer closed its side."""
        self._h11.receive_data(data if isinstance(data, bytes) else bytes(data))

    def next_call(self) -> PluginCall | Refused | WireState:
        """The next complete request, or what is needed before there is one.

        Raises:
            RequestError: the bytes are not a request we can serve; answer it with
                `error_bytes()` and close the connection.
        """
        try:
            while True:
                event = self._h11.next_event()
                if event is h11.NEED_DATA:
                    return WireState.NEED_DATA
                if isinstance(event, h11.Request):
                    self._request = event
                    self._body.clear()
                    length = _content_length(event.headers)
                    if length is not None and length > MAX_REQUEST_BODY:
                        raise RequestError(
                            f"request body of {length} bytes is over the limit of {MAX_REQUEST_BODY}",
                            413,
                        )
                elif isinstance(event, h11.Data):
                    self._body += event.data
                    if len(self._body) > MAX_REQUEST_BODY:
                        raise RequestError(f"request body is over the limit of {MAX_REQUEST_BODY} bytes", 413)
                elif isinstance(event, h11.EndOfMessage):
                    assert self._request is not None
                    return self._complete(self._request, bytes(self._body))
                elif isinstance(event, h11.ConnectionClosed):
                    return WireState.CLOSED
                elif event is h11.PAUSED:
                    # A pipelined request waits until we have answered this one.
                    return WireState.NEED_DATA
        except h11.RemoteProtocolError as exc:
            # A peer closing in the middle of a request is also reported this way.
            raise RequestError(f"bad request: {exc}", exc.error_status_hint) from exc

    @staticmethod
    def _complete(request: h11.Request, body: bytes) -> PluginCall | Refused:
        target = request.target.decode("ascii", "replace")
        operation = OPERATION_BY_TARGET.get(target)
        if operation is None:
            known = ", ".join(op.target for op in Operation)
            return Refused(RequestError(f"unknown endpoint {target}; this plugin serves {known}", 404), target)
        if request.method != b"POST":
            method = request.method.decode("ascii", "replace")
            return Refused(RequestError(f"{target} takes POST, not {method}", 405), target)
        headers = tuple((name, value) for name, value in request.headers if name not in _HOP_BY_HOP)
        return PluginCall.parse(operation, body, headers=headers)

    def reply_bytes(self, reply: PluginReply) -> bytes:
        """The bytes of `reply`, and the connection made ready for the next request."""
        headers = [(b"Content-Length", str(len(reply.body)).encode("ascii"))]
        if reply.content_type is not None:
            headers.insert(0, (b"Content-Type", reply.content_type.encode("ascii")))
        conn = self._h11
        data = conn.send(h11.Response(status_code=reply.status, headers=headers, reason=_REASONS.get(reply.status, b"")))
        if reply.body:
            data += conn.send(h11.Data(data=reply.body))
        data += conn.send(h11.EndOfMessage())
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
        return data

    def error_bytes(self, error: RequestError) -> bytes:
        """The answer to a request that broke the connection; send it, then close."""
        try:
            return self.reply_bytes(error.docker_reply())
        except h11.LocalProtocolError:
            return b""  # h11 cannot answer in this state (the peer sent a response?): just close

    @property
    def keep_alive(self) -> bool:
        """False once either side asked to close, or a message could not be completed."""
        return self._h11.our_state is h11.IDLE and self._h11.their_state in (h11.IDLE, h11.SEND_BODY)

    @property
    def mid_request(self) -> bool:
        """Whether part of a request has arrived (a read deadline then applies)."""
        return self._h11.their_state is not h11.IDLE or bool(self._h11.trailing_data[0])

    def send_failed(self) -> None:
        """Tell h11 a write failed, so nothing is sent on this connection again."""
        self._h11.send_failed()


def _content_length(headers: Iterable[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            return int(value)  # h11 already checked that it is a number
    return None


class ClientWire:
    """The client side of one connection to a backend plugin."""

    def __init__(self) -> None:
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEADER_BYTES)
        self._response: h11.Response | None = None
        self._body = bytearray()
        self._answer_started = False

    def request_bytes(self, call: PluginCall, host: bytes) -> bytes:
        """The bytes of `call` as the backend should get them: dockerd's body and headers, our
        framing. `host` replaces Host only when the caller sent none."""
        headers: list[tuple[bytes, bytes]] = []
        has_host = has_accept = False
        for name, value in call.headers:
            lowered = name.lower()
            has_host = has_host or lowered == b"host"
            has_accept = has_accept or lowered == b"accept"
            headers.append((name, value))
        if not has_host:
            headers.insert(0, (b"Host", host))
        if not has_accept:
            headers.append((b"Accept", PLUGIN_ACCEPT.encode("ascii")))
        headers.append((b"Content-Length", str(len(call.body)).encode("ascii")))
        conn = self._h11
        self._answer_started = False
        data = conn.send(h11.Request(method=b"POST", target=call.operation.target.encode("ascii"), headers=headers))
        if call.body:
            data += conn.send(h11.Data(data=call.body))
        data += conn.send(h11.EndOfMessage())
        return data

    def receive_data(self, data: bytes | bytearray) -> None:
        self._answer_started = self._answer_started or bool(data)
        self._h11.receive_data(data if isinstance(data, bytes) else bytes(data))

    def next_reply(self) -> PluginReply | WireState:
        """The backend's complete answer, or NEED_DATA.

        Raises:
            h11.RemoteProtocolError: the backend's bytes are not an HTTP answer, it closed before
                a whole answer came, or the body is over MAX_REPLY_BODY.
        """
        while True:
            event = self._h11.next_event()
            if event is h11.NEED_DATA:
                return WireState.NEED_DATA
            if isinstance(event, h11.Response):
                self._response = event
                self._body.clear()
            elif isinstance(event, h11.InformationalResponse):
                continue
            elif isinstance(event, h11.Data):
                self._body += event.data
                if len(self._body) > MAX_REPLY_BODY:
                    raise h11.RemoteProtocolError(f"answer is over the limit of {MAX_REPLY_BODY} bytes")
            elif isinstance(event, h11.EndOfMessage):
                assert self._response is not None
                content_type = None
                for name, value in self._response.headers:
                    if name == b"content-type":
                        content_type = value.decode("latin-1")
                reply = PluginReply(self._response.status_code, bytes(self._body), content_type)
                if self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE:
                    self._h11.start_next_cycle()
                return reply
            elif isinstance(event, h11.ConnectionClosed):
                raise h11.RemoteProtocolError("connection closed before an answer")
            else:  # PAUSED cannot happen on the client side before the answer is complete
                raise h11.RemoteProtocolError(f"unexpected {event!r}")

    @property
    def got_any_response(self) -> bool:
        """Whether any byte of an answer has arrived since the request was sent."""
        return self._answer_started

    @property
    def reusable(self) -> bool:
        """Whether the connection can carry another request."""
        return self._h11.our_state is h11.IDLE and self._h11.their_state is h11.IDLE
