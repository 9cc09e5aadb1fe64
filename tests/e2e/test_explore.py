"""chaosvol explore against the real dockerd.

* A workload that breaks only when a Remove is dropped (it checks that `docker volume ls` no
  longer lists what it removed): explore finds exactly that fault, shrinks it to one rule, and the
  profile it writes reproduces the failure.
* Depth 2, from the ground truth: a workload that retries `volume rm` once survives a dropped
  Remove and survives a failed lookup during `volume rm` (dockerd purges the volume without
  sending Remove, dockerd-behaviour §4.6, then re-adopts it from List), but not both: the retry's
  Remove is the one dropped. Judged with the audit on, which must stay silent on the runs the
  retry healed.
* The audit as the verdict: a workload that exits 0 while an Unmount failure leaks the mount is
  broken by the audit alone (leaked-mount); an Unmount that fails after unmounting is not. The
  exploration is interrupted in the middle of a run and resumed.
* A workload that restarts its --live-restore dockerd (`restart_private_dockerd DIR` of
  scripts/dockerd.sh): explore finds the lookups of dockerd's restore whose failure leaks the
  container's mount (the story of `restore-get-fails`), one fault each.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chaosvol.testing.private_dockerd import dockerd_26_root
from tests.e2e.conftest import DOCKERDS, on_each_dockerd, start_chaosvol
from tests.support.dockerd import IMAGE, PrivateDockerd

ERROR = "{error: {when: before}}"


def explore(scenario: Any, tmp_path: Path, name: str, workload: Path, *options: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "chaosvol", "explore", "--name", name, "--docker-host", scenario.dockerd.host,
         *options, "--work", str(tmp_path / "work"), "-o", str(tmp_path / "out"), "--", "bash", str(workload)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=scenario.dockerd.environment(),
    )


def finished(process: subprocess.Popen[str], timeout: float = 900) -> tuple[int, str, str]:
    started = time.monotonic()
    stdout, stderr = process.communicate(timeout=timeout)
    print(f"explore took {time.monotonic() - started:.1f}s, exit {process.returncode}\n{stdout}\n{stderr}")
    return process.returncode, stdout, stderr


def summary_of(tmp_path: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    return summary, {run["faults"]: run for run in summary["runs"]}


def rerun(scenario: Any, name: str, profile: Path, workload: Path) -> subprocess.CompletedProcess[str]:
    """Serve `profile` as a user would and run the workload once under it."""
    scenario.start(str(profile), name=name)
    return subprocess.run(["bash", str(workload)], env=scenario.dockerd.environment() | {"CHAOSVOL_DRIVER": name},
                          capture_output=True, text=True, timeout=300, check=False)


def prepare(scenario: Any, tmp_path: Path, prefix: str, script: str) -> tuple[str, str, Path]:
    """The session's plugin name, handed over to explore; a new volume name; the workload: `script`
    after `docker=` the daemon's client, with {volume} and {image} filled in."""
    name = scenario.hand_over()
    volume = scenario.volume(prefix)
    workload = tmp_path / "workload.sh"
    workload.write_text(f"docker={scenario.dockerd.cli}\n" + script.format(volume=volume, image=IMAGE))
    return name, volume, workload


def test_explore_finds_the_dropped_remove_and_its_profile_reproduces_it(scenario: Any, tmp_path: Path) -> None:
    name, _, workload = prepare(scenario, tmp_path, "exp", """$docker volume create -d "$CHAOSVOL_DRIVER" {volume} >/dev/null || exit 0
if $docker volume rm {volume} >/dev/null; then  # removed, says dockerd: it must be gone
    $docker volume ls -q | grep -qx {volume} && exit 1
fi
exit 0
""")
    code, _, stderr = finished(explore(scenario, tmp_path, name, workload, "--no-audit", "--ops", "Remove"))
    assert code == 1, stderr
    summary, _ = summary_of(tmp_path)
    assert sorted(run["faults"] for run in summary["runs"] if run["broke"]) == ["Remove#1 drop"]
    assert len(summary["runs"]) == 1 + 5  # the baseline and each default action that works on Remove
    assert [f["faults"] for f in summary["failures"]] == ["Remove#1 drop"] and summary["failures"][0]["verified"]

    # The written profile is the user's regression test: served, it breaks the workload again.
    again = rerun(scenario, name, tmp_path / "out" / "failure-1.yaml", workload)
    assert again.returncode == 1, again.stderr


@on_each_dockerd()
def test_depth_two_finds_a_failed_lookup_in_volume_rm_that_breaks_it_only_with_a_dropped_remove(scenario: Any, tmp_path: Path) -> None:
    name, volume, workload = prepare(scenario, tmp_path, "exp2", """$docker volume create -d "$CHAOSVOL_DRIVER" --label team=a {volume} >/dev/null || exit 0
$docker run --rm -v {volume}:/data {image} sh -c 'echo x > /data/f' >/dev/null 2>&1
for attempt in 1 2; do  # one retry: a remove that did not take is tried again
    $docker volume rm {volume} >/dev/null 2>&1
    $docker volume ls -q | grep -qx {volume} || exit 0
    echo "{volume} still listed after volume rm $attempt"
done
exit 1
""")
    code, _, stderr = finished(explore(scenario, tmp_path, name, workload, "--ops", "Get,Remove", "--actions", f"drop;{ERROR}", "--depth", "2"))
    assert code == 1, stderr
    summary, runs = summary_of(tmp_path)
    # No false alarm: the baseline and the runs the retry healed are consistent for the audit too.
    assert not runs["(no fault)"]["broke"]
    assert not runs["Remove#1 drop"]["broke"] and not runs[f"Remove#1 {ERROR}"]["broke"], runs
    assert all(failure["verified"] for failure in summary["failures"]), summary["failures"]  # each broke it again, the same way

    # The pair: a failed Get, then the dropped Remove; each passed alone.
    pairs = [f for f in summary["failures"] if f["faults"].startswith("Get#") and f["faults"].endswith(" + Remove#1 drop")]
    assert len(pairs) == 1, summary["failures"]
    get = pairs[0]["faults"].split(" + ")[0]
    assert not runs[get]["broke"] and get.endswith(ERROR)
    assert pairs[0]["verdict"] == f"exit 1, audit unknown-to-daemon {volume}"
    assert pairs[0]["hits"] == [f"Get {volume}", f"Remove {volume}"]
    # The failed Get is one of `volume rm`'s lookups: it came after the container's Unmount.
    calls = run_calls(tmp_path / "work" / "events.jsonl", runs[pairs[0]["faults"]]["n"])
    failed_get = next(i for i, (op, rule) in enumerate(calls) if op == "Get" and rule)
    assert "Unmount" in [op for op, _ in calls[:failed_get]], calls

    again = rerun(scenario, name, tmp_path / "out" / pairs[0]["file"], workload)
    assert again.returncode == 1 and f"{volume} still listed after volume rm 2" in again.stdout, again.stdout + again.stderr
    assert ("unknown-to-daemon", volume) in scenario.audit(name)


def run_calls(events: Path, n: int) -> list[tuple[str, str | None]]:
    """(operation, rule that fired) of each call of explore's run `n`, from its event log."""
    calls: list[tuple[str, str | None]] = []
    inside = False
    for line in events.read_text().splitlines():
        record = json.loads(line)
        if record.get("kind") == "load":
            inside = record["profile"]["source"] == f"explore run {n}"
        elif inside and record.get("op"):
            calls.append((record["op"], record.get("rule")))
    return calls


@on_each_dockerd()
def test_the_audit_breaks_a_run_that_exits_0_with_a_leaked_mount_and_an_interrupted_exploration_resumes(scenario: Any, tmp_path: Path) -> None:
    slept = tmp_path / "slept"
    name, volume, workload = prepare(scenario, tmp_path, "exp3", f"""$docker volume create -d "$CHAOSVOL_DRIVER" {{volume}} >/dev/null || exit 0
if [ "$CHAOSVOL_EXPLORE_RUN" = 2 ] && [ ! -e {slept} ]; then touch {slept}; exec sleep 120; fi  # where the test interrupts
$docker run --rm -v {{volume}}:/data {{image}} true
""")
    options = ("--ops", "Unmount", "--actions", f"{ERROR};{{error: {{when: after}}}}")
    first = explore(scenario, tmp_path, name, workload, *options)
    deadline = time.monotonic() + 300
    while not slept.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert slept.exists(), first.communicate()
    first.send_signal(signal.SIGINT)  # in the middle of run 2: its volume is created, its run not recorded
    code, _, stderr = finished(first, timeout=120)
    assert code == 2 and f"--work {tmp_path / 'work'}" in stderr, stderr

    code, stdout, stderr = finished(explore(scenario, tmp_path, name, workload, *options))
    assert code == 1 and "resuming: 1 run(s)" in stderr, stderr
    lines = [json.loads(line) for line in (tmp_path / "work" / "runs.jsonl").read_text().splitlines()]
    assert len({line["key"] for line in lines}) == len(lines) == 3  # nothing made twice
    assert len({line["n"] for line in lines}) == 3 and 2 not in {line["n"] for line in lines}  # run 2's number is not reused
    summary, runs = summary_of(tmp_path)
    assert not runs["(no fault)"]["broke"]
    assert runs[f"Unmount#1 {ERROR}"]["exit_status"] == 0 and runs[f"Unmount#1 {ERROR}"]["findings"] == [f"leaked-mount {volume}"]
    assert not runs["Unmount#1 {error: {when: after}}"]["broke"]  # it unmounted: nothing leaked, nothing reported
    assert [(f["faults"], f["verified"]) for f in summary["failures"]] == [(f"Unmount#1 {ERROR}", True)]
    header = (tmp_path / "out" / "failure-1.yaml").read_text().splitlines()
    assert f"# calls hit: Unmount {volume}" in header and f"# broke: exit 0, audit leaked-mount {volume}" in header, header
    assert summary["overhead_s"]["max"] < 10, summary["overhead_s"]  # pause, audit and clean-up per run (a hang would show)
    assert re.search(r"^Unmount +\{error: \{when: before\}\} +1 +1 +leaked-mount$", stdout, re.MULTILINE), stdout  # the table

    assert rerun(scenario, name, tmp_path / "out" / "failure-1.yaml", workload).returncode == 0
    assert ("leaked-mount", volume) in scenario.audit(name)


REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(params=DOCKERDS, ids=[f"dockerd{b}" for b in DOCKERDS])
def restartable_by_script(request: pytest.FixtureRequest, daemons: Any) -> Iterator[tuple[PrivateDockerd, dict[str, str]]]:
    """A --live-restore dockerd started by scripts/dockerd.sh, so that a workload restarts it
    with `restart_private_dockerd DIR`: (a handle on it, the environment a workload needs)."""
    daemons.get(request.param)  # this build can run here (or the reason it cannot)
    directory = Path(tempfile.mkdtemp(prefix="cvx", dir="/tmp"))
    env = {**os.environ, "CHAOSVOL_DOCKERD": request.param, "CHAOSVOL_DOCKERD_26_ROOT": str(dockerd_26_root()),
           "DOCKERD_DIR": str(directory), "DOCKER_HOST": f"unix://{directory}/docker.sock"}
    script = f'. "{REPO}/scripts/dockerd.sh"; '
    subprocess.run(["bash", "-c", script + 'start_private_dockerd "$DOCKERD_DIR" --live-restore'], env=env, check=True, timeout=300)
    try:
        yield PrivateDockerd.existing(env["DOCKER_HOST"]), env  # existing(): the test image imported
    finally:
        subprocess.run(["bash", "-c", script + 'stop_private_dockerd "$DOCKERD_DIR"'], env=env, check=False, timeout=300)


def test_explore_searches_a_workload_that_restarts_dockerd_and_finds_the_restore_lookups_that_leak_the_mount(
    restartable_by_script: tuple[PrivateDockerd, dict[str, str]], tmp_path: Path,
) -> None:
    daemon, env = restartable_by_script
    name = f"cv-exlr-{secrets.token_hex(3)}"  # this daemon dies with the test: no other one waits on the name
    workload = tmp_path / "workload.sh"
    workload.write_text(
        f""". "{REPO}/scripts/dockerd.sh"
docker={daemon.cli}
c=lr-$CHAOSVOL_EXPLORE_RUN
$docker volume create -d "$CHAOSVOL_DRIVER" --label team=a lrv >/dev/null || exit 0
$docker run -d --name $c -v lrv:/data {IMAGE} sleep 600 >/dev/null || exit 0
restart_private_dockerd "$DOCKERD_DIR" || exit 3  # live-restore: the container keeps running
[ "$($docker inspect -f '{{{{.State.Status}}}}' $c)" = running ] || {{ echo "the container did not survive the restart"; exit 4; }}
$docker stop -t 1 $c >/dev/null && $docker rm $c >/dev/null || exit 5
$docker volume rm lrv >/dev/null || exit 1
"""
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "chaosvol", "explore", "--name", name, "--ops", "Get", "--actions", ERROR,
         "--work", str(tmp_path / "work"), "-o", str(tmp_path / "out"), "--", "bash", str(workload)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    code, _, stderr = finished(process)
    assert code == 1, stderr
    summary, runs = summary_of(tmp_path)
    baseline = runs["(no fault)"]
    assert not baseline["broke"] and baseline["counts"]["Activate"] == 2  # dockerd restarted and activated the plugin again
    assert all(failure["verified"] for failure in summary["failures"]), summary["failures"]

    # The Gets dockerd sends while it restores (after its second Activate, before the Unmount at `docker stop`).
    calls = run_calls(tmp_path / "work" / "events.jsonl", baseline["n"])
    second_activate = [i for i, (op, _) in enumerate(calls) if op == "Activate"][1]
    unmount = next(i for i, (op, _) in enumerate(calls) if op == "Unmount")
    gets_before = sum(1 for op, _ in calls[:second_activate] if op == "Get")
    restore = [f"Get#{gets_before + i} {ERROR}" for i in range(1, sum(1 for op, _ in calls[second_activate:unmount] if op == "Get") + 1)]
    assert len(restore) >= 3, calls
    # Failing the first alone is harmless (dockerd asks again); failing any later one: no Unmount
    # at `docker stop`, `volume rm` fails busy, the mount leaked. One minimal failure: the earliest.
    assert not runs[restore[0]]["broke"]
    for fault in restore[1:]:
        assert runs[fault]["exit_status"] == 1 and sorted(f.split()[0] for f in runs[fault]["findings"]) == ["leaked-mount", "metadata-lost"]
    leaking = [f for f in summary["failures"] if f["faults"] in restore]
    assert [f["faults"] for f in leaking] == [restore[1]], summary["failures"]

    # The profile written reproduces it on a plain serve: the workload's `volume rm` fails.
    proxy = start_chaosvol(name, tmp_path / "rerun", str(tmp_path / "out" / leaking[0]["file"]), tmp_path / "events.jsonl")
    try:
        again = subprocess.run(["bash", str(workload)], env=env | {"CHAOSVOL_DRIVER": name, "CHAOSVOL_EXPLORE_RUN": "again"},
                               capture_output=True, text=True, timeout=600, check=False)
        assert again.returncode == 1, again.stdout + again.stderr
    finally:
        daemon.docker("rm", "-f", "lr-again", check=False)
        daemon.docker("volume", "rm", "-f", "lrv", check=False)
        proxy.stop()


def test_a_workload_the_audit_finds_inconsistent_with_no_fault_of_explores_own_exits_2(scenario: Any, tmp_path: Path) -> None:
    # The base profile (in force in every run, the baseline too) fails every Unmount: the workload
    # exits 0, but the audit finds the leaked mount, so there is nothing to explore.
    base = tmp_path / "base.yaml"
    base.write_text("version: 1\nrules:\n  - match: {op: Unmount}\n    action: {error: {when: before}}\n")
    name, volume, workload = prepare(scenario, tmp_path, "exp4", """$docker volume create -d "$CHAOSVOL_DRIVER" {volume} >/dev/null && $docker run --rm -v {volume}:/data {image} true
""")
    code, _, stderr = finished(explore(scenario, tmp_path, name, workload, "--profile", str(base), "--ops", "Remove"))
    assert code == 2, stderr
    assert f"with the base profile alone the workload fails: exit 0, audit leaked-mount {volume}" in stderr, stderr
