"""The README's two commands, as written, on a machine like a fresh Debian 12 where root has no
sudo; and as another user, where they run themselves again through sudo."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

REPO = Path(__file__).parents[2]


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Two commands"):]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block is not None
    return [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]


def without_sudo(tmp_path: Path) -> dict[str, str]:
    """The environment with a PATH that has no sudo on it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for directory in os.environ["PATH"].split(os.pathsep):
        for tool in Path(directory).glob("*") if Path(directory).is_dir() else ():
            if tool.name != "sudo" and not (bin_dir / tool.name).exists():
                (bin_dir / tool.name).symlink_to(tool)
    return {**os.environ, "PATH": str(bin_dir)}


def test_the_two_commands_are_the_demo_and_the_suite_with_no_sudo() -> None:
    assert readme_commands() == ["scripts/demo", "scripts/test"]


def test_the_demo_runs_as_written_as_root_without_sudo(dockerd: Any, tmp_path: Path) -> None:
    env = without_sudo(tmp_path)
    assert shutil.which("sudo", path=env["PATH"]) is None
    result = subprocess.run(["bash", "-c", readme_commands()[0]], check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "$ docker volume rm v1\nv1\n(exit status 0)" in out, out[-3000:]  # the dropped remove "succeeds"
    assert "chaosvol   v1" in out  # still listed
    assert "unknown-to-daemon v1" in out and "metadata-lost v1" in out
    assert "map[]" in out  # labels lost


def test_as_another_user_the_scripts_run_again_through_sudo(short_tmp: str) -> None:
    tmp_path = Path(short_tmp)  # pytest's own temporary tree is root's only: another user cannot enter it
    copy = tmp_path / "repo"
    (copy / "scripts").mkdir(parents=True)
    for name in ("demo", "test", "as-root.sh"):
        shutil.copy2(REPO / "scripts" / name, copy / "scripts" / name)
    fake = tmp_path / "fakebin"
    fake.mkdir()
    (fake / "sudo").write_text(f'#!/bin/sh\necho "sudo $*" > {tmp_path}/asked\n')
    (fake / "sudo").chmod(0o755)
    tmp_path.chmod(0o777)
    for directory in (copy, copy / "scripts", fake):
        directory.chmod(0o755)
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    for name in ("demo", "test"):
        script = copy / "scripts" / name
        result = subprocess.run([*nobody, "env", f"PATH={fake}:/usr/bin:/bin", str(script), "-k", "x"], check=False,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert (tmp_path / "asked").read_text() == f"sudo -- {script} -k x\n"
    result = subprocess.run([*nobody, "env", "PATH=/usr/bin:/bin", str(copy / "scripts" / "demo")], check=False, capture_output=True, text=True, timeout=60)
    if shutil.which("sudo", path="/usr/bin:/bin") is None:
        assert (result.returncode, result.stderr) == (2, "demo: needs root: run it as root (sudo is not installed here)\n")
