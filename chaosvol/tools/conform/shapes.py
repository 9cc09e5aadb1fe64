"""How each daemon writes a plugin request, as measured (protocol.md §1, dockerd-26.md,
podman-behaviour.md §2): headers in order, Host, the body's trailing newline, the bodies of
Activate and List, what a Create without options says, the mount IDs."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any, Final, Literal

from chaosvol.core.protocol import PLUGIN_ACCEPT, Operation

# Podman mounts every container's volume with this one ID (sha256 of "placeholder\n") and keeps
# its own count: Mount on 0 -> 1, Unmount on 1 -> 0.
PODMAN_MOUNT_ID: Final = "2f73349cfc4630255319c6c8dfc1b46a8996ace9d14d8e07563b165915918ec2"
PODMAN_CONTENT_TYPE: Final = "application/vnd.docker.plugins.v1.1+json"
GO_USER_AGENT: Final = "Go-http-client/1.1"


@dataclass(frozen=True, slots=True)
class Shape:
    """A daemon's way of writing requests."""

    name: str
    title: str
    host: str | None  # the Host header for a unix socket (None: TCP's host:port, as Go writes it)
    last_header: tuple[str, str]  # after Content-Length: Accept (dockerd) or Content-Type (Podman)
    newline: bool  # json.Encoder's trailing "\n" (dockerd), or json.Marshal's none (Podman)
    bodiless: frozenset[Operation]  # sent with no body at all
    opts_when_none: Literal["empty", "null", "omit"]  # Create without options
    timeout: Literal["dockerd", "podman"]
    one_mount_id: bool  # Podman: one constant ID, its own count

    def body(self, value: Any) -> bytes:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        return (text + "\n" if self.newline else text).encode("utf-8")

    def create_body(self, name: str, opts: dict[str, str] | None) -> dict[str, Any]:
        if opts:
            return {"Name": name, "Opts": opts}
        if self.opts_when_none == "omit":
            return {"Name": name}
        return {"Name": name, "Opts": None if self.opts_when_none == "null" else {}}

    def mount_id(self) -> str:
        return PODMAN_MOUNT_ID if self.one_mount_id else secrets.token_hex(32)

    def headers(self, host: str, length: int) -> list[tuple[str, str]]:
        return [("Host", host), ("User-Agent", GO_USER_AGENT), ("Content-Length", str(length)), self.last_header]


DOCKERD_20: Final = Shape(
    "dockerd-20", "dockerd 20.10", "", ("Accept", PLUGIN_ACCEPT), True, frozenset({Operation.ACTIVATE}), "empty", "dockerd", False
)
DOCKERD_26: Final = Shape(
    "dockerd-26", "dockerd 26.1", "plugin.moby.localhost", ("Accept", PLUGIN_ACCEPT), True, frozenset({Operation.ACTIVATE}),
    "null", "dockerd", False,
)
PODMAN: Final = Shape(
    "podman", "Podman 4", "plugin", ("Content-Type", PODMAN_CONTENT_TYPE), False, frozenset({Operation.ACTIVATE, Operation.LIST}),
    "omit", "podman", True,
)
SHAPES: Final = {shape.name: shape for shape in (DOCKERD_20, DOCKERD_26, PODMAN)}
