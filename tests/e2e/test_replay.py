"""Record a flaky run against a real dockerd, replay its event log as a profile on a fresh
dockerd, and get the same faults on the same calls."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.e2e.conftest import start_chaosvol
from tests.support.dockerd import IMAGE, PrivateDockerd
from tests.support.events import call_lines


def run_workload(profile: str, work: Path, tag: str, *extra: str, volumes: int = 8, prefix: str = "rp", inspect: bool = False) -> list[dict[str, Any]]:
    """On a fresh private dockerd through chaosvol: create, run, (inspect,) rm, `volumes` times."""
    daemon = PrivateDockerd.start()
    name = f"cv-{prefix}-{secrets.token_hex(3)}"
    events = work / f"events-{tag}.jsonl"
    proxy = start_chaosvol(name, work / f"backend-{tag}", profile, events, *extra)
    try:
        for i in range(volumes):
            volume = f"{prefix}-{i}"
            daemon.docker("volume", "create", "-d", name, volume, check=False)
            daemon.docker("run", "--rm", "-v", f"{volume}:/data", IMAGE, "true", check=False)
            if inspect:
                daemon.docker("volume", "inspect", volume, check=False)
            daemon.docker("volume", "rm", volume, check=False)
    finally:
        daemon.stop()
        proxy.stop()
    return call_lines(events)


def faults(records: list[dict[str, Any]], detail: Callable[[dict[str, Any]], Any] = lambda r: r["action"]) -> list[tuple[Any, ...]]:
    """Each fault as (operation, volume, index among the calls with that operation and volume,
    `detail`): the identity of a call that does not depend on how concurrent calls interleave."""
    seen: Counter[tuple[str, str | None]] = Counter()
    found = []
    for record in sorted(records, key=lambda r: r["t"]):
        key = (record["op"], record["volume"])
        seen[key] += 1
        if record["injected"]:
            found.append((key[0], key[1], seen[key], detail(record)))
    return sorted(found, key=str)


def decisions(records: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Each fault with the actions as carried out and how a hold ended."""
    return faults(records, lambda r: (r["decision"]["actions"], r["held"]))


def test_a_replayed_flaky_run_gets_the_same_faults_on_the_same_calls(dockerd: PrivateDockerd, tmp_path: Path) -> None:
    first = run_workload("flaky", tmp_path, "first")
    assert faults(first), "the recorded run had no fault: nothing to replay"
    (tmp_path / "events-first.jsonl").write_text("".join(json.dumps(r) + "\n" for r in first))
    profile = tmp_path / "replay.yaml"
    made = subprocess.run(
        [sys.executable, "-m", "chaosvol", "replay", str(tmp_path / "events-first.jsonl"), "--profile", "flaky", "-o", str(profile)],
        check=False, capture_output=True, text=True, timeout=60,
    )
    assert made.returncode == 0, made.stderr
    second = run_workload(str(profile), tmp_path, "second")
    assert faults(second) == faults(first)
    assert Counter((r["op"], r["volume"]) for r in second) == Counter((r["op"], r["volume"]) for r in first)


REPLAYED_PROFILE = """\
version: 1
rules:
  - name: jittered-gets
    match: {{op: Get}}
    probability: 0.6
    action: {{delay: {{duration: 60ms, jitter: 50ms}}}}
  - name: mount-elsewhere
    match: {{op: Mount, volume: "rx-1"}}
    action: {{corrupt: {{mountpoint: "{elsewhere}"}}}}
  - name: hold-removes
    match: {{op: Remove}}
    times: 2
    action: {{hold: {{timeout: 300ms, when: after}}}}
  - name: slow-unmounts
    match: {{op: Unmount}}
    action: {{delay: {{duration: 20ms, jitter: 15ms, when: after}}}}
"""


def run_mixed_workload(profile: Path, work: Path, tag: str, *extra: str) -> list[dict[str, Any]]:
    return run_workload(str(profile), work, tag, *extra, volumes=4, prefix="rx", inspect=True)


def test_a_run_with_a_jittered_delay_a_corrupt_mountpoint_and_a_hold_replays_from_its_log_alone(dockerd: PrivateDockerd, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    profile = tmp_path / "mixed.yaml"
    profile.write_text(REPLAYED_PROFILE.format(elsewhere=elsewhere))
    first = run_mixed_workload(profile, tmp_path, "first", "--seed", "4242")
    recorded = decisions(first)
    actions = {next(iter(a)) for _, _, _, (done, _) in recorded for a in done}
    assert actions == {"delay", "corrupt", "hold"}, recorded
    jittered = [done[0]["delay"] for _, _, _, (done, _) in recorded if "delay" in done[0]]
    assert all(a["jitter"] == 0.0 for a in jittered) and len({a["duration"] for a in jittered}) > 1  # drawn, each its own
    assert any(held == "timeout" for *_, (_, held) in recorded)
    profile.unlink()  # the log alone
    replayed = tmp_path / "replayed.yaml"
    made = subprocess.run([sys.executable, "-m", "chaosvol", "replay", str(tmp_path / "events-first.jsonl"), "-o", str(replayed)],
                          check=False, capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    second = run_mixed_workload(replayed, tmp_path, "second", "--seed", "1")
    assert decisions(second) == recorded
