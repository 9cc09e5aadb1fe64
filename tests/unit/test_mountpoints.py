"""Mountpoint rewriting for the managed plugin: Mount, Path and List are rewritten, Get is not,
and a Mount outside the backend root is an error that says why."""

from __future__ import annotations

import pytest

from chaosvol.core.mountpoints import MountpointRewrite
from chaosvol.core.protocol import PluginReply
from tests.support.builders import get, list_, mount, path

REWRITE = MountpointRewrite.parse("/srv/data/=/mnt/volumes/backend")


def test_mount_and_path_answers_are_moved_under_the_target() -> None:
    reply = PluginReply.json({"Mountpoint": "/srv/data/volumes/v/_data", "Err": ""})
    for call in (mount("v"), path("v")):
        assert REWRITE.apply(call, reply).decoded() == {"Mountpoint": "/mnt/volumes/backend/volumes/v/_data", "Err": ""}


def test_list_entries_are_rewritten_whatever_the_key_case_and_outsiders_left_alone() -> None:
    reply = PluginReply.json({"Volumes": [{"Name": "a", "mountpoint": "/srv/data/a"}, {"Name": "b", "Mountpoint": "/elsewhere/b"}, {"Name": "c"}]})
    assert REWRITE.apply(list_(), reply).decoded() == {
        "Volumes": [{"Name": "a", "mountpoint": "/mnt/volumes/backend/a"}, {"Name": "b", "Mountpoint": "/elsewhere/b"}, {"Name": "c"}]
    }


def test_get_errors_and_empty_mountpoints_are_passed_on_untouched() -> None:
    got = PluginReply.json({"Volume": {"Name": "v", "Mountpoint": "/srv/data/v"}})
    assert REWRITE.apply(get("v"), got) is got
    failed = PluginReply.error("backend trouble")
    assert REWRITE.apply(mount("v"), failed) is failed
    empty = PluginReply.json({"Mountpoint": ""})
    assert REWRITE.apply(mount("v"), empty) is empty


def test_a_mount_outside_the_backend_root_is_an_error_naming_both() -> None:
    reply = REWRITE.apply(mount("v"), PluginReply.json({"Mountpoint": "/srv/database/v"}))
    assert reply.status == 500
    assert reply.err is not None and "'/srv/database/v' for 'v' is outside /srv/data" in reply.err


@pytest.mark.parametrize("text", ["/a", "a=/b", "/a=b", ""])
def test_a_bad_rewrite_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="FROM=TO"):
        MountpointRewrite.parse(text)
