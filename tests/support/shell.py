"""A proxy on memory streams for the shell tests: the server, its backend and its event log."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import trio
import trio.testing

from chaosvol.core.engine import ChaosEngine
from chaosvol.proxy.eventlog import EventLog
from chaosvol.proxy.server import PluginServer
from chaosvol.proxy.settings import ServeSettings
from chaosvol.proxy.state import ProxyState
from tests.support.builders import profile
from tests.support.events import call_lines
from tests.support.fakes import DaemonClient, RecordingBackend


@dataclass
class Proxy:
    server: PluginServer
    backend: RecordingBackend
    log: io.StringIO
    events: EventLog
    nursery: trio.Nursery
    connections: int = 0

    def connect(self) -> DaemonClient:
        client, server = trio.testing.memory_stream_pair()
        self.connections += 1
        self.nursery.start_soon(self.server.handle_connection, server, self.connections)
        return DaemonClient(client)

    async def records(self) -> list[dict[str, Any]]:
        await trio.testing.wait_all_tasks_blocked()
        return call_lines(self.log.getvalue())


async def start_proxy(nursery: trio.Nursery, *rules: dict[str, Any], backend: RecordingBackend | None = None) -> Proxy:
    backend = backend or RecordingBackend()
    log = io.StringIO()
    events = EventLog(log, close_stream=False)
    nursery.start_soon(events.run)
    settings = ServeSettings("test", "/nonexistent/test.sock", backend.name)
    server = PluginServer(ProxyState(settings, backend, ChaosEngine(profile(*rules)), events))
    return Proxy(server, backend, log, events, nursery)
