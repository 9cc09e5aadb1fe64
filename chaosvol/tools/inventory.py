"""What a backend holds, read without changing it, for `chaosvol audit`.

The built-in backend is read from its directory (its mount counts included). Any other backend
is asked List, then Get for each volume, directly (never through the faults); mounts are taken
from a Get's `Status.mounts` when the backend reports them (the built-in backend does), else
unknown.
"""

from __future__ import annotations

import json
from pathlib import Path

import trio

from chaosvol.backends import Backend, running
from chaosvol.backends.spec import open_backend
from chaosvol.core.errors import BackendError, UsageError
from chaosvol.core.protocol import Operation, PluginCall, field_of
from chaosvol.tools.audit import BackendView


def backend_view(spec: str) -> BackendView:
    """Raises:
        UsageError: the backend cannot be read (audit exits 2)."""
    if spec.startswith("builtin:"):
        return directory_view(Path(spec.removeprefix("builtin:")))
    return trio.run(_ask_plugin, spec)


def directory_view(root: Path) -> BackendView:
    volumes_dir = root / "volumes"
    if not volumes_dir.is_dir():
        raise UsageError(f"{root} is not a built-in backend directory (no volumes/ in it)")
    volumes: dict[str, dict[str, int] | None] = {}
    for entry in sorted(volumes_dir.iterdir()):
        try:
            meta = json.loads((entry / "meta.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # not a volume (a create cut short)
        volumes[entry.name] = {str(k): int(v) for k, v in (meta.get("mounts") or {}).items()}
    return BackendView(volumes)


async def _ask_plugin(spec: str) -> BackendView:
    try:
        async with running(open_backend(spec)) as backend:
            return await _ask(spec, backend)
    except BackendError as exc:
        raise UsageError(f"cannot read the backend: {exc}") from exc


async def _ask(spec: str, backend: Backend) -> BackendView:
    listed = await backend.call(PluginCall.build(Operation.LIST))
    value = listed.decoded()
    if listed.is_error or not isinstance(value, dict):
        raise UsageError(f"backend {spec} answered List with an error: {listed.err}")
    volumes: dict[str, dict[str, int] | None] = {}
    for entry in field_of(value, "Volumes") or []:
        name = field_of(entry, "Name") if isinstance(entry, dict) else None
        if not isinstance(name, str):
            continue
        got = (await backend.call(PluginCall.build(Operation.GET, name))).decoded()
        volume = field_of(got, "Volume") if isinstance(got, dict) else None
        status = field_of(volume, "Status") if isinstance(volume, dict) else None
        mounts = field_of(status, "mounts") if isinstance(status, dict) else None
        volumes[name] = {str(k): int(v) for k, v in mounts.items()} if isinstance(mounts, dict) else None
    return BackendView(volumes)
