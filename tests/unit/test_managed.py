"""The managed plugin's settings (docker plugin set) as chaosvol serve arguments."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from chaosvol.cli.managed import backend_spec, serve_arguments
from chaosvol.core.errors import UsageError


def test_the_defaults_serve_the_builtin_backend_under_the_propagated_mount_with_an_event_log() -> None:
    assert serve_arguments({"EVENTS": "/mnt/volumes/events/events.jsonl"}) == [
        "--socket", "/run/docker/plugins/chaosvol.sock", "--control", "/run/docker/plugins/chaosvol.ctl.sock",
        "--backend", "builtin:/mnt/volumes/builtin", "--profile", "passthrough",
        "--events", "/mnt/volumes/events/events.jsonl", "--log-level", "info",
    ]


def test_every_setting_reaches_serve() -> None:
    arguments = serve_arguments(
        {"PROFILE": "drop-removes", "BACKEND": "tcp://127.0.0.1:9000", "BACKEND_ROOT": "/srv/data", "SEED": "7", "EVENTS": "", "LOG_LEVEL": "DEBUG"}
    )
    assert arguments[4:] == [
        "--backend", "tcp://127.0.0.1:9000", "--rewrite-mountpoints", "/srv/data=/mnt/volumes/backend",
        "--profile", "drop-removes", "--seed", "7", "--log-level", "debug",
    ]


def test_a_legacy_backend_name_is_found_in_the_hosts_plugin_directory(short_tmp: str) -> None:
    plugins = Path(short_tmp)
    (plugins / "nested").mkdir()
    with socket.socket(socket.AF_UNIX) as listening:
        listening.bind(str(plugins / "nested" / "nested.sock"))
        assert backend_spec("nested", plugins) == f"unix://{plugins}/nested/nested.sock"
    assert backend_spec("later", plugins) == f"unix://{plugins}/later.sock"  # not there yet: retried


def test_a_managed_backend_is_found_by_its_id(short_tmp: str) -> None:
    plugins = Path(short_tmp)
    (plugins / "abc123").mkdir()
    for name in ("real.sock", "chaosvol.ctl.sock", "init-stdout"):
        (plugins / "abc123" / name).touch()
    assert backend_spec("managed:abc123", plugins) == f"unix://{plugins}/abc123/real.sock"
    with pytest.raises(UsageError, match=r"BACKEND=managed:nope: no managed plugin with that ID is running"):
        backend_spec("managed:nope", plugins)


def test_a_relative_backend_root_is_refused() -> None:
    with pytest.raises(UsageError, match="BACKEND_ROOT='srv': an absolute path"):
        serve_arguments({"BACKEND_ROOT": "srv"})
