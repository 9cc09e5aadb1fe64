"""Pass-through cost of one call, measured from a separate client process.

Three paths, each a separate server process started from the CLI:

  direct    the built-in backend served alone (`chaosvol backend`)
  proxy     `chaosvol serve --backend unix://<direct>` in front of it (no profile)
  inproc    `chaosvol serve --backend builtin:DIR` (the default: backend in process)

The client sends dockerd's exact Get request on one keep-alive connection, one call at a time,
and reports the median and p99 latency per path and the proxy's added latency (proxy - direct).

Usage: .venv/bin/python bench/latency.py [--calls N]
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

REQUEST = (
    b"POST /VolumeDriver.Get HTTP/1.1\r\nHost: \r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: 16\r\n"
    b"Accept: application/vnd.docker.plugins.v1.2+json\r\n\r\n" + b'{"Name":"benv"}\n'
)


def start(args: list[str], sock: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([sys.executable, "-m", "chaosvol", *args, "--log-level", "warning"], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not os.path.exists(sock):
        if time.monotonic() > deadline:
            raise SystemExit(f"{args} did not start")
        time.sleep(0.02)
    return process


def read_reply(conn: socket.socket, buffer: bytearray) -> None:
    while True:
        head_end = buffer.find(b"\r\n\r\n")
        if head_end >= 0:
            head = bytes(buffer[:head_end]).lower()
            length = int(head.split(b"content-length:")[1].split(b"\r\n")[0])
            total = head_end + 4 + length
            if len(buffer) >= total:
                del buffer[:total]
                return
        data = conn.recv(65536)
        if not data:
            raise SystemExit("server closed the connection")
        buffer += data


def measure(sock: str, calls: int) -> list[float]:
    conn = socket.socket(socket.AF_UNIX)
    conn.connect(sock)
    buffer = bytearray()
    body = b'{"Name":"benv","Opts":{}}\n'
    conn.sendall(b"POST /VolumeDriver.Create HTTP/1.1\r\nHost: \r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    read_reply(conn, buffer)
    for _ in range(500):  # warm up
        conn.sendall(REQUEST)
        read_reply(conn, buffer)
    timings = []
    for _ in range(calls):
        started = time.perf_counter()
        conn.sendall(REQUEST)
        read_reply(conn, buffer)
        timings.append(time.perf_counter() - started)
    conn.close()
    return timings


def summary(timings: list[float]) -> tuple[float, float]:
    ordered = sorted(timings)
    return statistics.median(ordered) * 1000, ordered[int(len(ordered) * 0.99) - 1] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=5000)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cvb", dir="/tmp") as directory:
        direct_sock, proxy_sock, inproc_sock = f"{directory}/d.sock", f"{directory}/p.sock", f"{directory}/i.sock"
        processes = [start(["backend", "--socket", direct_sock, "--root", f"{directory}/d"], direct_sock)]
        processes.append(start(["serve", "--socket", proxy_sock, "--backend", f"unix://{direct_sock}"], proxy_sock))
        processes.append(start(["serve", "--socket", inproc_sock, "--backend", f"builtin:{directory}/i"], inproc_sock))
        try:
            results = {name: summary(measure(path, options.calls)) for name, path in
                       (("direct", direct_sock), ("proxy", proxy_sock), ("inproc", inproc_sock))}
        finally:
            for process in processes:
                process.send_signal(signal.SIGTERM)
                process.wait(10)
    print(f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} cores, {options.calls} sequential Get calls per path")
    print(f"{'path':<8} {'p50 ms':>8} {'p99 ms':>8}")
    for name, (p50, p99) in results.items():
        print(f"{name:<8} {p50:8.3f} {p99:8.3f}")
    direct, proxy = results["direct"], results["proxy"]
    print(f"added by the proxy (proxy - direct): p50 {proxy[0] - direct[0]:.3f} ms, p99 {proxy[1] - direct[1]:.3f} ms")


if __name__ == "__main__":
    main()
