"""Run a CI template's jobs the way GitHub Actions or GitLab CI would, against a private dockerd.

    unshare --mount --propagation private -- python -m tests.support.ci_runner \\
        github|gitlab TEMPLATE RESULT.json [--set NAME=VALUE ...] [--matrix JSON]

Run inside a private mount namespace (the command above): /run/docker/plugins is a fresh tmpfs,
so the plugin sockets the jobs create are seen by this runner's dockerd only.

* GitHub Actions: each matrix job runs as on its own fresh VM (its own dockerd, /run/docker/plugins
  and /tmp/chaosvol-volumes); `run:` steps in `bash --noprofile --norc -eo pipefail`, in order, a
  failed step skipping the rest but for `if: always()`, `continue-on-error` honoured, processes a
  step leaves in the background kept until the job ends; `${{ }}` expressions of matrix, github,
  runner and env; `actions/checkout` and `setup-python` done by the runner (a workspace, and a
  venv first on PATH), `upload-artifact` checks that its paths exist.
* GitLab CI: the `parallel: matrix:` jobs run at the same time on one machine and one dockerd, as
  on one shell runner; `variables` expanded as GitLab does; `script` in one bash with `set -eo
  pipefail`, `after_script` in a new one, always; then what the jobs left behind is listed.

`sudo` is a shim that runs the command (the runner is root). `--set` gives the variables a
template asks its user to set (CHAOSVOL_SOURCE); `--matrix` replaces a GitHub matrix's entries.
The result is JSON: each job's steps with exit status and output, and what was left behind.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from chaosvol.testing.private_dockerd import IMAGE, PrivateDockerd

PLUGINS = Path("/run/docker/plugins")
STEP_TIMEOUT = 300.0


class Machine:
    """What a job runs on: a private dockerd, a `sudo` that runs the command, a python venv."""

    def __init__(self, root: Path, python_bin: Path) -> None:
        self.root = root
        self.bin = root / "bin"
        self.bin.mkdir(parents=True, exist_ok=True)
        sudo = self.bin / "sudo"
        sudo.write_text('#!/bin/sh\n[ "$1" = "--" ] && shift\nexec "$@"\n')
        sudo.chmod(0o755)
        self.python_bin = python_bin
        self.dockerd: PrivateDockerd | None = None
        self.groups: list[int] = []

    def boot(self) -> None:
        subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(PLUGINS)], check=True)
        self.dockerd = PrivateDockerd.start()
        self.dockerd.docker("tag", IMAGE, "busybox:latest")  # what `docker pull busybox` gives a hosted runner

    def shut_down(self) -> None:
        for group in self.groups:  # what the job's steps left running
            try:
                os.killpg(group, signal.SIGTERM)
            except ProcessLookupError:
                pass
        time.sleep(0.5)
        for group in self.groups:
            try:
                os.killpg(group, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.groups.clear()
        if self.dockerd is not None:
            self.dockerd.stop()
            self.dockerd = None
        subprocess.run(["umount", "-l", str(PLUGINS)], check=False)

    def environment(self, extra: dict[str, str]) -> dict[str, str]:
        assert self.dockerd is not None
        path = f"{self.bin}:{self.python_bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        home = os.environ.get("HOME", str(self.root))  # pip's cache: a runner keeps one too
        return {"PATH": path, "HOME": home, "LANG": "C.UTF-8", "DOCKER_HOST": self.dockerd.host, "CI": "true", **extra}

    def run_shell(self, argv: list[str], script: str, env: dict[str, str], cwd: Path, log: Path) -> int:
        """One shell, its output to `log`; what it leaves in the background lives on until the
        job ends (its process group is kept)."""
        with open(log, "w") as output:
            process = subprocess.Popen([*argv, script], env=env, cwd=cwd, stdout=output, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True)
            self.groups.append(process.pid)
            try:
                return process.wait(STEP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                return 124


# -- GitHub Actions ------------------------------------------------------------------------------

EXPRESSION = re.compile(r"\$\{\{\s*([^}]+?)\s*\}\}")


def github_jobs(workflow: dict[str, Any], matrix: list[dict[str, Any]] | None) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(job id, job, matrix values) for every job of the workflow, each matrix entry its own."""
    out = []
    for job_id, job in workflow["jobs"].items():
        spec = (job.get("strategy") or {}).get("matrix") or {}
        entries = matrix if matrix is not None else list(spec.get("include") or [])
        axes = {k: v for k, v in spec.items() if k not in ("include", "exclude")}
        if matrix is None and axes:
            entries += [dict(zip(axes, values)) for values in itertools.product(*axes.values())]
        for entry in entries or [{}]:
            out.append((job_id, job, entry))
    return out


def expand(text: str, context: dict[str, Any]) -> str:
    def value(match: re.Match[str]) -> str:
        expression = match.group(1)
        node: Any = context
        for part in expression.split("."):
            if not isinstance(node, dict) or part not in node:
                raise KeyError(f"the runner cannot evaluate ${{{{ {expression} }}}}")
            node = node[part]
        return str(node)

    return EXPRESSION.sub(value, text)


def run_github(workflow: dict[str, Any], settings: dict[str, str], matrix: list[dict[str, Any]] | None, python_bin: Path) -> dict[str, Any]:
    results = []
    run_number = 7
    for job_id, job, entry in github_jobs(workflow, matrix):
        root = Path(tempfile.mkdtemp(prefix="cvgh", dir="/tmp"))
        workspace, runner_temp = root / "workspace", root / "runner-temp"
        workspace.mkdir()
        runner_temp.mkdir()
        machine = Machine(root, python_bin)
        steps: list[dict[str, Any]] = []
        backend_dir = Path("/tmp/chaosvol-volumes")  # the template's BACKEND: fresh per VM
        backend_dir.mkdir(exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(backend_dir)], check=True)
        try:
            machine.boot()
            env_values = {**{k: str(v) for k, v in (workflow.get("env") or {}).items()}, **settings}
            context = {"matrix": entry, "github": {"run_number": run_number}, "runner": {"temp": str(runner_temp)}, "env": env_values}
            env_values = {k: expand(v, context) for k, v in env_values.items()}
            env_values.update({k: expand(str(v), context) for k, v in (job.get("env") or {}).items()})
            base = machine.environment({**env_values, "RUNNER_TEMP": str(runner_temp), "GITHUB_ACTIONS": "true",
                                        "GITHUB_RUN_NUMBER": str(run_number), "GITHUB_WORKSPACE": str(workspace)})
            failed = False
            for number, step in enumerate(job["steps"]):
                name = step.get("name") or step.get("uses") or f"step {number}"
                condition = str(step.get("if", "success()"))
                if failed and "always()" not in condition:
                    steps.append({"name": name, "code": None, "output": "skipped: an earlier step failed"})
                    continue
                if "uses" in step:
                    code, output = github_action(step, context)
                else:
                    env = {**base, **{k: expand(str(v), context) for k, v in (step.get("env") or {}).items()}}
                    log = root / f"step-{number}.log"
                    code = machine.run_shell(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c"], expand(step["run"], context), env, workspace, log)
                    output = log.read_text(errors="replace")
                steps.append({"name": name, "code": code, "output": output})
                if code != 0 and not step.get("continue-on-error"):
                    failed = True
            results.append({"job": job_id, "matrix": entry, "ok": not failed, "steps": steps})
        finally:
            machine.shut_down()
            subprocess.run(["umount", "-l", str(backend_dir)], check=False)
            shutil.rmtree(root, ignore_errors=True)
    return {"jobs": results}


def github_action(step: dict[str, Any], context: dict[str, Any]) -> tuple[int, str]:
    action = str(step["uses"]).split("@")[0]
    if action in ("actions/checkout", "actions/setup-python"):
        return 0, f"{action}: done by the runner"
    if action == "actions/upload-artifact":
        paths = [expand(line.strip(), context) for line in str((step.get("with") or {}).get("path", "")).splitlines() if line.strip()]
        missing = [p for p in paths if not os.path.exists(p)]
        return (1 if missing or not paths else 0), f"{action}: {len(paths) - len(missing)} of {len(paths)} paths exist; missing: {missing}"
    return 1, f"{action}: the runner does not know this action"


# -- GitLab CI -----------------------------------------------------------------------------------


def gitlab_jobs(pipeline: dict[str, Any]) -> list[tuple[str, dict[str, Any], dict[str, str]]]:
    out = []
    for name, job in pipeline.items():
        if not isinstance(job, dict) or "script" not in job:
            continue
        matrix = ((job.get("parallel") or {}).get("matrix")) or [{}]
        for entry in matrix:
            axes = {k: v if isinstance(v, list) else [v] for k, v in entry.items()}
            for values in itertools.product(*axes.values()):
                out.append((name, job, {k: str(v) for k, v in zip(axes, values)}))
    return out


def gitlab_expand(text: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: env.get(m.group(1), m.group(0)), text)


def run_gitlab(pipeline: dict[str, Any], settings: dict[str, str], python_bin: Path) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="cvgl", dir="/tmp"))
    machine = Machine(root, python_bin)
    jobs = gitlab_jobs(pipeline)
    first_id = 700000 + secrets.randbelow(100000)
    runner_id = str(90000 + secrets.randbelow(10000))  # names on the machine's /tmp stay this run's
    results: list[dict[str, Any]] = [{} for _ in jobs]
    try:
        machine.boot()

        def run_job(index: int, name: str, job: dict[str, Any], matrix: dict[str, str]) -> None:
            job_id = str(first_id + index)
            project = root / f"builds-{job_id}"
            project.mkdir()
            env = {"CI": "true", "GITLAB_CI": "true", "CI_JOB_ID": job_id, "CI_PIPELINE_IID": "7", "CI_PROJECT_DIR": str(project),
                   "CI_RUNNER_ID": runner_id, "CI_CONCURRENT_ID": str(index),
                   "CI_JOB_NAME": f"{name}: [{', '.join(matrix.values())}]", **matrix}
            for key, value in (job.get("variables") or {}).items():
                env[key] = settings.get(key) or gitlab_expand(str(value), env)
            base = machine.environment(env)
            steps = []
            script = "\n".join(str(line) for line in job["script"])
            log = root / f"{job_id}-script.log"
            code = machine.run_shell(["bash", "--noprofile", "--norc", "-c"], "set -eo pipefail\n" + script, base, project, log)
            steps.append({"name": "script", "code": code, "output": log.read_text(errors="replace")})
            if job.get("after_script"):
                after = "\n".join(str(line) for line in job["after_script"])
                log = root / f"{job_id}-after.log"
                after_code = machine.run_shell(["bash", "--noprofile", "--norc", "-c"], after, base, project, log)
                steps.append({"name": "after_script", "code": after_code, "output": log.read_text(errors="replace")})
            artifacts = [p for p in (job.get("artifacts") or {}).get("paths") or [] if not (project / p).exists()]
            results[index] = {"job": env["CI_JOB_NAME"], "job_id": job_id, "matrix": matrix, "ok": code == 0,
                              "steps": steps, "missing_artifacts": artifacts, "driver": env.get("DRIVER"), "dir": env.get("CV")}

        threads = [threading.Thread(target=run_job, args=(i, *job)) for i, job in enumerate(jobs)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert machine.dockerd is not None
        started = time.monotonic()
        listed = machine.dockerd.docker("volume", "ls", "--format", "{{.Driver}} {{.Name}}").stdout.split("\n")
        ls_seconds = time.monotonic() - started
        drivers = {r["driver"] for r in results}
        left = {
            "volumes": [line for line in listed if line.split(" ")[0] in drivers],
            "sockets": sorted(p.name for p in PLUGINS.iterdir()),
            "job_dirs": sorted(r["dir"] for r in results if r["dir"] and Path(r["dir"]).exists()),
            "processes": [line for line in subprocess.run(["ps", "-eo", "args"], check=False, capture_output=True, text=True).stdout.splitlines()
                          if any(f"serve --name {d} " in line for d in drivers)],
            "volume_ls_seconds": round(ls_seconds, 2),
        }
        return {"jobs": results, "left": left}
    finally:
        machine.shut_down()
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="ci_runner")
    parser.add_argument("system", choices=["github", "gitlab"])
    parser.add_argument("template")
    parser.add_argument("result")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--matrix", help="a JSON list of matrix entries replacing the template's")
    args = parser.parse_args(argv)
    settings = dict(item.split("=", 1) for item in args.set)
    document = yaml.safe_load(Path(args.template).read_text())
    python_bin = Path(tempfile.mkdtemp(prefix="cvpy", dir="/tmp"))
    try:
        # setup-python's interpreter: a venv of its own, so that `pip install` touches nothing else
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(python_bin)], check=True, env={**os.environ, "PATH": "/usr/bin:/bin"})
        if args.system == "github":
            result = run_github(document, settings, json.loads(args.matrix) if args.matrix else None, python_bin / "bin")
        else:
            result = run_gitlab(document, settings, python_bin / "bin")
    finally:
        shutil.rmtree(python_bin, ignore_errors=True)
    Path(args.result).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
