"""A whole proxy: the plugin server and, beside it, the control server, sharing one ProxyState.

The control socket stays up through a crash with restart (it is the tester's, not the plugin's)
and closes when the plugin server is done.
"""

from __future__ import annotations

import trio

from chaosvol.proxy.control import ControlServer
from chaosvol.proxy.server import PluginServer
from chaosvol.proxy.state import ProxyState


async def serve_proxy(state: ProxyState, *, task_status: trio.TaskStatus[PluginServer] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve `state`'s plugin socket, and its control socket when the settings name one, until
    the plugin server is shut down (`nursery.start` gives the PluginServer once both listen).

    Raises:
        UsageError: a socket cannot be created.
    """
    server = PluginServer(state)
    path = state.settings.control_path
    control = ControlServer(state, path) if path is not None else None
    async with trio.open_nursery() as nursery:

        async def plugin(task_status: trio.TaskStatus[PluginServer]) -> None:
            try:
                await server.serve(task_status=task_status)
            finally:
                if control is not None:
                    control.shut_down()

        await nursery.start(plugin)
        if control is not None:
            await nursery.start(control.serve)  # a failure here ends the plugin server too
        task_status.started(server)
