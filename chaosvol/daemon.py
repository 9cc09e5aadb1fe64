"""dockerd's view, through the Docker SDK, for `chaosvol audit`.

Only calls that change nothing: `GET /volumes` (which makes dockerd ask every driver's List) and
`GET /containers/json` (running containers and their mounts). Never `inspect` a volume: that
makes dockerd send Get, and an answered Get failure would purge what we are auditing.
"""

from __future__ import annotations

from typing import Any

from chaosvol.audit import DaemonView, DaemonVolume
from chaosvol.errors import UsageError


def daemon_view(docker_host: str | None) -> DaemonView:
    """Raises:
        UsageError: dockerd cannot be reached (audit exits 2: it could not audit)."""
    import docker  # imported here: only audit needs it, and it is slow to import
    from docker.errors import DockerException

    try:
        client = docker.DockerClient(base_url=docker_host) if docker_host else docker.from_env()
        try:
            listed: dict[str, Any] = client.api.volumes()
            containers: list[dict[str, Any]] = client.api.containers()  # running ones only
        finally:
            client.close()
    except DockerException as exc:
        where = docker_host or "DOCKER_HOST or the default socket"
        raise UsageError(f"cannot reach dockerd at {where}: {_reason(exc)}") from exc
    volumes = tuple(
        DaemonVolume(v["Name"], v.get("Driver", ""), dict(v.get("Labels") or {}), dict(v.get("Options") or {}))
        for v in listed.get("Volumes") or []
    )
    in_use: dict[tuple[str, str], tuple[str, ...]] = {}
    for container in containers:
        for mount in container.get("Mounts") or []:
            if mount.get("Type") == "volume":
                key = (mount.get("Driver", ""), mount.get("Name", ""))
                in_use[key] = in_use.get(key, ()) + (container.get("Id", "")[:12],)
    return DaemonView(volumes, tuple(listed.get("Warnings") or ()), in_use)


def _reason(exc: BaseException) -> str:
    """The socket error under the SDK's wrapping ("Error while fetching server API version:
    ('Connection aborted.', FileNotFoundError(2, ...))"), when there is one: `No such file or
    directory`; else the SDK's own words."""
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            return current.strerror
        pending.extend(arg for arg in current.args if isinstance(arg, BaseException))
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return str(exc)
