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

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

import h11

from chaosvol.core.errors import RequestError
from chaosvol.core.protocol import (
    OPERATION_BY_TARGET,
    PLUGIN_ACCEPT,
    Operation,
    PluginCall,
    PluginReply,
)
from chaosvol.wire import fastpath
from chaosvol.wire.common import MAX_HEADER_BYTES, MAX_REPLY_BODY, MAX_REQUEST_BODY, REASONS, WireState
from chaosvol.wire.fastpath import AnswerHead

# Headers a hop owns: never passed on, because we frame each side's message ourselves.
_HOP_BY_HOP: Final = frozenset(
    {b"connection", b"keep-alive", b"transfer-encoding", b"content-length", b"te", b"trailer", b"upgrade"}
)


Request = TypeVar("Request")


@dataclass(frozen=True, slots=True)
class Refused:
    """A complete request we answer with an error without closing the connection (404, 405)."""

    error: RequestError
    target: str


class _Wire:
    """What both sides share: bytes buffered for the fast path, or fed to h11 once it took over."""

    _h11: h11.Connection | None

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._eof = False

    def _feed(self, data: bytes | bytearray) -> None:
        if self._h11 is not None:
            self._h11.receive_data(data if isinstance(data, bytes) else bytes(data))
        elif data:
            self._buffer += data
        else:
            self._eof = True

    def _hand_over(self, conn: h11.Connection) -> None:
        """Give h11 what the fast path holds (it consumed no byte of the current message)."""
        self._h11 = conn
        if self._buffer:
            conn.receive_data(bytes(self._buffer))
            self._buffer.clear()
        if self._eof:
            conn.receive_data(b"")


class ServerSide(_Wire, Generic[Request]):
    """The server side of one HTTP/1.1 connection. ServerWire (the plugin socket) and the control
    socket's wire differ only in what a complete request becomes (`_complete`).

    Requests shaped exactly like dockerd's and Podman's (`POST /X HTTP/1.1`, token header names,
    one numeric Content-Length, no Transfer-Encoding, Connection, Expect or Upgrade) are parsed by
    a small fast path; the first request that is anything else hands the connection, from that
    request on, to h11, which accepts or refuses it as the standard says. Both paths give the
    same calls, the same answers and the same errors (tests/unit/test_wire.py checks them against
    each other on fuzzed input); the fast one costs a fraction of h11's time.
    """

    def __init__(self, *, fast: bool = True) -> None:
        super().__init__()
        self._h11 = None if fast else _server_h11()
        self._request: h11.Request | None = None
        self._body = bytearray()
        self._awaiting_reply = False  # fast path: a call was handed out and not answered yet
        self._broken = False  # fast path: an error answer was sent, or a write failed

    def receive_data(self, data: bytes | bytearray) -> None:
        """Feed bytes read from the socket; b"" means the peer closed its side."""
        self._feed(data)

    def next_call(self) -> Request | Refused | WireState:
        """The next complete request, or what is needed before there is one.

        Raises:
            RequestError: the bytes are not a request we can serve; answer it with
                `error_bytes()` and close the connection.
        """
        if self._h11 is None:
            fast = self._next_fast()
            if fast is not None:
                return fast
            self._fall_back()
        return self._next_h11()

    def _next_fast(self) -> Request | Refused | WireState | None:
        """The fast path's answer, or None when this request needs h11."""
        if self._awaiting_reply:
            return WireState.NEED_DATA  # a pipelined request waits until we have answered
        buffer = self._buffer
        if not buffer:
            return WireState.CLOSED if self._eof else WireState.NEED_DATA
        parsed = fastpath.parse_request(buffer, self._eof)
        if not isinstance(parsed, tuple):
            return parsed
        target, headers, body = parsed
        self._awaiting_reply = True
        return self._complete(target, b"POST", headers, body)

    def _fall_back(self) -> None:
        """Hand the connection to h11 from the current request on."""
        self._hand_over(_server_h11())

    def _next_h11(self) -> Request | Refused | WireState:
        assert self._h11 is not None
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
                    request = self._request
                    headers = [(name, value) for name, value in request.headers]
                    return self._complete(request.target, request.method, headers, bytes(self._body))
                elif isinstance(event, h11.ConnectionClosed):
                    return WireState.CLOSED
                elif event is h11.PAUSED:
                    # A pipelined request waits until we have answered this one.
                    return WireState.NEED_DATA
        except h11.RemoteProtocolError as exc:
            # A peer closing in the middle of a request is also reported this way.
            raise RequestError(f"bad request: {exc}", exc.error_status_hint) from exc

    def reply_bytes(self, reply: PluginReply) -> bytes:
        """The bytes of `reply`, and the connection made ready for the next request."""
        if self._h11 is None:
            self._awaiting_reply = False
            return fastpath.response_head(reply) + reply.body
        headers = [(b"Content-Length", str(len(reply.body)).encode("ascii"))]
        if reply.content_type is not None:
            headers.insert(0, (b"Content-Type", reply.content_type.encode("latin-1")))
        conn = self._h11
        data = conn.send(h11.Response(status_code=reply.status, headers=headers, reason=REASONS.get(reply.status, b"")))
        if reply.body:
            data += conn.send(h11.Data(data=reply.body))
        data += conn.send(h11.EndOfMessage())
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
        return data

    def reply_head(self, status: int, content_type: str | None, length: int) -> bytes | None:
        """The head alone of an answer whose body is sent as it is after it (uncopied, or as it
        comes from the backend), and the connection made ready for the next request; None when
        h11 has the connection (then `reply_bytes()` it is)."""
        if self._h11 is not None:
            return None
        self._awaiting_reply = False
        return fastpath.head_bytes(status, content_type, length)

    def error_bytes(self, error: RequestError) -> bytes:
        """The answer to a request that broke the connection; send it, then close."""
        if self._h11 is None:
            self._broken = True
            return fastpath.response_head(error.docker_reply(), close=True) + error.docker_reply().body
        try:
            return self.reply_bytes(error.docker_reply())
        except h11.LocalProtocolError:
            return b""  # h11 cannot answer in this state (the peer sent a response?): just close

    @property
    def keep_alive(self) -> bool:
        """False once either side asked to close, or a message could not be completed."""
        if self._h11 is None:
            return not self._broken
        return self._h11.our_state is h11.IDLE and self._h11.their_state in (h11.IDLE, h11.SEND_BODY)

    @property
    def mid_request(self) -> bool:
        """Whether part of a request has arrived (a read deadline then applies)."""
        if self._h11 is None:
            return bool(self._buffer) and not self._awaiting_reply
        return self._h11.their_state is not h11.IDLE or bool(self._h11.trailing_data[0])

    def send_failed(self) -> None:
        """Tell the wire a write failed, so nothing is sent on this connection again."""
        if self._h11 is None:
            self._broken = True
        else:
            self._h11.send_failed()


    def _complete(self, target: bytes, method: bytes, headers: Sequence[tuple[bytes, bytes]], body: bytes) -> Request | Refused:
        raise NotImplementedError


class ServerWire(ServerSide[PluginCall]):
    """The plugin socket's side of one connection from dockerd or Podman (see ServerSide)."""

    def _complete(self, target: bytes, method: bytes, headers: Sequence[tuple[bytes, bytes]], body: bytes) -> PluginCall | Refused:
        return _plugin_call(target, method, headers, body)


def _server_h11() -> h11.Connection:
    return h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)


def _plugin_call(target_bytes: bytes, method: bytes, headers: Sequence[tuple[bytes, bytes]], body: bytes) -> PluginCall | Refused:
    target = target_bytes.decode("ascii", "replace")
    operation = OPERATION_BY_TARGET.get(target)
    if operation is None:
        known = ", ".join(op.target for op in Operation)
        return Refused(RequestError(f"unknown endpoint {target}; this plugin serves {known}", 404), target)
    if method != b"POST":
        return Refused(RequestError(f"{target} takes POST, not {method.decode('ascii', 'replace')}", 405), target)
    forwarded = tuple((name, value) for name, value in headers if name not in _HOP_BY_HOP)
    return PluginCall.parse(operation, body, headers=forwarded)


def _content_length(headers: Iterable[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            return int(value)  # h11 already checked that it is a number
    return None


class ClientWire(_Wire):
    """The client side of one connection to a backend plugin.

    Like ServerWire, a fast path reads plain answers (`HTTP/1.1 NNN`, one Content-Length, no
    Transfer-Encoding or Connection); anything else is handed to h11, which is given the request
    we sent and the bytes received so far, and takes it from there.
    """

    def __init__(self, *, fast: bool = True) -> None:
        super().__init__()
        self._h11 = None if fast else _client_h11()
        self._response: h11.Response | None = None
        self._body = bytearray()
        self._answer_started = False
        self._request: tuple[PluginCall, bytes] | None = None  # the call the answer being read answers
        self._head: AnswerHead | None = None
        self._parts: list[bytes | bytearray] = []  # body pieces read after the head
        self._have = 0  # their length

    def request_bytes(self, call: PluginCall, host: bytes) -> bytes:
        """The bytes of `call` as the backend should get them: the daemon's body and headers, our
        framing. `host` replaces Host only when the caller sent none; Podman's requests keep
        having no Accept."""
        self._answer_started = False
        self._head = None
        self._parts.clear()
        self._have = 0
        target = call.operation.target.encode("ascii")
        if self._h11 is None:
            self._request = (call, host)  # for h11, should the answer need it
            self._buffer.clear()
            key = (call.headers, host)
            lines = _HEADER_LINES.get(key)
            if lines is None:
                lines = b"".join(n + b": " + v + b"\r\n" for n, v in _request_headers(call, host))
                if len(_HEADER_LINES) >= fastpath.HEADS_KEPT:
                    _HEADER_LINES.clear()
                _HEADER_LINES[key] = lines
            return b"POST %s HTTP/1.1\r\n%sContent-Length: %d\r\n\r\n" % (target, lines, len(call.body)) + call.body
        headers = _request_headers(call, host)
        headers.append((b"Content-Length", str(len(call.body)).encode("ascii")))
        conn = self._h11
        data = conn.send(h11.Request(method=b"POST", target=target, headers=headers))
        if call.body:
            data += conn.send(h11.Data(data=call.body))
        data += conn.send(h11.EndOfMessage())
        return data

    def receive_data(self, data: bytes | bytearray) -> None:
        self._answer_started = self._answer_started or bool(data)
        if self._head is not None and data and self._h11 is None:
            # The body of an answer whose head is parsed: kept as it came, joined once at the end.
            self._parts.append(data)
            self._have += len(data)
        else:
            self._feed(data)

    def next_reply(self) -> PluginReply | WireState:
        """The backend's complete answer, or NEED_DATA.

        Raises:
            h11.RemoteProtocolError: the backend's bytes are not an HTTP answer, it closed before
                a whole answer came, or the body is over MAX_REPLY_BODY.
        """
        if self._h11 is None:
            fast = self._next_fast()
            if fast is not None:
                return fast
            self._fall_back()
        return self._next_h11()

    def _next_fast(self) -> PluginReply | WireState | None:
        buffer = self._buffer
        head = self._head
        if head is None:
            parsed = fastpath.parse_answer_head(buffer, self._eof)
            if not isinstance(parsed, AnswerHead):
                return parsed
            head = self._head = parsed
        have = len(buffer) + self._have
        if have < head.total:
            return None if self._eof else WireState.NEED_DATA
        if have > head.total:
            return None  # bytes after the answer: h11 decides what they mean
        body = self.body_so_far()
        self._parts.clear()
        self._have = 0
        buffer.clear()
        self._request = None
        self._head = None
        return PluginReply(head.status, body, head.content_type)

    @property
    def head(self) -> AnswerHead | None:
        """The head of the answer being read, once the fast path has it whole."""
        return self._head

    def body_so_far(self) -> bytes:
        """The body bytes of the answer being read that have arrived (with `head`)."""
        head = self._head
        if head is None:
            return b""
        return b"".join([memoryview(self._buffer)[head.end + 4 :], *self._parts])

    @property
    def expecting(self) -> int:
        """How many more bytes complete the answer, once its head is in (else 0): a long body
        is then read in large pieces."""
        head = self._head
        return head.total - len(self._buffer) - self._have if head is not None else 0

    def _fall_back(self) -> None:
        """Hand the answer to h11, after telling it which request it answers."""
        if self._parts:
            self._buffer += b"".join(self._parts)
            self._parts.clear()
            self._have = 0
        self._head = None
        conn = _client_h11()
        if self._request is not None:
            call, host = self._request
            target, headers, body = call.operation.target.encode("ascii"), _request_headers(call, host), call.body
            headers.append((b"Content-Length", str(len(body)).encode("ascii")))
            conn.send(h11.Request(method=b"POST", target=target, headers=headers))
            if body:
                conn.send(h11.Data(data=body))
            conn.send(h11.EndOfMessage())
        self._hand_over(conn)

    def _next_h11(self) -> PluginReply | WireState:
        assert self._h11 is not None
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
        if self._h11 is None:
            return not self._eof
        return self._h11.our_state is h11.IDLE and self._h11.their_state is h11.IDLE


# The header lines sent for a call's headers (all but Content-Length), by those headers and Host:
# the daemon sends the same few sets again and again.
_HEADER_LINES: dict[tuple[tuple[tuple[bytes, bytes], ...], bytes], bytes] = {}


def _request_headers(call: PluginCall, host: bytes) -> list[tuple[bytes, bytes]]:
    """The headers the backend gets, Content-Length apart: the daemon's, with Host added when
    it sent none; a call of our own (activation, audit) dressed as dockerd's."""
    headers = list(call.headers)
    if not any(name.lower() == b"host" for name, _ in headers):
        headers.insert(0, (b"Host", host))
    if not call.headers:
        headers.append((b"Accept", PLUGIN_ACCEPT.encode("ascii")))
    return headers


def _client_h11() -> h11.Connection:
    return h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEADER_BYTES)
