"""dockerd's view, through the Docker SDK, for `chaosvol audit`.

Only calls that change nothing: `GET /volumes` (which makes dockerd ask every driver's List) and
`GET /containers/json` (running containers and their mounts). Never `inspect` a volume: that
makes dockerd send Get, and an answered Get failure would purge what we are auditing.
"""

from __future__ import annotations

import os
import socket
import struct
import urllib.parse
from typing import Any

from chaosvol.core.errors import UsageError
from chaosvol.tools.audit import DaemonView, DaemonVolume
from chaosvol.tools.boltdb import BoltError, VolumeRecord, volume_records


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
            info: dict[str, Any] = client.api.info()
            root_dir = str(info.get("DockerRootDir") or "")
            version = str(info.get("ServerVersion") or "")
            socket_path = _unix_socket(str(client.api.base_url), docker_host)
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
    records, why = dockerd_records(socket_path, root_dir)
    major = version.split(".")[0]
    plain_create_is_null = not (major.isdigit() and int(major) <= 20)  # 20.10 records `{}` (see DaemonView)
    return DaemonView(volumes, tuple(listed.get("Warnings") or ()), in_use, records=records, records_note=why,
                      plain_create_is_null=plain_create_is_null)


def dockerd_records(socket_path: str | None, root_dir: str) -> tuple[dict[str, VolumeRecord] | None, str | None]:
    """dockerd's own volume records (`<data-root>/volumes/metadata.db`), read from the file the
    daemon answering on `socket_path` uses: its pid comes from the socket (SO_PEERCRED) and the
    file is read through `/proc/PID/root`, so a daemon in a chroot or another mount namespace is
    read right, and a socket forwarded from elsewhere is never matched with the wrong file.
    Read-only, without bbolt's lock. (None, why) when that cannot be done."""
    if socket_path is None:
        return None, "dockerd is not reached through a local unix socket"
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(5)
            probe.connect(socket_path)
            pid, _uid, _gid = struct.unpack("3i", probe.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
        if pid <= 0:
            return None, "the socket does not say which process serves it (another pid namespace?)"
        path = f"/proc/{pid}/root{root_dir}/volumes/metadata.db"
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        return None, f"cannot read dockerd's volume records: {exc.strerror or exc}"
    try:
        return volume_records(data), None
    except BoltError as exc:
        return None, f"cannot read dockerd's volume records: {exc}"


def _unix_socket(base_url: str, docker_host: str | None) -> str | None:
    """The unix socket the Docker SDK talks to, if it is one."""
    host = docker_host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    if host.startswith("unix://"):
        return host[len("unix://"):]
    if base_url.startswith("http+unix://"):
        return urllib.parse.unquote(base_url[len("http+unix://"):])
    return None


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
