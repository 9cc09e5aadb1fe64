"""Every scenario profile against a real dockerd: the symptom from docker's own output, and what
`chaosvol audit` reports afterwards (shared/dockerd-behaviour.md is the ground truth)."""

from __future__ import annotations

import json
import secrets
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from tests.e2e.conftest import on_each_dockerd
from tests.support.dockerd import IMAGE

pytestmark = on_each_dockerd()
REPO = Path(__file__).resolve().parents[2]


def ls(scenario: Any, driver: str | None = None) -> list[tuple[str, str]]:
    out = scenario.docker("volume", "ls", "--format", "{{.Driver}} {{.Name}}").stdout.split("\n")
    pairs = [tuple(line.split()) for line in out if line.strip()]
    return [(p[0], p[1]) for p in pairs if driver is None or p[0] == driver]


def inspect(scenario: Any, volume: str) -> dict[str, Any]:
    return json.loads(scenario.docker("volume", "inspect", volume).stdout)[0]  # type: ignore[no-any-return]


def profile_with(tmp_path: Path, shipped: str, old: str, new: str) -> str:
    """A shipped profile with a literal name replaced (for scenarios that name volumes)."""
    text = (REPO / "profiles" / f"{shipped}.yaml").read_text()
    assert old in text
    path = tmp_path / f"{shipped}.yaml"
    path.write_text(text.replace(old, new))
    return str(path)


def test_remove_fails_after_delete(scenario: Any) -> None:
    proxy = scenario.start("remove-fails-after-delete")
    v = scenario.volume()
    scenario.docker("volume", "create", "-d", proxy.name, v)
    removed = scenario.docker("volume", "rm", v, check=False)
    assert removed.returncode == 1
    assert removed.stderr.strip() == f"Error response from daemon: remove {v}: VolumeDriver.Remove: chaosvol: injected: Remove failed"
    assert not proxy.volume_dir(v).exists()  # the backend did delete it
    assert (proxy.name, v) not in ls(scenario)
    assert scenario.audit() == [("stale-in-daemon", v)]
    # `-v NAME:` carries no driver: dockerd finds no plugin volume and silently makes a local one.
    scenario.docker("run", "--rm", "-v", f"{v}:/data", IMAGE, "touch", "/data/x")
    assert ("local", v) in ls(scenario)


def test_get_error_purges_metadata(scenario: Any) -> None:
    proxy = scenario.start("get-error-purges-metadata")
    v = scenario.volume("purge")
    scenario.docker("volume", "create", "-d", proxy.name, "--label", "team=a", "-o", "size=1", v)
    first = scenario.docker("volume", "inspect", v, check=False)
    assert first.returncode == 1 and first.stderr.strip() == scenario.dockerd.no_such_volume(v)
    assert proxy.volume_dir(v).exists()
    again = inspect(scenario, v)
    assert (again["Labels"], again["Options"]) == (None, None)  # were team=a, size=1
    assert scenario.audit() == [("metadata-lost", v)]


def test_late_create_leaves_an_orphan_without_labels(scenario: Any) -> None:
    proxy = scenario.start("late-create")
    v = scenario.volume("late")
    started = time.monotonic()
    created = scenario.docker("volume", "create", "-d", proxy.name, "--label", "k=v", v, check=False, timeout=300)
    gave_up = time.monotonic() - started
    assert created.returncode == 1 and "context deadline exceeded" in created.stderr
    assert 115 < gave_up < 125, gave_up
    deadline = time.monotonic() + 30
    while not proxy.volume_dir(v).exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert proxy.volume_dir(v).exists()  # created late, after dockerd gave up
    assert (proxy.name, v) in ls(scenario)
    assert scenario.audit() == [("unknown-to-daemon", v)]
    (create,) = [e for e in proxy.events() if e["op"] == "Create" and e["volume"] == v]
    assert (create["rule"], create["forwarded"], create["outcome"]) == ("late-create", True, "client-gone")


def test_ghost_volume_is_adopted_and_never_created(scenario: Any, tmp_path: Path) -> None:
    v = scenario.volume("ghost")
    proxy = scenario.start(profile_with(tmp_path, "ghost-volume", "ghost-1", v))
    created = scenario.docker("volume", "create", "-d", proxy.name, "--label", "k=v", v)
    assert created.stdout.strip() == v
    assert not [e for e in proxy.events() if e["op"] == "Create"]  # the backend never saw Create
    assert inspect(scenario, v)["Status"]["chaosvol"].startswith("ghost")
    run = scenario.docker("run", "--rm", "-v", f"{v}:/data", IMAGE, "true", check=False)
    assert run.returncode == 125 and f"no such volume: '{v}'" in run.stderr
    assert scenario.audit() == [("stale-in-daemon", v)]


def test_unmount_fails_leaks_the_mount_and_blocks_removal(scenario: Any) -> None:
    proxy = scenario.start("unmount-fails")
    v = scenario.volume()
    scenario.docker("volume", "create", "-d", proxy.name, v)
    run = scenario.docker("run", "--rm", "-v", f"{v}:/data", IMAGE, "sh", "-c", "echo hi")
    assert run.returncode == 0 and run.stdout == "hi\n"  # nothing visible
    assert scenario.audit() == [("leaked-mount", v)]
    removed = scenario.docker("volume", "rm", v, check=False)
    assert removed.returncode == 1 and "device or resource busy" in removed.stderr


def test_busy_remove_after_silently_dropped_unmounts(scenario: Any) -> None:
    proxy = scenario.start("busy-remove")
    v = scenario.volume()
    scenario.docker("volume", "create", "-d", proxy.name, v)
    for _ in range(2):
        scenario.docker("run", "--rm", "-v", f"{v}:/data", IMAGE, "true")
    removed = scenario.docker("volume", "rm", v, check=False)
    assert removed.returncode == 1
    assert f"remove {v}: VolumeDriver.Remove: volume '{v}' is busy (device or resource busy): still mounted by" in removed.stderr
    assert scenario.audit() == [("leaked-mount", v)]


def test_deferred_removal_race_fails_twice_then_succeeds_and_leaves_nothing(scenario: Any) -> None:
    proxy = scenario.start("deferred-removal-race")
    v = scenario.volume()
    scenario.docker("volume", "create", "-d", proxy.name, v)
    for _ in range(2):
        removed = scenario.docker("volume", "rm", v, check=False)
        assert removed.returncode == 1
        assert removed.stderr.strip() == f"Error response from daemon: remove {v}: VolumeDriver.Remove: device or resource busy"
    assert scenario.docker("volume", "rm", v).returncode == 0
    assert not proxy.volume_dir(v).exists() and (proxy.name, v) not in ls(scenario)
    assert scenario.audit() == []


def test_list_remove_race_a_held_list_shows_the_removed_volume_and_misses_the_new_one(scenario: Any) -> None:
    proxy = scenario.start("list-remove-race")
    old, new = scenario.volume("old"), scenario.volume("new")
    scenario.docker("volume", "create", "-d", proxy.name, old)
    listing: dict[str, str] = {}

    def ls() -> None:
        listing["out"] = scenario.docker("volume", "ls", "-q", "-f", f"name={old}", "-f", f"name={new}").stdout

    thread = threading.Thread(target=ls)
    thread.start()
    held = proxy.ctl("held", "--wait", "30s", "--match", "op=List").stdout  # the List answer is parked
    assert len(held.splitlines()) == 2, held
    scenario.docker("volume", "rm", old)
    scenario.docker("volume", "create", "-d", proxy.name, new)
    proxy.ctl("release", "--match", "op=List")
    thread.join(30)
    assert listing["out"].split() == [old]  # removed volume listed, new one missing
    assert [e["held"] for e in proxy.events() if e["op"] == "List"] == ["released"]
    proxy.ctl("disable", "hold-list")
    assert scenario.docker("volume", "ls", "-q", "-f", f"name={old}", "-f", f"name={new}").stdout.split() == [new]
    assert scenario.audit() == []  # transient on dockerd >= 1.11: nothing lingers


def test_empty_mountpoint_mounts_the_runtime_bundle(scenario: Any) -> None:
    proxy = scenario.start("empty-mountpoint")
    v = scenario.volume()
    scenario.docker("volume", "create", "-d", proxy.name, v)
    run = scenario.docker("run", "--rm", "-v", f"{v}:/data", IMAGE, "ls", "/data")
    assert "config.json" in run.stdout.split()
    assert scenario.audit() == []


def test_slow_activate_blocks_volume_ls_until_the_plugin_answers(scenario: Any) -> None:
    fresh = f"cv-act-{secrets.token_hex(3)}"
    scenario.start("slow-activate", name=fresh)
    environment = scenario.dockerd.environment()
    started = time.monotonic()
    ls_process = subprocess.Popen([scenario.dockerd.cli, "volume", "ls", "-q"], env=environment, stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(4)
        assert ls_process.poll() is None  # still waiting for Activate
        other = scenario.docker("volume", "create", scenario.volume("local"))  # the local driver is not blocked
        assert other.returncode == 0
        scenario.start("passthrough", name=fresh)  # the plugin answers at last
        ls_process.wait(30)
    finally:
        if ls_process.poll() is None:
            ls_process.kill()
        ls_process.communicate()
    assert ls_process.returncode == 0 and time.monotonic() - started > 4


def test_flaky_marks_every_injected_fault_and_audit_names_only_known_kinds(scenario: Any) -> None:
    proxy = scenario.start("flaky")
    for _ in range(6):
        v = scenario.volume("flaky")
        scenario.docker("volume", "create", "-d", proxy.name, v, check=False)
        scenario.docker("run", "--rm", "-v", f"{v}:/data", IMAGE, "true", check=False)
        scenario.docker("volume", "rm", v, check=False)
    events = proxy.events()
    assert events and all(e["rule"] in {None, "remove-fails-after-delete", "mount-fails-after-mount", "unmount-fails", "create-fails", "get-fails", "list-fails", "slow-calls"} for e in events)
    for event in events:
        if event["injected"] and event["reply"] and event["reply"]["status"] != 200:
            assert event["reply"]["err"].startswith("chaosvol: injected:")
    for kind, _ in scenario.audit():
        assert kind in {"stale-in-daemon", "unknown-to-daemon", "metadata-lost", "leaked-mount", "shadowed"}


def test_plugin_restart_within_dockerds_retries_is_transparent(scenario: Any) -> None:
    proxy = scenario.start("plugin-restart")
    v = scenario.volume()
    scenario.docker("volume", "create", "-d", proxy.name, "--label", "k=v", v)
    environment = scenario.dockerd.environment()
    killer = subprocess.Popen([scenario.dockerd.cli, "volume", "ls", "-q"], env=environment, stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)  # the List has crashed the plugin: its socket is gone
        assert not Path(f"/run/docker/plugins/{proxy.name}.sock").exists()
        started = time.monotonic()
        inspected = inspect(scenario, v)  # dockerd retries until the plugin is back
        waited = time.monotonic() - started
        assert killer.wait(30) == 0
    finally:
        if killer.poll() is None:
            killer.kill()
        killer.communicate()
    assert inspected["Labels"] == {"k": "v"} and 3 < waited < 15, waited
    crashed_at = next(i for i, e in enumerate(proxy.events()) if e["outcome"] == "crashed")
    assert not [e for e in proxy.events()[crashed_at:] if e["op"] == "Activate"]  # no re-activation
    assert scenario.audit() == []


def test_a_daemon_restarting_while_the_plugin_is_down_stalls_per_volume(scenario: Any) -> None:
    from tests.support.dockerd import PrivateDockerd

    name = f"cv-rst-{secrets.token_hex(3)}"
    second = PrivateDockerd.start(build=scenario.dockerd.build or "20")
    try:
        scenario.start("passthrough", name=name)
        volumes = [scenario.volume("stall") for _ in range(2)]
        for volume in volumes:
            second.docker("volume", "create", "-d", name, volume)
        scenario.stop(name)  # the plugin is down...
        took = second.restart()  # ...while dockerd restarts
        assert took > 25, f"the API came up after {took:.1f}s; expected about 15 s per volume"
        scenario.start("passthrough", name=name)
        listed = second.docker("volume", "ls", "-q").stdout.split()
        assert set(volumes) <= set(listed)
        for volume in volumes:
            second.docker("volume", "rm", volume)
        print(f"dockerd with 2 volumes of a dead plugin took {took:.1f}s to start")
    finally:
        second.stop()
