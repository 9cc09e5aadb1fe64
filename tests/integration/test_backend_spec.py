"""--backend values, and finding legacy plugins by name as dockerd does."""

from __future__ import annotations

import os
from typing import Any

import pytest

from chaosvol.backends.directory import DirectoryBackend
from chaosvol.backends.spec import open_backend
from chaosvol.errors import UsageError


def test_backend_specs_are_checked(short_tmp: str) -> None:
    with pytest.raises(UsageError, match="unknown scheme 'ftp'"):
        open_backend("ftp://x")
    with pytest.raises(UsageError, match="needs a host and a port"):
        open_backend("tcp://localhost")
    with pytest.raises(UsageError, match="not a plugin name or address"):
        open_backend("no such/name")
    with pytest.raises(UsageError, match="own socket"):
        open_backend(f"unix://{short_tmp}/p.sock", own_socket=f"{short_tmp}/p.sock")
    assert isinstance(open_backend(f"builtin:{short_tmp}/v"), DirectoryBackend)


def test_plugin_names_are_found_the_way_dockerd_finds_them(short_tmp: str, tmp_path: Any) -> None:
    import socket as stdlib_socket

    from chaosvol.backends.spec import find_plugin

    sockets, specs = tmp_path / "run", tmp_path / "etc"
    (sockets / "nested").mkdir(parents=True)
    specs.mkdir()
    listener = stdlib_socket.socket(stdlib_socket.AF_UNIX)
    listener.bind(f"{short_tmp}/n.sock")
    os.symlink(f"{short_tmp}/n.sock", sockets / "nested" / "nested.sock")
    (specs / "tcpvol.spec").write_text("tcp://127.0.0.1:9876\n")
    (specs / "jsonvol.json").write_text('{"Name": "ignored", "Addr": "unix:///run/x.sock"}')
    try:
        assert find_plugin("nested", sockets, (specs,)).path == str(sockets / "nested" / "nested.sock")
        assert str(find_plugin("tcpvol", sockets, (specs,))) == "tcp://127.0.0.1:9876"
        assert str(find_plugin("jsonvol", sockets, (specs,))) == "unix:///run/x.sock"
        with pytest.raises(FileNotFoundError, match="no plugin named 'ghost'"):
            find_plugin("ghost", sockets, (specs,))
    finally:
        listener.close()
