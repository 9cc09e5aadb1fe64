"""Podman as the daemon: registering a plugin with it, and its view of the volumes for the audit.

Podman finds volume plugins only in containers.conf's `[engine.volume_plugins]` table (a name
and a socket path; it never scans /run/docker/plugins), so chaosvol writes a drop-in file for
one name and removes it again (podman-behaviour.md §1).

Its view: `podman volume ls` sends the plugin one Get per volume, and fails whole when one Get
fails, which is the very thing an audit must survive. Podman's Docker-compatible API lists
volumes from its database without asking the plugin, so the audit starts
`podman system service` on a private socket for as long as it reads, and reads it with the same
code as dockerd's.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from chaosvol.core.errors import UsageError
from chaosvol.tools.audit import DaemonView

DROP_IN_DIR: Final = Path("/etc/containers/containers.conf.d")
SERVICE_START_TIMEOUT: Final = 20.0


def drop_in_path(name: str, directory: Path = DROP_IN_DIR) -> Path:
    return directory / f"50-chaosvol-{name}.conf"


def drop_in_text(name: str, socket: str) -> str:
    # TOML basic strings and quoted keys read JSON string escapes the same way.
    return (
        f"# Written by `chaosvol podman register {name}`; `chaosvol podman unregister {name}` removes it.\n"
        f"# Use it with: podman volume create --driver {name} NAME\n"
        "[engine.volume_plugins]\n"
        f"{json.dumps(name)} = {json.dumps(socket)}\n"
    )


def register(name: str, socket: str, directory: Path = DROP_IN_DIR) -> Path:
    """Write the drop-in (replacing one for the same name).

    Raises:
        UsageError: the directory cannot be written.
    """
    path = drop_in_path(name, directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        path.write_text(drop_in_text(name, socket), encoding="utf-8")
    except OSError as exc:
        hint = f" (root is needed for {DROP_IN_DIR})" if exc.errno in (errno.EACCES, errno.EPERM) else ""
        raise UsageError(f"{path}: cannot write: {exc.strerror or exc}{hint}") from exc
    return path


def unregister(name: str, directory: Path = DROP_IN_DIR) -> Path | None:
    """Remove the drop-in; the path removed, or None when there was none."""
    path = drop_in_path(name, directory)
    try:
        path.unlink()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UsageError(f"{path}: cannot remove: {exc.strerror or exc}") from exc
    return path


def podman_view(command: Sequence[str]) -> DaemonView:
    """Podman's volumes and running containers, read through its Docker-compatible API.

    Args:
        command: how to run podman, with any global options (`podman --root ... --runroot ...`).

    Raises:
        UsageError: podman cannot be run or its API does not come up.
    """
    from chaosvol.tools.daemon import daemon_view

    if shutil.which(command[0]) is None:
        raise UsageError(f"cannot run {command[0]!r}: not found (Debian: apt-get install podman)")
    directory = tempfile.mkdtemp(prefix="cvpm", dir="/tmp")
    socket = f"{directory}/api.sock"
    service = subprocess.Popen(
        [*command, "system", "service", "--time", "0", f"unix://{socket}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + SERVICE_START_TIMEOUT
        while not os.path.exists(socket):
            if service.poll() is not None or time.monotonic() > deadline:
                error = service.stderr.read() if service.poll() is not None and service.stderr else ""
                raise UsageError(f"{' '.join(command)} system service did not start: {error.strip()[-500:] or 'timed out'}")
            time.sleep(0.05)
        view = daemon_view(f"unix://{socket}")
    finally:
        service.terminate()
        try:
            service.wait(10)
        except subprocess.TimeoutExpired:
            service.kill()
            service.wait()
        if service.stderr is not None:
            service.stderr.close()
        shutil.rmtree(directory, ignore_errors=True)
    return dataclasses.replace(view, authoritative=True, name="Podman")
