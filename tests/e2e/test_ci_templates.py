"""The CI templates in examples/ci/ run as written: their steps, in order, in a shell, as GitHub
Actions and GitLab CI run them, against a private dockerd (tests/support/ci_runner.py), in a
private mount namespace. The only thing set is what a template asks its user to set: where
chaosvol comes from (a wheel of this checkout)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).parents[2]
CI = REPO / "examples" / "ci"


@pytest.fixture(scope="module")
def wheel() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="cvwheel", dir="/tmp") as directory:
        subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", directory, str(REPO)],
                       check=True, capture_output=True, timeout=300)
        yield next(Path(directory).glob("chaosvol-*.whl"))


def run_template(system: str, template: Path, wheel: Path, *extra: str) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json") as result:
        done = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "--", sys.executable, "-m", "tests.support.ci_runner",
             system, str(template), result.name, "--set", f"CHAOSVOL_SOURCE={wheel}", *extra],
            cwd=REPO, check=False, capture_output=True, text=True, timeout=900,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        outcome: dict[str, Any] = json.loads(Path(result.name).read_text())
    return outcome


def explain(job: dict[str, Any]) -> str:
    return "\n".join(f"--- {s['name']}: exit {s['code']}\n{(s['output'] or '')[-1500:]}" for s in job["steps"])


def step(job: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in job["steps"] if s["name"].startswith(name))


def test_the_github_template_runs_as_written_and_its_jobs_assert_what_they_expect(dockerd: Any, wheel: Path) -> None:
    template = CI / "github-actions.yml"
    include = __import__("yaml").safe_load(template.read_text())["jobs"]["chaos"]["strategy"]["matrix"]["include"]
    broken = [
        {"profile": "no-such-profile", "expect": "consistent"},  # chaosvol does not start: the job must say so, at once
        {"profile": "passthrough", "expect": "inconsistent"},  # a canary that finds nothing must fail
    ]
    result = run_template("github", template, wheel, "--matrix", json.dumps([*include, *broken]))
    jobs = {job["matrix"]["profile"]: job for job in result["jobs"]}
    for entry in include:
        job = jobs[entry["profile"]]
        assert job["ok"], explain(job)
        assert "as expected" in step(job, "Audit")["output"], explain(job)
        assert step(job, "Keep the event log")["code"] == 0, explain(job)
    assert {e["expect"] for e in include} == {"consistent", "inconsistent"}

    no_start = jobs["no-such-profile"]
    assert not no_start["ok"]
    start = step(no_start, "Start chaosvol")
    assert start["code"] == 1 and "chaosvol did not start" in start["output"] and "no shipped profile named" in start["output"], explain(no_start)
    assert step(no_start, "Workload")["code"] is None  # skipped: nothing ran against a proxy that is not there

    blind = jobs["passthrough"]
    assert not blind["ok"]
    assert "the audit did not find what passthrough makes" in step(blind, "Audit")["output"], explain(blind)


def test_the_gitlab_template_runs_its_parallel_jobs_on_one_dockerd_and_leaves_nothing_behind(dockerd: Any, wheel: Path) -> None:
    result = run_template("gitlab", CI / "gitlab-ci.yml", wheel)
    jobs = result["jobs"]
    assert len(jobs) >= 4 and len({job["driver"] for job in jobs}) == len(jobs)  # one driver name per job running at once
    for job in jobs:
        assert job["ok"], explain(job)
        assert "as expected" in job["steps"][0]["output"], explain(job)
        assert job["steps"][1]["code"] == 0, explain(job)  # after_script
        assert job["missing_artifacts"] == [], job["missing_artifacts"]
    left = result["left"]
    # No volume, socket, job directory or chaosvol process of any job remains. (dockerd itself
    # keeps each legacy driver name until it restarts, which costs a `docker volume ls` 15 s:
    # left["volume_ls_seconds"]; the template bounds those names to the runner's slots.)
    assert (left["volumes"], left["sockets"], left["job_dirs"], left["processes"]) == ([], [], [], []), left
