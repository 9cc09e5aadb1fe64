"""Running the checks against one plugin, cleaning up, and saying what was found: a line per
check, a summary, JSON, JUnit XML."""

from __future__ import annotations

import secrets
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from chaosvol.backends.directory import DirectoryBackend
from chaosvol.backends.spec import Address, find_plugin, parse_address
from chaosvol.core.engine import ChaosEngine
from chaosvol.core.errors import UsageError, unwrapped
from chaosvol.core.profile import PASSTHROUGH
from chaosvol.core.protocol import Operation
from chaosvol.proxy.server import PluginServer
from chaosvol.proxy.settings import ServeSettings
from chaosvol.proxy.state import ProxyState
from chaosvol.tools.conform.checks import CHECKS, CheckFailed, Context, Result
from chaosvol.tools.conform.client import ConformClient
from chaosvol.tools.conform.shapes import Shape


class CannotRun(Exception):
    """The plugin cannot be checked at all (unreachable, not a volume plugin): exit 2."""


@dataclass
class Outcome:
    backend: str
    daemon: Shape
    prefix: str
    results: list[Result] = field(default_factory=list)
    left_behind: list[str] = field(default_factory=list)  # volumes clean-up could not remove

    def count(self, status: str) -> int:
        return sum(result.status == status for result in self.results)

    @property
    def failed(self) -> bool:
        return self.count("FAIL") > 0

    def summary(self) -> str:
        return (f"{self.count('PASS')} passed, {self.count('FAIL')} failed, {self.count('WARN')} warnings, "
                f"{self.count('SKIP')} skipped")

    def to_json(self) -> dict[str, Any]:
        return {
            "backend": self.backend, "daemon": self.daemon.name, "prefix": self.prefix,
            "results": [{"check": r.check, "status": r.status, "message": r.message} for r in self.results],
            "summary": {s.lower(): self.count(s) for s in ("PASS", "FAIL", "WARN", "SKIP")},
            "left_behind": self.left_behind,
        }

    def junit(self) -> bytes:
        """JUnit XML: a testsuite of one testcase per check (WARN passes, with its message)."""
        suite = ET.Element("testsuite", {
            "name": f"chaosvol conform ({self.daemon.name})", "tests": str(len(self.results)),
            "failures": str(self.count("FAIL")), "errors": "0", "skipped": str(self.count("SKIP")),
        })
        ET.SubElement(ET.SubElement(suite, "properties"), "property", {"name": "backend", "value": self.backend})
        for result in self.results:
            case = ET.SubElement(suite, "testcase", {"classname": f"conform.{self.daemon.name}", "name": result.check})
            if result.status == "FAIL":
                ET.SubElement(case, "failure", {"message": result.message, "type": "FAIL"}).text = result.message
            elif result.status == "SKIP":
                ET.SubElement(case, "skipped", {"message": result.message})
            else:
                ET.SubElement(case, "system-out").text = f"{result.status}: {result.message}"
        text: bytes = ET.tostring(suite, encoding="utf-8", xml_declaration=True)
        return text


def select(only: Sequence[str], skip: Sequence[str]) -> list[str]:
    """The ids to run, in their order.

    Raises:
        UsageError: an id that is no check.
    """
    known = [spec.id for spec in CHECKS]
    for given in (*only, *skip):
        if given not in known:
            raise UsageError(f"no check named {given!r}; the checks are: {', '.join(known)}")
    return [check_id for check_id in known if (not only or check_id in only) and check_id not in skip]


async def conform(
    backend: str,
    shape: Shape,
    *,
    ids: Sequence[str],
    prefix: str | None = None,
    opts: dict[str, str] | None = None,
    restart_cmd: str | None = None,
    progress: Callable[[str], None] = lambda line: None,
) -> Outcome:
    """Run the checks `ids` against `backend` with `shape`'s requests.

    Raises:
        CannotRun: nothing answers at the address, or it is not a volume plugin.
        UsageError: `backend` is no backend spec.
    """
    prefix = prefix or f"chaosvol-conform-{secrets.token_hex(3)}"
    outcome = Outcome(backend, shape, prefix)
    async with _reachable(backend) as address:
        client = ConformClient(address, shape)
        ctx = Context(client, prefix, opts=dict(opts or {}), restart_cmd=restart_cmd)
        try:
            first = await client.call(Operation.ACTIVATE)
            if first.error is not None:
                raise CannotRun(f"{backend}: {first.error}")
            if first.status != 200 or not isinstance(first.field("Implements"), list):
                raise CannotRun(f"{backend} is not a volume plugin: Plugin.Activate answered {first.describe()}")
            chosen = [spec for spec in CHECKS if spec.id in ids]
            for index, spec in enumerate(chosen, 1):
                progress(f"[{index}/{len(chosen)}] {spec.id}: {spec.what}")
                try:
                    result = await spec.run(ctx)
                except CheckFailed as verdict:
                    result = Result(verdict.status, spec.id, str(verdict))
                outcome.results.append(result)
                progress(f"[{index}/{len(chosen)}] {result}")
        finally:
            outcome.left_behind = await _clean_up(ctx)
            await client.aclose()
    return outcome


async def _clean_up(ctx: Context) -> list[str]:
    """Unmount and remove every volume of the run's prefix the plugin still lists; what could
    not be removed."""
    client = ctx.client
    for name, ids in ctx.mounted.items():
        for mount_id in list(ids):
            await client.call(Operation.UNMOUNT, {"Name": name, "ID": mount_id})
    try:
        listed = ctx.mine(await ctx.listed())
    except CheckFailed:
        listed = set()
    left = []
    for name in sorted(listed | {n for n in ctx.created if (await ctx.get(n)).field("Volume") is not None}):
        answer = await client.call(Operation.REMOVE, {"Name": name})
        if not answer.ok:
            left.append(f"{name}: {answer.describe()}")
    return left


@asynccontextmanager
async def _reachable(backend: str) -> AsyncIterator[Address]:
    """The address to check. `builtin:DIR` is served on a socket of its own for the run (the
    built-in backend through chaosvol's own server, as `chaosvol backend` serves it)."""
    if backend.startswith("builtin:"):
        root = backend.removeprefix("builtin:")
        if not root:
            raise UsageError("--backend builtin: needs a directory, as in builtin:/tmp/volumes")
        with tempfile.TemporaryDirectory(prefix="chaosvol-conform-") as directory:
            socket = str(Path(directory) / "builtin.sock")
            state = ProxyState(ServeSettings("conform", socket, backend), DirectoryBackend(root), ChaosEngine(PASSTHROUGH))
            server = PluginServer(state)
            with unwrapped():
                async with trio.open_nursery() as nursery:
                    await nursery.start(server.serve)
                    try:
                        yield Address(path=socket)
                    finally:
                        server.shut_down(0)
        return
    if "://" in backend:
        address = parse_address(backend)
    else:
        try:
            address = find_plugin(backend)
        except FileNotFoundError as exc:
            raise CannotRun(str(exc.strerror or exc)) from exc
    yield address
