"""The HTTP glue, fed dockerd's exact requests whole, byte by byte and with the next one attached."""

from __future__ import annotations

from collections.abc import Callable

import h11
import pytest

from chaosvol.core.errors import RequestError
from chaosvol.core.protocol import Operation, PluginCall, PluginReply
from chaosvol.wire.common import MAX_REQUEST_BODY, WireState
from chaosvol.wire.http import ClientWire, Refused, ServerWire
from tests.support.builders import DOCKERD_REQUESTS, PODMAN_REQUESTS, DockerdRequest, get, remove


def feed(wire: ServerWire, chunks: list[bytes]) -> list[PluginCall | Refused]:
    """Feed chunks; answer each complete call so the next one can be read."""
    events: list[PluginCall | Refused] = []
    for chunk in chunks:
        wire.receive_data(chunk)
        while True:
            event = wire.next_call()
            if isinstance(event, WireState):
                break
            events.append(event)
            wire.reply_bytes(PluginReply.ok())
    return events


def whole(raw: bytes) -> list[bytes]:
    return [raw]


def byte_by_byte(raw: bytes) -> list[bytes]:
    return [raw[i : i + 1] for i in range(len(raw))]


def with_next_request_attached(raw: bytes) -> list[bytes]:
    return [raw + DOCKERD_REQUESTS[3].raw]


@pytest.mark.parametrize("split", [whole, byte_by_byte, with_next_request_attached])
@pytest.mark.parametrize("sample", DOCKERD_REQUESTS + PODMAN_REQUESTS, ids=str)
def test_dockerd_requests_parse_however_they_arrive(sample: DockerdRequest, split: Callable[[bytes], list[bytes]]) -> None:
    events = feed(ServerWire(), split(sample.raw))
    assert events[0] == sample.call
    assert events[0].body == sample.call.body  # the exact bytes, for forwarding
    if split is with_next_request_attached:
        assert events[1:] == [get("rawv")]


def test_podman_s_empty_list_is_a_list_not_a_retry_and_its_headers_pass_on() -> None:
    (call,) = feed(ServerWire(), [next(s for s in PODMAN_REQUESTS if s.label == "podman-list").raw])
    assert isinstance(call, PluginCall) and not call.retry
    assert dict(call.headers) == {
        b"host": b"plugin",
        b"user-agent": b"Go-http-client/1.1",
        b"content-type": b"application/vnd.docker.plugins.v1.1+json",
    }


def test_dockerds_headers_are_kept_for_the_backend_but_not_framing() -> None:
    call = feed(ServerWire(), [DOCKERD_REQUESTS[3].raw])[0]
    assert isinstance(call, PluginCall)
    assert dict(call.headers) == {
        b"host": b"",
        b"user-agent": b"Go-http-client/1.1",
        b"accept": b"application/vnd.docker.plugins.v1.2+json",
    }


def test_a_reply_is_sent_with_its_exact_body_and_the_connection_stays_open() -> None:
    wire = ServerWire()
    wire.receive_data(DOCKERD_REQUESTS[3].raw)
    assert isinstance(wire.next_call(), PluginCall)
    data = wire.reply_bytes(PluginReply(200, b'{"Volume":null}\n'))
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert data.endswith(b'\r\n\r\n{"Volume":null}\n')
    assert b"Content-Length: 16\r\n" in data
    assert wire.keep_alive


def test_an_unknown_endpoint_is_refused_with_404_and_the_connection_kept() -> None:
    wire = ServerWire()
    events = feed(wire, [b"POST /VolumeDriver.Snapshot HTTP/1.1\r\nHost: \r\nContent-Length: 2\r\n\r\n{}"])
    refused = events[0]
    assert isinstance(refused, Refused) and refused.error.status_hint == 404
    reply = refused.error.docker_reply()
    assert reply.status == 404 and "unknown endpoint /VolumeDriver.Snapshot" in (reply.err or "")
    assert wire.keep_alive


def test_another_method_is_refused_with_405() -> None:
    events = feed(ServerWire(), [b"GET /VolumeDriver.List HTTP/1.1\r\nHost: x\r\n\r\n"])
    assert isinstance(events[0], Refused) and events[0].error.status_hint == 405


def test_an_oversize_body_is_refused_before_it_is_read() -> None:
    wire = ServerWire()
    wire.receive_data(f"POST /VolumeDriver.Get HTTP/1.1\r\nHost: \r\nContent-Length: {MAX_REQUEST_BODY + 1}\r\n\r\n".encode())
    with pytest.raises(RequestError) as caught:
        wire.next_call()
    assert caught.value.status_hint == 413
    assert b"413" in wire.error_bytes(caught.value).split(b"\r\n")[0]


@pytest.mark.parametrize(
    "raw",
    [b"NONSENSE\r\n\r\n", b"POST /VolumeDriver.Get HTTP/1.1\r\nContent-Length: x\r\n\r\n", b"\x00\x01\x02\r\n\r\n"],
)
def test_malformed_requests_raise_a_request_error_that_has_an_answer(raw: bytes) -> None:
    wire = ServerWire()
    wire.receive_data(raw)
    with pytest.raises(RequestError) as caught:
        wire.next_call()
    assert wire.error_bytes(caught.value).startswith(b"HTTP/1.1 4")


def test_a_client_that_closes_between_requests_is_a_clean_close() -> None:
    wire = ServerWire()
    feed(wire, [DOCKERD_REQUESTS[3].raw])
    wire.receive_data(b"")
    assert wire.next_call() is WireState.CLOSED


def test_a_partial_request_is_noticed_so_a_read_deadline_can_apply() -> None:
    wire = ServerWire()
    assert not wire.mid_request
    wire.receive_data(b"POST /Volume")
    assert wire.next_call() is WireState.NEED_DATA
    assert wire.mid_request


def test_connection_close_from_the_client_ends_keep_alive() -> None:
    wire = ServerWire()
    feed(wire, [b"POST /VolumeDriver.List HTTP/1.1\r\nHost: \r\nConnection: close\r\nContent-Length: 3\r\n\r\n{}\n"])
    assert not wire.keep_alive


def test_client_wire_sends_the_callers_body_and_headers_and_reads_any_answer() -> None:
    call = feed(ServerWire(), [DOCKERD_REQUESTS[3].raw])[0]
    assert isinstance(call, PluginCall)
    wire = ClientWire()
    data = wire.request_bytes(call, b"ignored")
    assert data.startswith(b"POST /VolumeDriver.Get HTTP/1.1\r\n")
    assert b"host: \r\n" in data and b"user-agent: Go-http-client/1.1\r\n" in data
    assert data.endswith(b'Content-Length: 16\r\n\r\n{"Name":"rawv"}\n')
    wire.receive_data(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 11\r\n\r\n{\"Err\":\"x\"}")
    reply = wire.next_reply()
    assert reply == PluginReply(500, b'{"Err":"x"}', None)
    assert wire.reusable


def test_client_wire_adds_host_and_accept_for_calls_built_here() -> None:
    data = ClientWire().request_bytes(remove("v1"), b"127.0.0.1:9")
    assert b"Host: 127.0.0.1:9\r\n" in data and b"Accept: application/vnd.docker.plugins.v1.2+json" in data


def test_client_wire_reports_a_close_before_any_answer() -> None:
    wire = ClientWire()
    wire.request_bytes(PluginCall.build(Operation.LIST), b"")
    wire.receive_data(b"")
    with pytest.raises(h11.RemoteProtocolError):
        wire.next_reply()
    assert not wire.got_any_response


def test_client_wire_reads_a_long_answer_in_pieces_and_then_the_next_one() -> None:
    body = b'{"Volumes":[' + b",".join(b'{"Name":"v%d"}' % i for i in range(5000)) + b'],"Err":""}\n'
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    wire = ClientWire()
    for _ in range(2):  # the same connection, reused: nothing of the first answer is left over
        wire.request_bytes(PluginCall.build(Operation.LIST), b"")
        pieces = [answer[i : i + 7000] for i in range(0, len(answer), 7000)]
        for piece in pieces[:-1]:
            wire.receive_data(piece)
            assert wire.next_reply() is WireState.NEED_DATA
        assert 0 < wire.expecting <= 7000  # the length is known: the caller may read the rest at once
        wire.receive_data(pieces[-1])
        assert wire.next_reply() == PluginReply(200, body, "application/json")
        assert wire.expecting == 0 and wire.reusable
