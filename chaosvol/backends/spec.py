"""`--backend` values, and finding a legacy plugin by name the way dockerd does.

Forms (shared/contract.md):

* `builtin:DIR`: the built-in directory backend, in process;
* `unix:///path/to.sock`, `tcp://host:port`, `http://host:port`: an address;
* a plain name: a legacy plugin, looked up in dockerd's order (protocol.md §6):
  `/run/docker/plugins/N.sock`, `/run/docker/plugins/N/N.sock`, then `N.spec`, `N/N.spec`,
  `N.json`, `N/N.json` in `/etc/docker/plugins` and `/usr/lib/docker/plugins`.

A name is looked up again on every new connection, as dockerd does at activation, so a backend
started after chaosvol is found once it is there.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

import trio

from chaosvol.backends import Backend, Connector
from chaosvol.backends.client import ClientTimeouts, PluginClient
from chaosvol.backends.directory import DirectoryBackend
from chaosvol.core.errors import UsageError
from chaosvol.wire.streams import open_tcp_stream, open_unix_stream

DEFAULT_BACKEND: Final = "builtin:/var/lib/chaosvol/volumes"
SOCKET_DIR: Final = Path("/run/docker/plugins")
SPEC_DIRS: Final = (Path("/etc/docker/plugins"), Path("/usr/lib/docker/plugins"))
_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(:[A-Za-z0-9_.-]+)?$")
BACKEND_FORMS: Final = "builtin:DIR, a plugin name, unix:///path.sock, tcp://host:port or http://host:port"


@dataclass(frozen=True, slots=True)
class Address:
    """Where a plugin listens: a unix socket path, or a TCP host and port."""

    path: str | None = None
    host: str | None = None
    port: int | None = None

    def connector(self) -> Connector:
        if self.path is not None:
            return partial(open_unix_stream, self.path)
        assert self.host is not None and self.port is not None
        return partial(open_tcp_stream, self.host, self.port)

    @property
    def host_header(self) -> bytes:
        # What Go's client sends: host:port over TCP; for a unix socket, dockerd 20.10 sends an
        # empty Host (newer ones a dummy); we pass dockerd's own Host on when it sent one.
        return b"" if self.path is not None else f"{self.host}:{self.port}".encode()

    def __str__(self) -> str:
        return f"unix://{self.path}" if self.path is not None else f"tcp://{self.host}:{self.port}"


def parse_address(text: str, *, origin: str = "--backend") -> Address:
    """An address from a URL (`unix://`, `tcp://`, `http://`).

    Raises:
        UsageError: another scheme or a malformed URL; says which forms work.
    """
    parts = urlsplit(text.strip())
    if parts.scheme == "unix":
        path = parts.path or parts.netloc
        if not path.startswith("/"):
            raise UsageError(f"{origin}: {text!r}: a unix address needs an absolute path, as in unix:///run/x.sock")
        return Address(path=path)
    if parts.scheme in ("tcp", "http"):
        try:
            port = parts.port
        except ValueError as exc:
            raise UsageError(f"{origin}: {text!r}: {exc}") from exc
        if not parts.hostname or port is None:
            raise UsageError(f"{origin}: {text!r}: a TCP address needs a host and a port, as in tcp://127.0.0.1:9000")
        return Address(host=parts.hostname, port=port)
    if parts.scheme == "https":
        raise UsageError(f"{origin}: {text!r}: TLS backends are not supported yet; use unix://, tcp:// or http://")
    raise UsageError(f"{origin}: {text!r}: unknown scheme {parts.scheme!r}; use {BACKEND_FORMS}")


def find_plugin(name: str, socket_dir: Path = SOCKET_DIR, spec_dirs: tuple[Path, ...] = SPEC_DIRS) -> Address:
    """The address of legacy plugin `name`, found as dockerd finds it.

    Raises:
        FileNotFoundError: no socket or spec file by that name (yet); says where we looked.
        UsageError: a spec or json file that cannot be used.
    """
    for candidate in (socket_dir / f"{name}.sock", socket_dir / name / f"{name}.sock"):
        try:
            if stat.S_ISSOCK(candidate.stat().st_mode):
                return Address(path=str(candidate))
        except OSError:
            continue
    for directory in spec_dirs:
        for candidate in (
            directory / f"{name}.spec",
            directory / name / f"{name}.spec",
            directory / f"{name}.json",
            directory / name / f"{name}.json",
        ):
            if candidate.exists():
                return _read_spec_file(candidate)
    looked = [str(socket_dir / f"{name}.sock"), str(socket_dir / name / f"{name}.sock")]
    looked += [str(d / f"{name}.{{spec,json}}") for d in spec_dirs]
    raise FileNotFoundError(errno.ENOENT, f"no plugin named {name!r} (looked for {', '.join(looked)})")


def _read_spec_file(path: Path) -> Address:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror}") from exc
    if path.suffix == ".json":
        try:
            value = json.loads(text)
            address = value["Addr"] if isinstance(value, dict) else None
        except (ValueError, KeyError) as exc:
            raise UsageError(f"{path}: expected {{\"Addr\": \"...\"}}: {exc}") from exc
        if not isinstance(address, str):
            raise UsageError(f"{path}: Addr must be a URL string")
        if isinstance(value, dict) and value.get("TLSConfig"):
            raise UsageError(f"{path}: TLS backends are not supported yet")
        return parse_address(address, origin=str(path))
    return parse_address(text, origin=str(path))


DEFAULT_TIMEOUTS = ClientTimeouts()  # frozen: one shared default is safe


def open_backend(spec: str, *, own_socket: str | None = None, timeouts: ClientTimeouts = DEFAULT_TIMEOUTS) -> Backend:
    """The Backend a `--backend` value names.

    Args:
        spec: the value.
        own_socket: the proxy's own socket, refused as a backend (it would call itself forever).

    Raises:
        UsageError: a value of no known form, or one pointing at the proxy itself.
    """
    if spec.startswith("builtin:"):
        root = spec.removeprefix("builtin:")
        if not root:
            raise UsageError(f"--backend {spec!r}: builtin needs a directory, as in builtin:/var/lib/chaosvol/volumes")
        try:
            return DirectoryBackend(root)
        except OSError as exc:
            raise UsageError(f"--backend {spec!r}: cannot use {root}: {exc.strerror or exc}") from exc
    if "://" in spec:
        address = parse_address(spec)
        _refuse_self(address, own_socket, spec)
        return PluginClient(spec, address.connector(), host=address.host_header, timeouts=timeouts)
    if not _NAME.match(spec):
        raise UsageError(f"--backend {spec!r}: not a plugin name or address; use {BACKEND_FORMS}")
    try:
        _refuse_self(find_plugin(spec), own_socket, spec)
    except FileNotFoundError:
        pass  # not there yet: looked up again at each connection

    async def connect() -> trio.abc.Stream:
        address = find_plugin(spec)
        try:
            _refuse_self(address, own_socket, spec)
        except UsageError as exc:  # the socket found is ours now: an error, not worth a retry
            raise OSError(errno.ELOOP, str(exc)) from exc
        return await address.connector()()

    return PluginClient(spec, connect, timeouts=timeouts)


def _refuse_self(address: Address, own_socket: str | None, spec: str) -> None:
    if own_socket is not None and address.path is not None and os.path.realpath(address.path) == os.path.realpath(own_socket):
        raise UsageError(f"--backend {spec!r} is this proxy's own socket ({own_socket}); name the real plugin")
