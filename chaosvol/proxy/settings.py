"""ServeSettings, and the constants behind the defaults, each with its source."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from chaosvol.proxy.unix import DEFAULT_BACKLOG

PLUGIN_SOCKET_DIR: Final = "/run/docker/plugins"
# 0660: dockerd runs as root; nobody else needs to talk to a volume plugin.
SOCKET_MODE: Final = 0o660
# A request that has started arriving must be complete within this (a client that sends half a
# request and stalls); idle keep-alive connections get no deadline: dockerd keeps them.
REQUEST_READ_TIMEOUT: Final = 30.0
# At SIGTERM, in-flight calls get this long to finish before they are cut. dockerd kills a
# managed plugin 10 s after SIGTERM (protocol.md §8.2); we are done well before.
SHUTDOWN_GRACE: Final = 5.0


@dataclass(frozen=True, slots=True)
class ServeSettings:
    name: str
    socket_path: str
    backend_label: str
    control_path: str | None = None  # the control socket; None: none
    socket_mode: int = SOCKET_MODE
    backlog: int = DEFAULT_BACKLOG
    request_read_timeout: float = REQUEST_READ_TIMEOUT
    shutdown_grace: float = SHUTDOWN_GRACE


def default_socket_path(name: str) -> str:
    return f"{PLUGIN_SOCKET_DIR}/{name}.sock"
