"""open_unix_listener: a listening unix socket that replaces a stale file and refuses a live one.

The socket is bound inside a private temporary directory (mode 0700, so nobody else can reach it
whatever the umask), given its mode, made to listen, and only then renamed into place: a daemon
never connects to a socket with the wrong mode or one that is not listening yet, and there is no
moment at which it is world-writable (trio#279 is the missing trio API this stands in for). `UnixListener.close()` unlinks the path only while it is
still ours, so a successor that took the path over keeps its socket.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import socket
import stat
import tempfile
from collections.abc import Callable
from typing import Final, NoReturn

import trio

from chaosvol.core.errors import UsageError
from chaosvol.wire.streams import SocketStream

# 512: dockerd's start-up burst opened 35 connections at once and a backlog of 5 overflowed
# (dockerd-behaviour.md §4.13); the kernel caps this at net.core.somaxconn anyway.
DEFAULT_BACKLOG: Final = 512
# Sun paths are limited to 108 bytes including the NUL.
MAX_SOCKET_PATH: Final = 107


# accept(2) errors that concern one connection that is already gone, not the listener (as trio).
_log = logging.getLogger("chaosvol.proxy.unix")
_GONE_BEFORE_ACCEPT: Final = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.EPERM})


class UnixListener:
    def __init__(self, sock: socket.socket, path: str, identity: tuple[int, int]) -> None:
        sock.setblocking(False)
        self.socket = sock
        self.path = path
        self._identity = identity
        self._closed = False

    async def accept(self) -> SocketStream:
        """The next connection, as a chaosvol SocketStream.

        Raises:
            OSError: EMFILE, ENFILE, ENOBUFS, ENOMEM: out of resources for now (retry later).
            trio.ClosedResourceError: the listener was closed.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            try:
                sock, _ = self.socket.accept()
            except BlockingIOError:
                await trio.lowlevel.wait_readable(self.socket)
                continue
            except OSError as exc:
                if exc.errno == errno.EBADF:
                    raise trio.ClosedResourceError("the listener was closed") from exc
                if exc.errno in _GONE_BEFORE_ACCEPT:
                    continue
                raise
            await trio.lowlevel.cancel_shielded_checkpoint()  # a burst of connections shares the loop
            return SocketStream(sock)

    def unlink(self) -> None:
        """Remove the socket file if it is still the one we created."""
        try:
            info = os.stat(self.path)
        except OSError:
            return
        if (info.st_dev, info.st_ino) == self._identity:
            try:
                os.unlink(self.path)
            except OSError:
                pass

    async def aclose(self) -> None:
        self.unlink()
        if not self._closed:
            self._closed = True
            trio.lowlevel.notify_closing(self.socket)
            self.socket.close()
        await trio.lowlevel.checkpoint()


def check_socket_path(path: str) -> None:
    """Refuse a path we could never bind, and a live socket; remove a stale one.

    Raises:
        UsageError: the path is too long, is not a socket, or another process serves it.
    """
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise UsageError(f"socket path {path!r} is longer than {MAX_SOCKET_PATH} bytes, the limit for unix sockets")
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:  # a parent that is a file, a directory we may not search, a loop
        raise UsageError(f"cannot use {path} as a socket: {_why(exc, path)}") from exc
    if not stat.S_ISSOCK(info.st_mode):
        raise UsageError(f"{path} exists and is not a socket; remove it or choose another --name/--socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(2.0)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        os.unlink(path)  # stale: nobody listens any more
        return
    except FileNotFoundError:
        return
    except OSError as exc:
        if exc.errno == errno.EAGAIN:  # listening, with a full backlog: alive
            raise UsageError(f"another process is serving {path}; stop it first or choose another --name/--socket") from exc
        raise UsageError(f"cannot check {path}: {exc.strerror}") from exc
    finally:
        probe.close()
    raise UsageError(f"another process is serving {path}; stop it first or choose another --name/--socket")


async def open_unix_listener(path: str, *, mode: int = 0o660, backlog: int = DEFAULT_BACKLOG) -> UnixListener:
    """Listen on `path` (see the module docstring).

    Raises:
        UsageError: see check_socket_path, or the directory cannot be created or written.
    """
    check_socket_path(path)
    directory = os.path.dirname(path) or "."
    try:
        os.makedirs(directory, mode=0o755, exist_ok=True)
        private = tempfile.mkdtemp(prefix=".cv", dir=directory)  # mode 0700
    except OSError as exc:
        raise UsageError(f"cannot listen on {path}: {_why(exc, directory)}") from exc
    temporary = os.path.join(private, "s")
    if len(os.fsencode(temporary)) > MAX_SOCKET_PATH:
        os.rmdir(private)
        raise UsageError(f"socket path {path!r} leaves no room for a temporary name next to it; use a shorter path")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(temporary)
        os.chmod(temporary, mode)
        sock.listen(backlog)
        os.rename(temporary, path)
        info = os.stat(path)
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {path}: {_why(exc, directory)}") from exc
    finally:
        shutil.rmtree(private, ignore_errors=True)
    await trio.lowlevel.checkpoint()
    return UnixListener(sock, path, (info.st_dev, info.st_ino))


def _why(exc: OSError, path: str) -> str:
    """What went wrong with `path`, in words, naming the part of it that is not a directory."""
    if exc.errno == errno.ENOTDIR:
        part = path
        while part and part != os.path.dirname(part):
            if os.path.lexists(part) and not os.path.isdir(part):
                return f"{part} is not a directory"
            part = os.path.dirname(part)
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"{exc.strerror}: this user may not create it there (run as root, or choose another --name/--socket)"
    return exc.strerror or str(exc)


# Out of resources for now: the only accept errors worth waiting out (as trio's serve_listeners).
CAPACITY_ERRNOS: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})


async def accept_forever(listener: UnixListener, handle: Callable[[SocketStream], None], *, what: str) -> NoReturn:
    """Hand every connection `listener` accepts to `handle` (which starts its task). Running out
    of descriptors or memory is logged and waited out (100 ms, then again); any other error is
    raised: it will not go away by itself, and a loop that retried it would spin forever."""
    while True:
        try:
            stream = await listener.accept()
        except OSError as exc:
            if exc.errno not in CAPACITY_ERRNOS:
                raise
            _log.error("%s: cannot accept a connection: %s; retrying in 100ms", what, exc.strerror or exc)
            await trio.sleep(0.1)
            continue
        handle(stream)
