"""The built-in backend is a correct plugin: refcounts by mount ID, refuses unsafe names, keeps state."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from chaosvol.backends.directory import DirectoryBackend
from chaosvol.core.protocol import Operation, PluginCall
from tests.support.builders import create, get, list_, mount, path, remove, unmount

A, B = "a" * 64, "b" * 64


async def test_create_mount_unmount_remove(tmp_path: Path) -> None:
    backend = DirectoryBackend(tmp_path)
    assert (await backend.call(create("v1", {"size": "1G"}))).err is None
    mounted = await backend.call(mount("v1", A))
    mountpoint = mounted.decoded()["Mountpoint"]
    assert Path(mountpoint).is_dir() and mountpoint.startswith(str(tmp_path))
    assert (await backend.call(path("v1"))).decoded()["Mountpoint"] == mountpoint
    assert (await backend.call(get("v1"))).decoded()["Volume"]["Status"] == {"mounts": {A: 1}}
    assert (await backend.call(unmount("v1", A))).err is None
    assert (await backend.call(remove("v1"))).err is None
    assert not Path(mountpoint).exists()
    assert (await backend.call(get("v1"))).err == "no such volume: 'v1'"


async def test_one_mount_id_can_be_mounted_twice_and_remove_refuses_until_both_are_released(tmp_path: Path) -> None:
    backend = DirectoryBackend(tmp_path)
    await backend.call(create("v1"))
    await backend.call(mount("v1", A))
    await backend.call(mount("v1", A))
    await backend.call(mount("v1", B))
    refused = await backend.call(remove("v1"))
    assert refused.status == 500
    assert refused.err == f"volume 'v1' is busy (device or resource busy): still mounted by {A} (2x), {B}"
    for mount_id in (A, A, B):
        assert (await backend.call(unmount("v1", mount_id))).err is None
    assert (await backend.call(unmount("v1", A))).err == f"volume 'v1' is not mounted by ID {A}"
    assert (await backend.call(remove("v1"))).err is None


async def test_state_survives_a_restart(tmp_path: Path) -> None:
    first = DirectoryBackend(tmp_path)
    await first.call(create("v1", {"k": "v"}))
    await first.call(mount("v1", A))
    second = DirectoryBackend(tmp_path)
    assert [v["Name"] for v in (await second.call(list_())).decoded()["Volumes"]] == ["v1"]
    assert second.mounts_of("v1") == {A: 1}


@pytest.mark.parametrize("name", ["", ".", "..", "../escape", "a/b", "nul\0byte", "x" * 256])
async def test_unsafe_names_are_refused_and_nothing_is_created_outside_the_root(tmp_path: Path, name: str) -> None:
    root = tmp_path / "root"
    backend = DirectoryBackend(root)
    reply = await backend.call(PluginCall.build(Operation.CREATE, name))
    assert reply.status == 500 and "invalid volume name" in (reply.err or "")
    assert sorted(os.listdir(tmp_path)) == ["root"]
    assert os.listdir(root / "volumes") == []


async def test_bodies_it_cannot_read_get_a_clear_err(tmp_path: Path) -> None:
    backend = DirectoryBackend(tmp_path)
    assert (await backend.call(PluginCall.parse(Operation.REMOVE, b""))).err == "empty request body (Remove needs a JSON body)"
    assert "not JSON" in ((await backend.call(PluginCall.parse(Operation.GET, b"{{"))).err or "")
    assert (await backend.call(PluginCall.parse(Operation.MOUNT, b'{"Name":"v"}'))).err == "no such volume: 'v'"


async def test_create_is_idempotent_and_list_and_capabilities_answer(tmp_path: Path) -> None:
    backend = DirectoryBackend(tmp_path)
    await backend.call(create("v1"))
    assert (await backend.call(create("v1"))).err is None
    listed = (await backend.call(list_())).decoded()["Volumes"]
    assert [v["Name"] for v in listed] == ["v1"] and listed[0]["CreatedAt"].endswith("Z")
    caps = await backend.call(PluginCall.build(Operation.CAPABILITIES))
    assert caps.decoded() == {"Capabilities": {"Scope": "local"}}


async def test_a_symlink_planted_in_the_root_is_never_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    backend = DirectoryBackend(tmp_path / "root")
    os.symlink(outside, tmp_path / "root" / "volumes" / "planted")
    reply = await backend.call(create("planted"))
    assert reply.status == 500 and "is not a directory this backend made" in (reply.err or "")
    assert os.listdir(outside) == []
    # a volume whose data directory is swapped for a link is refused at Mount
    await backend.call(create("v1"))
    data = tmp_path / "root" / "volumes" / "v1" / "_data"
    data.rmdir()
    os.symlink(outside, data)
    refused = await backend.call(mount("v1", A))
    assert refused.status == 500 and "symbolic link" in (refused.err or "")
    assert (await backend.call(remove("v1"))).err is None
    assert outside.is_dir() and os.listdir(outside) == []  # removing unlinked the link, not its target
