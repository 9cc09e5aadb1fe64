"""The benchmark's load generator: dockerd's exact requests over keep-alive unix connections.

Closed loop: each connection sends the next request when the previous answer is complete.
Prints one JSON object: calls, seconds, latencies (ms). Runs as its own process so that it never
shares an interpreter with what it measures.

Usage: python bench/loadgen.py SOCKET --connections N (--seconds S | --calls C | --once) [--op get|list]
"""

from __future__ import annotations

import argparse
import json
import selectors
import socket
import sys
import time

REQUESTS = {
    "get": b"POST /VolumeDriver.Get HTTP/1.1\r\nHost: \r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: 16\r\n"
    b"Accept: application/vnd.docker.plugins.v1.2+json\r\n\r\n" b'{"Name":"benv"}\n',
    "list": b"POST /VolumeDriver.List HTTP/1.1\r\nHost: \r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: 3\r\n"
    b"Accept: application/vnd.docker.plugins.v1.2+json\r\n\r\n" b"{}\n",
}


class Connection:
    __slots__ = ("buffer", "need", "sent_at", "sock")

    def __init__(self, path: str) -> None:
        for attempt in range(200):
            try:
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.connect(path)
                break
            except (BlockingIOError, ConnectionRefusedError):
                self.sock.close()
                time.sleep(0.005 * (attempt + 1))
        self.buffer = bytearray()
        self.sent_at = 0.0
        self.need = -1

    def complete(self) -> bool:
        """Whether the buffer holds a whole answer (then it is consumed)."""
        if self.need < 0:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return False
            head = bytes(self.buffer[:end]).lower()
            length = int(head.split(b"content-length:")[1].split(b"\r\n")[0])
            self.need = end + 4 + length
        if len(self.buffer) < self.need:
            return False
        del self.buffer[: self.need]
        self.need = -1
        return True


def run(path: str, connections: int, request: bytes, seconds: float | None, calls: int | None, once: bool) -> dict[str, object]:
    pool = [Connection(path) for _ in range(connections)]
    selector = selectors.DefaultSelector()
    for conn in pool:
        selector.register(conn.sock, selectors.EVENT_READ, conn)
    latencies: list[float] = []
    started = time.perf_counter()
    deadline = started + seconds if seconds is not None else float("inf")
    budget = calls if calls is not None else (connections if once else None)
    in_flight = 0
    sent = 0
    for conn in pool:
        if budget is not None and sent >= budget:
            break
        conn.sent_at = time.perf_counter()
        conn.sock.sendall(request)
        sent += 1
        in_flight += 1
    while in_flight:
        for key, _ in selector.select(timeout=60):
            conn = key.data
            data = conn.sock.recv(1 << 20)
            if not data:
                raise SystemExit("the server closed a connection")
            conn.buffer += data
            while conn.complete():
                now = time.perf_counter()
                latencies.append((now - conn.sent_at) * 1000)
                in_flight -= 1
                if once or now >= deadline or (budget is not None and sent >= budget):
                    continue
                conn.sent_at = now
                conn.sock.sendall(request)
                sent += 1
                in_flight += 1
    elapsed = time.perf_counter() - started
    for conn in pool:
        conn.sock.close()
    return {"calls": len(latencies), "seconds": elapsed, "latencies_ms": latencies}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("socket")
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--calls", type=int)
    parser.add_argument("--once", action="store_true", help="one call per connection, all sent at once")
    parser.add_argument("--op", choices=sorted(REQUESTS), default="get")
    options = parser.parse_args()
    result = run(options.socket, options.connections, REQUESTS[options.op], options.seconds, options.calls, options.once)
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
