"""A deliberately fast volume-plugin backend for the benchmark: canned answers, no HTTP library.

It reads requests off keep-alive unix connections (head, then Content-Length bytes) and answers
Activate, Get and List from precomputed bytes, so that what the benchmark measures is the path in
front of it, not the backend. Not a real plugin: every volume exists, nothing is stored.

Usage: python bench/fastbackend.py SOCKET [--volumes N]   (N: how many volumes List returns)
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import socket


def answer(body: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("socket")
    parser.add_argument("--volumes", type=int, default=10_000)
    options = parser.parse_args()
    volumes = [{"Name": f"vol-{i:05d}", "Mountpoint": f"/data/vol-{i:05d}", "CreatedAt": "2026-11-23T10:00:00Z"} for i in range(options.volumes)]
    canned = {
        b"/Plugin.Activate": answer(b'{"Implements":["VolumeDriver"]}\n'),
        b"/VolumeDriver.Get": answer(b'{"Volume":{"Name":"benv","Mountpoint":"/data/benv","CreatedAt":"2026-11-23T10:00:00Z"},"Err":""}\n'),
        b"/VolumeDriver.List": answer(json.dumps({"Volumes": volumes, "Err": ""}, separators=(",", ":")).encode() + b"\n"),
        b"/VolumeDriver.Capabilities": answer(b'{"Capabilities":{"Scope":"local"}}\n'),
    }
    default = answer(b'{"Err":""}\n')
    if os.path.exists(options.socket):
        os.unlink(options.socket)
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(options.socket)
    listener.listen(1024)
    listener.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, None)
    buffers: dict[socket.socket, bytearray] = {}
    while True:
        for key, _ in selector.select():
            if key.data is None:
                try:
                    conn, _ = listener.accept()
                except BlockingIOError:
                    continue
                conn.setblocking(True)
                selector.register(conn, selectors.EVENT_READ, True)
                buffers[conn] = bytearray()
                continue
            conn = key.fileobj  # type: ignore[assignment]
            try:
                data = conn.recv(262144)
            except OSError:
                data = b""
            if not data:
                selector.unregister(conn)
                conn.close()
                buffers.pop(conn, None)
                continue
            buffer = buffers[conn]
            buffer += data
            out = []
            while True:
                end = buffer.find(b"\r\n\r\n")
                if end < 0:
                    break
                head = bytes(buffer[:end])
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                if len(buffer) < end + 4 + length:
                    break
                target = head.split(b" ", 2)[1]
                out.append(canned.get(target, default))
                del buffer[: end + 4 + length]
            if out:
                conn.sendall(b"".join(out))


if __name__ == "__main__":
    main()
