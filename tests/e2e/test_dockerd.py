"""Against a real dockerd: pass-through is invisible, and drop-removes leaves the inconsistency
shared/dockerd-behaviour.md §4.1 describes (rm exits 0, ls still lists the volume, labels gone)."""

from __future__ import annotations

import json
import time
from typing import Any

from tests.e2e.conftest import on_each_dockerd
from tests.support.dockerd import IMAGE, PrivateDockerd

pytestmark = on_each_dockerd()


def ls_names(dockerd: PrivateDockerd, driver: str) -> list[str]:
    listed = dockerd.docker("volume", "ls", "--format", "{{.Driver}} {{.Name}}").stdout.split("\n")
    return [line.split()[1] for line in listed if line.startswith(f"{driver} ")]


def test_pass_through_a_volume_lives_and_dies_as_without_chaosvol(dockerd: PrivateDockerd, scenario: Any) -> None:
    started = time.monotonic()
    proxy = scenario.start("passthrough")
    volume_name = scenario.volume()
    dockerd.docker("volume", "create", "-d", proxy.name, "--label", "team=a", "-o", "size=1", volume_name)
    dockerd.docker("run", "--rm", "-v", f"{volume_name}:/data", IMAGE, "sh", "-c", "echo hi > /data/f")
    assert (proxy.volume_dir(volume_name) / "_data" / "f").read_text() == "hi\n"
    inspected = json.loads(dockerd.docker("volume", "inspect", volume_name).stdout)[0]
    assert (inspected["Driver"], inspected["Labels"], inspected["Options"]) == (proxy.name, {"team": "a"}, {"size": "1"})
    assert dockerd.docker("volume", "rm", volume_name).stdout.strip() == volume_name
    assert volume_name not in ls_names(dockerd, proxy.name)
    assert not proxy.volume_dir(volume_name).exists()
    mine = [e for e in proxy.events() if e["volume"] == volume_name]
    assert [e["op"] for e in mine if e["op"] != "Get"] == ["Create", "Mount", "Unmount", "Remove"]
    assert all(e["forwarded"] and not e["injected"] and e["reply"]["status"] == 200 for e in mine if e["op"] != "Get")
    assert scenario.audit() == []
    print(f"pass-through lifecycle took {time.monotonic() - started:.2f}s")


def test_drop_removes_rm_succeeds_and_the_volume_comes_back_without_its_labels(dockerd: PrivateDockerd, scenario: Any) -> None:
    proxy = scenario.start("drop-removes")
    volume_name = scenario.volume()
    dockerd.docker("volume", "create", "-d", proxy.name, "--label", "team=a", volume_name)
    dockerd.docker("run", "--rm", "-v", f"{volume_name}:/data", IMAGE, "sh", "-c", "echo hi > /data/f")
    removed = dockerd.docker("volume", "rm", volume_name)
    assert removed.returncode == 0 and removed.stdout.strip() == volume_name
    assert volume_name in ls_names(dockerd, proxy.name)  # the daemon/plugin inconsistency
    assert scenario.audit() == [("unknown-to-daemon", volume_name)]  # dockerd has no record of it now
    assert (proxy.volume_dir(volume_name) / "_data" / "f").read_text() == "hi\n"
    inspected = json.loads(dockerd.docker("volume", "inspect", volume_name).stdout)[0]
    assert not inspected["Labels"]  # re-adopted from the backend: team=a is lost for good
    assert scenario.audit() == [("metadata-lost", volume_name)]
    (remove,) = [e for e in proxy.events() if e["op"] == "Remove" and e["volume"] == volume_name]
    assert (remove["rule"], remove["action"], remove["forwarded"], remove["injected"]) == ("drop-removes", "drop", False, True)


def test_an_injected_error_is_marked_as_injected_in_dockers_own_output(dockerd: PrivateDockerd, scenario: Any, tmp_path: Any) -> None:
    profile = tmp_path / "create-fails.yaml"
    profile.write_text("version: 1\nrules:\n  - name: create-fails\n    match: {op: Create}\n    action: error\n")
    proxy = scenario.start(str(profile))
    volume_name = scenario.volume()
    result = dockerd.docker("volume", "create", "-d", proxy.name, volume_name, check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == f"Error response from daemon: create {volume_name}: VolumeDriver.Create: chaosvol: injected: Create failed"
    assert not proxy.volume_dir(volume_name).exists()
