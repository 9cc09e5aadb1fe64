"""The fast path: messages shaped exactly like dockerd's, Podman's and a plain plugin's, parsed
and written without h11.

A request `POST /X HTTP/1.1` with token header names, one numeric Content-Length and no
Transfer-Encoding, Connection, Expect or Upgrade; an answer `HTTP/1.1 NNN` with one
Content-Length. Anything else makes a parser answer None, and the caller (chaosvol.wire.http)
hands the connection to h11, which accepts or refuses the message as the standard says. Both
give the same calls, answers and errors (tests/unit/test_wire.py checks them against each other
on fuzzed input); this one costs a fraction of h11's time. Pure functions over a buffer.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, TypeVar

from chaosvol.core.errors import RequestError
from chaosvol.core.protocol import PluginReply
from chaosvol.wire.common import MAX_HEADER_BYTES, MAX_REPLY_BODY, MAX_REQUEST_BODY, REASONS, WireState

_TOKEN: Final = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_FIELD_VALUE: Final = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")
_TARGET: Final = re.compile(rb"/[\x21-\x7e]*")
_NOT_ON_FAST_PATH: Final = frozenset({b"transfer-encoding", b"connection", b"expect", b"upgrade", b"te"})

Headers = tuple[tuple[bytes, bytes], ...]
_T = TypeVar("_T")

# Parsed heads, by their bytes. dockerd sends the same few heads again and again (they differ by
# target and Content-Length only), and a plugin its answers' heads: parsing one costs about 6 us,
# finding it here 0.1 us. Nothing a head says depends on anything but its bytes.
HEADS_KEPT: Final = 512
_REQUEST_HEADS: Final[dict[bytes, tuple[bytes, Headers, int]]] = {}
_ANSWER_HEADS: Final[dict[bytes, tuple[int, str | None, int]]] = {}


def parse_request(buffer: bytearray, eof: bool) -> tuple[bytes, Headers, bytes] | WireState | None:
    """The first request in `buffer` as (target, headers with lowercased names, body), removed
    from the buffer; NEED_DATA while it is incomplete; None when it is not plain (h11's turn: it
    then judges it, as early as it can).

    Raises:
        RequestError: its Content-Length is over MAX_REQUEST_BODY (413).
    """
    if not b"POST /".startswith(bytes(buffer[:6])):
        return None
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        if eof or len(buffer) > MAX_HEADER_BYTES:
            return None  # h11 words the error
        return WireState.NEED_DATA
    known = _known(_REQUEST_HEADS, bytes(buffer[:end]), _request_head)
    if known is None:
        return None
    target, headers, length = known
    if length > MAX_REQUEST_BODY:
        raise RequestError(f"request body of {length} bytes is over the limit of {MAX_REQUEST_BODY}", 413)
    total = end + 4 + length
    if len(buffer) < total:
        return None if eof else WireState.NEED_DATA
    body = bytes(buffer[end + 4 : total])
    del buffer[:total]
    return target, headers, body


def _request_head(head: bytes) -> tuple[bytes, Headers, int] | None:
    lines = head.split(b"\r\n")
    request_line = lines[0].split(b" ")
    if len(request_line) != 3 or request_line[0] != b"POST" or request_line[2] != b"HTTP/1.1":
        return None
    target = request_line[1]
    if not _TARGET.fullmatch(target):
        return None
    parsed = _plain_headers(lines)
    if parsed is None:
        return None
    headers, length = parsed
    return target, headers, length


@dataclass(frozen=True, slots=True)
class AnswerHead:
    """A plain answer's head, as the client fast path read it."""

    end: int  # where the blank line starts
    total: int  # head and body
    status: int
    content_type: str | None

    @property
    def length(self) -> int:
        """The body's length (its Content-Length)."""
        return self.total - self.end - 4


def parse_answer_head(buffer: bytearray, eof: bool) -> AnswerHead | WireState | None:
    """The head of a plain answer at the start of `buffer`, once whole (parsed once, however
    many reads the body takes: a List of 10,000 volumes, 870 KB, takes several); NEED_DATA
    before; None when the answer is not plain."""
    if not b"HTTP/1.1 ".startswith(bytes(buffer[:9])):
        return None
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        if eof or len(buffer) > MAX_HEADER_BYTES:
            return None
        return WireState.NEED_DATA
    known = _known(_ANSWER_HEADS, bytes(buffer[:end]), _answer_head)
    if known is None:
        return None
    status, content_type, length = known
    return AnswerHead(end, end + 4 + length, status, content_type)


def _answer_head(head: bytes) -> tuple[int, str | None, int] | None:
    lines = head.split(b"\r\n")
    status_line = lines[0].split(b" ", 2)
    if len(status_line) < 2 or status_line[0] != b"HTTP/1.1" or len(status_line[1]) != 3 or not status_line[1].isdigit():
        return None
    status = int(status_line[1])
    if status < 200 or (len(status_line) == 3 and not _FIELD_VALUE.fullmatch(status_line[2])):
        return None
    parsed = _plain_headers(lines)
    if parsed is None:
        return None
    headers, length = parsed
    if length > MAX_REPLY_BODY:
        return None
    content_type = next((value.decode("latin-1") for name, value in headers if name == b"content-type"), None)
    return status, content_type, length


def _known(heads: dict[bytes, _T], head: bytes, parse: Callable[[bytes], _T | None]) -> _T | None:
    """`head` parsed: found in `heads`, or parsed and kept there (None, not plain, is not kept)."""
    known = heads.get(head)
    if known is None:
        known = parse(head)
        if known is not None:
            if len(heads) >= HEADS_KEPT:
                heads.clear()  # a client that varies its headers: start again, the cost stays bounded
            heads[head] = known
    return known


def response_head(reply: PluginReply, *, close: bool = False) -> bytes:
    """What h11 writes for our answers, without h11: status line, our headers, blank line."""
    return head_bytes(reply.status, reply.content_type, len(reply.body), close=close)


def head_bytes(status: int, content_type: str | None, length: int, *, close: bool = False) -> bytes:
    head = b"HTTP/1.1 %d %s\r\n" % (status, REASONS.get(status, b""))
    if content_type is not None:
        head += b"Content-Type: " + content_type.encode("latin-1") + b"\r\n"
    head += b"Content-Length: %d\r\n" % length
    if close:
        head += b"Connection: close\r\n"
    return head + b"\r\n"


def _plain_headers(lines: list[bytes]) -> tuple[Headers, int] | None:
    """The header lines of a plain message (names lowercased) and its Content-Length, or None
    when the message is not plain enough for the fast path."""
    headers: list[tuple[bytes, bytes]] = []
    length = -1
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.fullmatch(name):
            return None
        value = value.strip(b" \t")
        if not _FIELD_VALUE.fullmatch(value):
            return None
        name = name.lower()
        if name == b"content-length":
            if length >= 0 or not value.isdigit() or len(value) > 18:
                return None
            length = int(value)
        elif name in _NOT_ON_FAST_PATH:
            return None
        headers.append((name, value))
    return (tuple(headers), length) if length >= 0 else None
