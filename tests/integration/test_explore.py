"""`chaosvol explore` with a workload that talks to the plugin socket itself (no dockerd: judged
by exit status, --no-audit): it finds exactly the faults that break the workload, shrinks each to
one rule, writes profiles `chaosvol check` accepts, and takes up an interrupted exploration where
it stopped."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from tests.integration.test_cli import CHAOSVOL
from tests.integration.test_report_browser import load

# Create v, Remove v; if the Remove said it was done, a Get must not find v. A dropped Remove
# (success, never done) breaks it; a Remove that fails honestly does not.
WORKLOAD = r'''
import http.client, json, os, socket, sys

class Unix(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(os.environ["SOCK"])

def call(op, body):
    try:
        c = Unix("plugin")
        c.request("POST", "/VolumeDriver." + op, json.dumps(body))
        r = c.getresponse()
        value = json.loads(r.read() or b"{}")
        c.close()
    except (OSError, http.client.HTTPException):  # cut without an answer: the call failed
        return False, {}
    return r.status == 200 and not value.get("Err"), value

run = os.environ["CHAOSVOL_EXPLORE_RUN"]
name = "v" + run
call("Create", {"Name": name, "Opts": {}})
removed, _ = call("Remove", {"Name": name})
found, _ = call("Get", {"Name": name})
sys.exit(1 if removed and found else 0)
'''


def explore(tmp: Path, *extra: str, work: str = "work") -> subprocess.CompletedProcess[str]:
    script = tmp / "workload.py"
    script.write_text(WORKLOAD)
    sock = tmp / "p.sock"
    return subprocess.run(
        [*CHAOSVOL, "explore", "--socket", str(sock), "--no-audit", "--work", str(tmp / work), "-o", str(tmp / "out"),
         *extra, "--", sys.executable, str(script)],
        capture_output=True, text=True, timeout=600, check=False, env={"SOCK": str(sock), "PATH": "/usr/bin:/bin"},
    )


def test_explore_finds_the_dropped_remove_and_only_it_shrunk_to_one_rule(short_tmp: str) -> None:
    tmp = Path(short_tmp)
    result = explore(tmp, "--ops", "Create,Remove")
    assert result.returncode == 1, result.stderr
    summary = json.loads((tmp / "out" / "summary.json").read_text())
    broke = sorted(run["faults"] for run in summary["runs"] if run["broke"])
    assert broke == ["Remove#1 drop"]
    assert [f["faults"] for f in summary["failures"]] == ["Remove#1 drop"] and summary["failures"][0]["verified"]
    written = (tmp / "out" / "failure-1.yaml").read_text()
    assert written.startswith("# chaosvol explore: a minimal profile") and "# faults: Remove#1 drop" in written
    assert re.search(r"^# calls hit: Remove v\d+$", written, re.MULTILINE), written  # the volume the dropped Remove was for
    check = subprocess.run([*CHAOSVOL, "check", str(tmp / "out" / "failure-1.yaml")], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stderr
    assert re.search(r"^Remove +drop +1 +1 +exit 1$", result.stdout, re.MULTILINE), result.stdout  # the table
    dom, console = load(tmp / "out" / "report.html")  # the matrix, as headless chromium shows it
    assert "Uncaught" not in console, console
    assert dom.count('class="broke"') >= 1 and 'data-op="Remove" data-action="drop"' in dom
    assert "run 3: Remove#1 drop: exit 1" in dom or re.search(r"run \d+: Remove#1 drop: exit 1", dom)
    assert re.search(r"failure-1.yaml</b>: Remove#1 drop: exit 1<br>calls hit: Remove v\d+; found by: Remove#1 drop", dom), dom
    assert summary["overhead_s"]["mean"] < 1.0  # pause, clean-up (no audit here) between runs


def test_a_workload_that_fails_with_no_fault_exits_2(short_tmp: str) -> None:
    tmp = Path(short_tmp)
    (tmp / "fail.py").write_text("import sys; sys.exit(3)\n")
    result = subprocess.run(
        [*CHAOSVOL, "explore", "--socket", f"{short_tmp}/p.sock", "--no-audit", "-o", f"{short_tmp}/out", "--",
         sys.executable, f"{short_tmp}/fail.py"], capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 2
    assert "with no fault the workload fails: exit 3" in result.stderr


def test_an_exploration_started_again_makes_no_run_twice(short_tmp: str) -> None:
    tmp = Path(short_tmp)
    first = explore(tmp, "--ops", "Create,Remove", "--budget", "3")
    assert "budget spent" in first.stderr
    made = len((tmp / "work" / "runs.jsonl").read_text().splitlines())
    with open(tmp / "work" / "runs.jsonl", "a") as log:
        log.write('{"n": 9, "key": "[[\"Remove\", 1, \n')  # a line cut short by a crash
    second = explore(tmp, "--ops", "Create,Remove")
    assert "resuming: " in second.stderr
    assert f"runs.jsonl:{made + 1}: not a run (" in second.stderr and "that run will be made again" in second.stderr
    lines = (tmp / "work" / "runs.jsonl").read_text().splitlines()
    del lines[made]  # the cut line
    keys = [json.loads(line)["key"] for line in lines]
    assert len(keys) == len(set(keys)) and len(keys) > made
    assert second.returncode == 1


def test_an_interrupted_exploration_says_how_to_resume_and_resumes(short_tmp: str) -> None:
    import os
    import signal
    import time

    tmp = Path(short_tmp)
    (tmp / "workload.py").write_text(WORKLOAD.replace("sys.exit(", "import time; time.sleep(0.5); sys.exit("))
    sock = tmp / "p.sock"
    args = [*CHAOSVOL, "explore", "--socket", str(sock), "--no-audit", "--ops", "Create,Remove", "--work", str(tmp / "work"),
            "-o", str(tmp / "out"), "--", sys.executable, str(tmp / "workload.py")]
    env = {"SOCK": str(sock), "PATH": "/usr/bin:/bin"}
    process = subprocess.Popen(args, stderr=subprocess.PIPE, text=True, env=env)
    runs = tmp / "work" / "runs.jsonl"
    deadline = time.monotonic() + 60
    while not runs.exists() or len(runs.read_text().splitlines()) < 3:  # the baseline and two faults
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 2 and "interrupted; " in stderr and f"--work {tmp / 'work'}" in stderr, stderr
    kept = len(runs.read_text().splitlines())
    again = subprocess.run(args, capture_output=True, text=True, timeout=600, check=False, env=env)
    assert again.returncode == 1 and f"resuming: {kept} run(s) already made" in again.stderr
    keys = [json.loads(line)["key"] for line in runs.read_text().splitlines()]
    assert len(keys) == len(set(keys))


# Creates a and b, removes b; breaks only when the Create of a and the Remove of b both fail.
BOTH = WORKLOAD.split("run = os.environ")[0] + '''
run = os.environ["CHAOSVOL_EXPLORE_RUN"]
created, _ = call("Create", {"Name": "a" + run, "Opts": {}})
call("Create", {"Name": "b" + run, "Opts": {}})
removed, _ = call("Remove", {"Name": "b" + run})
sys.exit(1 if not created and not removed else 0)
'''


def test_depth_two_finds_faults_that_break_it_only_together_and_shrinks_each_to_a_minimal_pair(short_tmp: str) -> None:
    tmp = Path(short_tmp)
    (tmp / "both.py").write_text(BOTH)
    sock = tmp / "p.sock"
    result = subprocess.run(
        [*CHAOSVOL, "explore", "--socket", str(sock), "--no-audit", "--ops", "Create,Remove", "--depth", "2",
         "--actions", "drop; {error: {when: before}}", "-o", str(tmp / "out"), "--", sys.executable, str(tmp / "both.py")],
        capture_output=True, text=True, timeout=600, check=False, env={"SOCK": str(sock), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 1, result.stderr
    summary = json.loads((tmp / "out" / "summary.json").read_text())
    singles = [run for run in summary["runs"] if run["faults"].count("#") == 1]
    assert len(singles) == 2 * 2 + 2 and not any(run["broke"] for run in singles)  # no fault breaks it alone
    # The Create of a failing, with b never made (its Create dropped: the simplest way) or its
    # Remove failing: each of the failing pairs shrinks to one of these two.
    assert sorted(f["faults"] for f in summary["failures"]) == [
        "Create#1 {error: {when: before}} + Create#2 drop",
        "Create#1 {error: {when: before}} + Remove#1 {error: {when: before}}",
    ]
    assert all(f["verified"] for f in summary["failures"])


def test_the_budget_bounds_the_shrinking_too_and_says_what_was_left_untried(short_tmp: str) -> None:
    tmp = Path(short_tmp)
    (tmp / "both.py").write_text(BOTH)
    sock = tmp / "p.sock"

    def explore_both(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CHAOSVOL, "explore", "--socket", str(sock), "--no-audit", "--ops", "Create,Remove", "--depth", "2", "--seed", "1",
             "--actions", "drop; {error: {when: before}}", "--work", str(tmp / "work"), "-o", str(tmp / "out"), *extra,
             "--", sys.executable, str(tmp / "both.py")],
            capture_output=True, text=True, timeout=600, check=False, env={"SOCK": str(sock), "PATH": "/usr/bin:/bin"},
        )

    # 6 single faults, then the first pair of seed 1, which breaks it: nothing left to shrink it with.
    first = explore_both("--budget", "7")
    assert first.returncode == 1, first.stderr
    assert len((tmp / "work" / "runs.jsonl").read_text().splitlines()) == 1 + 7
    summary = json.loads((tmp / "out" / "summary.json").read_text())
    assert [(f["faults"], f["shrunk"], f["verified"]) for f in summary["failures"]] == [
        ("Create#1 {error: {when: before}} + Create#2 {error: {when: before}}", False, None),
    ]
    assert summary["budget_exhausted"]
    written = (tmp / "out" / "failure-1.yaml").read_text()
    assert "the smallest among the runs made: the budget was spent" in written and "not run again to confirm it" in written

    # Taken up again without a budget: shrunk and confirmed as an unbounded exploration would be.
    (tmp / "out" / "failure-7.yaml").write_text("# an earlier exploration's\n")
    second = explore_both()
    assert second.returncode == 1, second.stderr
    summary = json.loads((tmp / "out" / "summary.json").read_text())
    assert sorted((f["faults"], f["shrunk"], f["verified"]) for f in summary["failures"]) == [
        ("Create#1 {error: {when: before}} + Create#2 drop", True, True),
        ("Create#1 {error: {when: before}} + Remove#1 {error: {when: before}}", True, True),
    ]
    assert sorted(p.name for p in (tmp / "out").glob("failure-*.yaml")) == ["failure-1.yaml", "failure-2.yaml"]


def test_an_action_that_works_nowhere_or_a_workload_with_nothing_to_fault_is_exit_2_never_a_pass(short_tmp: str) -> None:
    tmp = Path(short_tmp)
    for actions, said in (
        ("drop; explode", "--actions 'explode': action: unknown action 'explode'; allowed: "),
        ("{error: {when: sometimes}}", "--actions '{error: {when: sometimes}}': action.error.when: expected one of before, after"),
        ("{drop", "--actions '{drop': not YAML: expected ',' or '}', but got '<stream end>' at column 6"),
    ):
        result = explore(tmp, "--actions", actions)
        assert result.returncode == 2 and said in result.stderr, result.stderr
        assert not (tmp / "work").exists()  # refused before anything ran
    # The workload's calls are Create, Remove and Get: none is a Mount.
    result = explore(tmp, "--ops", "Mount")
    assert result.returncode == 2, result.stderr
    assert "nothing to explore: the baseline made no call that these actions work on (its calls: " in result.stderr
    assert "Create 1" in result.stderr and "--ops Mount)" in result.stderr


def test_ghost_is_among_the_default_actions_on_get_and_is_explored(short_tmp: str) -> None:
    # The workload's last call, Get v, answered "exists" for a volume it removed breaks it; an
    # error or a reset does not (not found). ghost needs no names on Get: the volume asked for.
    tmp = Path(short_tmp)
    result = explore(tmp, "--ops", "Get")
    assert result.returncode == 1, result.stderr
    summary = json.loads((tmp / "out" / "summary.json").read_text())
    assert sorted(run["faults"] for run in summary["runs"][1:]) == sorted(
        f"Get#1 {action}" for action in ("{error: {when: before}}", "{error: {when: after}}", "{reset: {when: before}}",
                                         "{reset: {when: after}}", "ghost", "hide")
    )
    assert [f["faults"] for f in summary["failures"]] == ["Get#1 ghost"]
