"""`chaosvol managed`: the managed plugin's entrypoint, `chaosvol serve` configured from the
environment that `docker plugin set` controls (plugin/config.json lists what is settable).

Inside the plugin (managed-plugin.md):

* its socket is `/run/docker/plugins/chaosvol.sock` (config.json's `interface.socket`), and the
  control socket `chaosvol.ctl.sock` next to it: on the host both are in
  `/run/docker/plugins/<plugin id>/`;
* `/mnt/volumes` is the propagatedMount, the only directory whose contents containers can see:
  the built-in backend keeps its volumes in `/mnt/volumes/builtin`, the event log goes to
  `/mnt/volumes/events/`, and another plugin's data root is bound at `/mnt/volumes/backend`;
* the host's `/run/docker/plugins` is at `/host-plugins`, to reach a backend plugin's socket.

Settings:

* `PROFILE`: a shipped profile name or a path inside the plugin (default `passthrough`);
* `BACKEND`: empty for the built-in backend; a legacy plugin's name (its socket in the host's
  `/run/docker/plugins`); `managed:ID` for a managed plugin (its socket in
  `/run/docker/plugins/ID/`); or an address (`unix:///host-plugins/x.sock`, `tcp://host:port`);
* `BACKEND_ROOT`: the directory under which the backend's Mountpoints are (a legacy plugin's data
  directory on the host; a managed plugin's propagatedMount). Set the `backend` mount's source to
  where that directory is on the host, and Mountpoints are rewritten to `/mnt/volumes/backend/...`;
* `SEED`, `LOG_LEVEL`; `EVENTS`: the event log's path (empty: none).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Final

from chaosvol.core.errors import UsageError

PLUGIN_SOCKET: Final = "/run/docker/plugins/chaosvol.sock"
CONTROL_SOCKET: Final = "/run/docker/plugins/chaosvol.ctl.sock"
BUILTIN_ROOT: Final = "/mnt/volumes/builtin"
BACKEND_TARGET: Final = "/mnt/volumes/backend"
DEFAULT_EVENTS: Final = "/mnt/volumes/events/events.jsonl"
HOST_PLUGINS: Final = Path("/host-plugins")


def serve_arguments(env: Mapping[str, str], host_plugins: Path = HOST_PLUGINS) -> list[str]:
    """`chaosvol serve` arguments for the plugin's settings.

    Raises:
        UsageError: a setting that cannot work, naming it.
    """
    arguments = ["--socket", PLUGIN_SOCKET, "--control", CONTROL_SOCKET]
    arguments += ["--backend", backend_spec(env.get("BACKEND", "").strip(), host_plugins)]
    root = env.get("BACKEND_ROOT", "").strip()
    if root:
        if not root.startswith("/"):
            raise UsageError(f"BACKEND_ROOT={root!r}: an absolute path, where the backend keeps its volumes")
        arguments += ["--rewrite-mountpoints", f"{root}={BACKEND_TARGET}"]
    arguments += ["--profile", env.get("PROFILE", "").strip() or "passthrough"]
    seed = env.get("SEED", "").strip()
    if seed:
        arguments += ["--seed", seed]
    events = env.get("EVENTS", DEFAULT_EVENTS).strip()
    if events:
        arguments += ["--events", events]
    arguments += ["--log-level", env.get("LOG_LEVEL", "").strip().lower() or "info"]
    return arguments


def backend_spec(backend: str, host_plugins: Path = HOST_PLUGINS) -> str:
    """BACKEND as a `--backend` value that works inside the plugin."""
    if backend in ("", "builtin"):
        return f"builtin:{BUILTIN_ROOT}"
    if "://" in backend or backend.startswith("builtin:"):
        return backend
    if backend.startswith("managed:"):
        ident = backend.removeprefix("managed:")
        directory = host_plugins / ident
        try:
            sockets = sorted(p for p in directory.iterdir() if p.suffix == ".sock" and not p.name.endswith(".ctl.sock"))
        except OSError:
            raise UsageError(
                f"BACKEND={backend}: no managed plugin with that ID is running ({directory} is missing); "
                "use the full ID from `docker plugin inspect -f '{{.Id}}' NAME`, and enable that plugin first"
            ) from None
        if len(sockets) != 1:
            raise UsageError(f"BACKEND={backend}: expected one socket in {directory}, found {[p.name for p in sockets]}")
        return f"unix://{sockets[0]}"
    for candidate in (host_plugins / f"{backend}.sock", host_plugins / backend / f"{backend}.sock"):
        if candidate.exists():
            return f"unix://{candidate}"
    return f"unix://{host_plugins / f'{backend}.sock'}"  # not there yet: connections retry
