"""chaosvol sweep: run a workload once per k, failing only the k-th matching call each time.

Run 0 is the baseline: the workload under the base profile alone (pass-through without one),
counting the calls that match `--op` (and `--volume`). Then, for k = 1..N, the same workload with
one more rule put first: match the same calls, `after: k-1`, `times: 1`, the chosen action. So
run k is the baseline with exactly one fault, on the k-th matching call. After each run:
the workload's exit status, which call was hit (from the event log), and what `chaosvol audit`
finds; then a clean-up, so that run k+1 starts where run 0 started.

One proxy serves the whole sweep (dockerd sees one plugin that stays up); each run loads its
profile into it. With the default backend each run gets a fresh built-in backend directory; a
given `--backend` is shared, and cleaned by removing what the run left in it.

Clean-up between runs (the proxy paused, so nothing is injected): containers that use a volume
of the driver are removed, then the driver's volumes (`docker volume rm -f`), then whatever the
backend still holds (a Remove sent to it directly). Last, every name the run's calls named is
forced out of dockerd once more (`docker volume rm -f`, after its containers): what a fault left
in dockerd's cache and metadata while the backend no longer has it (a stale entry that `ls` does
not show while List works, a `local` volume that shadows the plugin's), which would otherwise
change the calls of the next run (a stale entry costs the next `volume create` one more Get). It
touches nothing else.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol
from urllib.parse import quote

import trio
import trio.lowlevel
import yaml

from chaosvol.backends import Backend
from chaosvol.backends.directory import DirectoryBackend
from chaosvol.backends.spec import open_backend
from chaosvol.core.engine import ChaosEngine
from chaosvol.core.errors import BackendError, ProfileError, UsageError, unwrapped
from chaosvol.core.events import CallEvent
from chaosvol.core.profile import PASSTHROUGH, Profile, parse_profile
from chaosvol.core.protocol import OPERATION_BY_NAME, Operation, PluginCall
from chaosvol.proxy.eventlog import EventLog
from chaosvol.proxy.server import PluginServer
from chaosvol.proxy.settings import ServeSettings
from chaosvol.proxy.state import ProxyState
from chaosvol.tools.audit import DaemonView, Finding, LogView, audit

log = logging.getLogger(__name__)

SWEEP_RULE: Final = "chaosvol-sweep"
TAIL_LINES: Final = 8


@dataclass(frozen=True, slots=True)
class SweepSpec:
    operation: str
    action: str  # the action as YAML (a word, or `{error: {when: after}}`)
    command: tuple[str, ...]
    base: Profile = PASSTHROUGH
    volume: str | None = None
    name: str = "chaosvol"
    socket_path: str = "/run/docker/plugins/chaosvol.sock"
    backend: str | None = None  # None: a fresh built-in backend per run
    docker_host: str | None = None
    audit: bool = True
    timeout: float = 600.0
    work: Path = Path("/tmp")
    max_runs: int | None = None
    podman: tuple[str, ...] | None = None  # the daemon is Podman, run by this command

    def bench(self) -> Workbench:
        return Workbench(self.name, self.socket_path, self.command, self.work, self.backend, self.docker_host, self.audit,
                         self.timeout, self.podman)


@dataclass(slots=True)
class RunResult:
    k: int
    exit_status: int | None  # None: killed after the timeout
    seconds: float
    hit: CallEvent | None = None  # the call the sweep rule fired on
    findings: list[Finding] = field(default_factory=list)
    matching_calls: int = 0
    output: Path | None = None
    cleanup_problems: list[str] = field(default_factory=list)

    @property
    def broke(self) -> bool:
        return self.exit_status != 0

    @property
    def bad(self) -> bool:
        return self.broke or bool(self.findings)


def sweep_rule_yaml(spec: SweepSpec, k: int | None) -> str:
    """The rule that fires on the k-th matching call only (k None: counts, never fires)."""
    match = {"op": spec.operation} | ({"volume": spec.volume} if spec.volume is not None else {})
    try:
        action = yaml.safe_load(spec.action)  # `drop`, or `{error: {when: after}}`
    except yaml.YAMLError as exc:
        raise UsageError(f"--action {spec.action!r}: not YAML: {exc}") from None
    rule: dict[str, Any] = {"name": SWEEP_RULE, "match": match, "after": (k - 1) if k else 0, "times": 1 if k else 0, "action": action}
    return json.dumps({"version": 1, "rules": [rule]})


def sweep_profile(spec: SweepSpec, k: int | None) -> Profile:
    """The base profile with the sweep rule put first.

    Raises:
        UsageError: the operation, volume or action is not valid (said as `chaosvol check` would).
    """
    try:
        rule = parse_profile(sweep_rule_yaml(spec, k), "--op/--action").rules[0]
    except ProfileError as exc:
        problems = "; ".join(f"{p.where.removeprefix('rules[0].')}: {p.message}" for p in exc.problems)
        raise UsageError(f"--op {spec.operation} --action {spec.action!r}: {problems}") from None
    if any(existing.name == SWEEP_RULE for existing in spec.base.rules):
        raise UsageError(f"the base profile already has a rule named {SWEEP_RULE!r}")
    return dataclasses.replace(spec.base, rules=(rule, *spec.base.rules), source=f"sweep k={k or 0} + {spec.base.source}")


@dataclass(frozen=True, slots=True)
class Workbench:
    """What sweep and explore share around a workload's runs: the proxy they run it through, a
    backend per run, the audit after it and the clean-up before the next."""

    name: str
    socket_path: str
    command: tuple[str, ...]
    work: Path
    backend: str | None = None  # None: a fresh built-in backend per run
    docker_host: str | None = None
    audit: bool = True
    timeout: float = 600.0
    podman: tuple[str, ...] | None = None  # the daemon is Podman, run by this command (with its global options)

    @property
    def daemon(self) -> Daemon:
        """The daemon the runs are audited against and cleaned in."""
        return PodmanDaemon(self.podman) if self.podman is not None else Dockerd(self.docker_host)

    @property
    def uses_daemon(self) -> bool:
        """Whether runs are audited or cleaned in a daemon: audited, or one named."""
        return self.audit or self.docker_host is not None or self.podman is not None

    def check_daemon(self) -> None:
        """Raises:
            UsageError: the daemon the runs need cannot be reached (said before any run)."""
        if self.uses_daemon:
            self.daemon.view()

    def backend_for(self, label: str) -> tuple[Backend, str]:
        if self.backend is not None:
            return open_backend(self.backend, own_socket=self.socket_path), self.backend
        root = self.work / f"backend-{label}"
        return DirectoryBackend(root), f"builtin:{root}"

    @asynccontextmanager
    async def proxy(self, profile: Profile, events: EventLog) -> AsyncIterator[ProxyState]:
        """The proxy every run goes through, serving until the block ends."""
        backend, _ = self.backend_for("0")
        settings = ServeSettings(self.name, self.socket_path, backend.name, None, shutdown_grace=2.0)
        state = ProxyState(settings, backend, ChaosEngine(profile), events)
        server = PluginServer(state)
        with unwrapped():
            async with trio.open_nursery() as nursery:
                await nursery.start(server.serve)
                try:
                    yield state
                finally:
                    server.shut_down()

    async def prepare(self, state: ProxyState, label: str, profile: Profile) -> str:
        """Ready the proxy for a run: its own backend (unless shared), `profile` in force; the
        backend's spec, for the audit."""
        backend, spec = self.backend_for(label)
        if self.backend is None:
            await (await state.use_backend(backend)).aclose()
        state.load(profile)
        state.resume()
        return spec

    async def run_workload(self, output: Path, env: dict[str, str]) -> tuple[int | None, float]:
        """The workload's exit status (None: killed after the timeout) and how long it took."""
        started = time.monotonic()
        exit_status: int | None = None
        with open(output, "wb") as sink:  # noqa: ASYNC230  a local file for the child to write to; opening it is instant
            with trio.move_on_after(self.timeout):
                done = await trio.run_process(
                    list(self.command), stdout=sink, stderr=sink, check=False, env=dict(os.environ, CHAOSVOL_DRIVER=self.name, **env)
                )
                exit_status = done.returncode
        return exit_status, time.monotonic() - started

    async def judge(self, state: ProxyState, first_seq: int, backend_spec: str) -> tuple[list[CallEvent], list[Finding], list[str]]:
        """After a run: its records, the audit's findings, and what the clean-up could not remove.
        The proxy is paused from here on: nothing is injected until the next run."""
        await trio.lowlevel.checkpoint()  # let the event log writer take the last records
        records = [CallEvent.from_json(record.to_json()) for record in state.recent.after(first_seq)]
        state.pause()
        findings = await self.audit_run(backend_spec, records) if self.audit else []
        return records, findings, await self.clean_up(state, sorted({r.volume for r in records if r.volume}))

    async def audit_run(self, backend_spec: str, records: list[CallEvent]) -> list[Finding]:
        from chaosvol.tools.inventory import backend_view

        daemon = self.daemon
        view = await trio.to_thread.run_sync(daemon.view)
        backend = await trio.to_thread.run_sync(backend_view, backend_spec)
        return audit(self.name, view, backend, LogView.from_records(records, podman=daemon.podman))

    async def clean_up(self, state: ProxyState, names: Sequence[str] = ()) -> list[str]:
        """Remove what the run left: containers on the driver's volumes, the volumes, what the
        backend still holds, then what dockerd still keeps under `names` (the volumes the run's
        calls named). Returns what could not be removed."""
        problems: list[str] = []
        daemon = self.daemon
        if self.uses_daemon:
            problems += await trio.to_thread.run_sync(daemon.clean, self.name)
        listed = await _backend_call(state.backend, PluginCall.build(Operation.LIST))
        value = listed.decoded() if listed is not None else None
        for entry in (value or {}).get("Volumes") or [] if isinstance(value, dict) else []:
            name = entry.get("Name") if isinstance(entry, dict) else None
            if isinstance(name, str):
                reply = await _backend_call(state.backend, PluginCall.build(Operation.REMOVE, name))
                if reply is None or reply.is_error:
                    problems.append(f"backend volume {name}: {reply.err if reply is not None else 'no answer'}")
        if self.uses_daemon and names:
            await trio.to_thread.run_sync(daemon.forget, names)
        return problems


class Sweep:
    def __init__(self, spec: SweepSpec, progress: Callable[[str], None]) -> None:
        self.spec = spec
        self.progress = progress
        self.events_path = spec.work / "events.jsonl"
        self.results: list[RunResult] = []
        self.bench = spec.bench()

    async def run(self) -> list[RunResult]:
        spec = self.spec
        sweep_profile(spec, None)  # refuse a bad --op/--action before starting anything
        async with self.bench.proxy(sweep_profile(spec, None), EventLog.open(str(self.events_path))) as state:
            baseline = await self.one_run(state, 0)
            total = baseline.matching_calls
            runs = total if spec.max_runs is None else min(total, spec.max_runs)
            self.progress(
                f"baseline: exit {baseline.exit_status}, {total} matching {spec.operation} call(s), "
                f"audit {describe_findings(baseline, spec.audit)}; now {runs} run(s), one per k"
            )
            for k in range(1, runs + 1):
                self.progress(f"[{k}/{runs}] failing {spec.operation} call #{k} with {spec.action}")
                result = await self.one_run(state, k)
                self.progress(f"[{k}/{runs}] {summary_line(result, spec.audit)}")
        return self.results

    async def one_run(self, state: ProxyState, k: int) -> RunResult:
        backend_spec = await self.bench.prepare(state, str(k), sweep_profile(self.spec, k if k else None))
        first_seq = state.recent.last_seq
        output = self.spec.work / f"run-{k}.log"
        exit_status, seconds = await self.bench.run_workload(output, {"CHAOSVOL_SWEEP_K": str(k)})
        result = RunResult(k, exit_status, seconds, output=output)
        result.matching_calls = state.engine.statistics().rules[SWEEP_RULE].matched
        records, result.findings, result.cleanup_problems = await self.bench.judge(state, first_seq, backend_spec)
        result.hit = next((r for r in records if r.rule == SWEEP_RULE), None)
        self.results.append(result)
        return result


async def _backend_call(backend: Backend, call: PluginCall) -> Any:
    try:
        with trio.move_on_after(30):
            return await backend.call(call)
    except BackendError as exc:
        log.warning("sweep clean-up: %s: %s", call, exc)
    return None


class Daemon(Protocol):
    """The daemon a workload's runs go through: its view for the audit, and its clean-up."""

    @property
    def podman(self) -> bool: ...

    def view(self) -> DaemonView: ...

    def clean(self, driver: str) -> list[str]:
        """Remove the driver's volumes (and the containers that use them); what could not be."""
        ...

    def forget(self, names: Sequence[str]) -> None:
        """Force `names` out of the daemon once the backend no longer has them: a forced removal
        looks each name up, finds nothing and drops what the daemon kept (a stale entry, a
        shadowing `local` volume, a Podman phantom). Nothing to report: a name the daemon does
        not know is the normal case."""
        ...


@dataclass(frozen=True, slots=True)
class Dockerd:
    host: str | None  # None: DOCKER_HOST, then the default socket

    @property
    def podman(self) -> bool:
        return False

    def view(self) -> DaemonView:
        from chaosvol.tools.daemon import daemon_view

        return daemon_view(self.host)

    def clean(self, driver: str) -> list[str]:
        with _docker_client(self.host) as client:
            names = [v["Name"] for v in client.api.volumes().get("Volumes") or [] if v.get("Driver") == driver]
            return _remove_volumes(client, names)

    def forget(self, names: Sequence[str]) -> None:
        with _docker_client(self.host) as client:
            _remove_volumes(client, names)


@dataclass(frozen=True, slots=True)
class PodmanDaemon:
    command: tuple[str, ...]  # podman with its global options

    @property
    def podman(self) -> bool:
        return True

    def view(self) -> DaemonView:
        from chaosvol.tools.podman import podman_view

        return podman_view(self.command)

    def clean(self, driver: str) -> list[str]:
        # Listing Podman's volumes asks the plugin for each (and fails whole on one failed Get):
        # the names the run's calls named, given to forget(), are the volumes it can hold.
        return []

    def forget(self, names: Sequence[str]) -> None:
        for name in names:
            containers = self._podman("ps", "-aq", "--filter", f"volume={name}").stdout.split()
            if containers:
                self._podman("rm", "-f", *containers)
            self._podman("volume", "rm", "-f", name)  # silent, exit 0, for a name Podman does not have

    def _podman(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.command, *args], capture_output=True, text=True, timeout=120, check=False)


@contextmanager
def _docker_client(docker_host: str | None) -> Iterator[Any]:
    """A Docker SDK client; dockerd out of reach is a UsageError (one line), not a crash."""
    import docker
    from docker.errors import DockerException
    from requests import RequestException

    try:
        client = docker.DockerClient(base_url=docker_host) if docker_host else docker.from_env()
        try:
            yield client
        finally:
            client.close()
    except (DockerException, RequestException) as exc:
        raise UsageError(f"dockerd at {docker_host or os.environ.get('DOCKER_HOST') or 'the default socket'}: "
                         f"cannot clean up after a run: {exc}") from exc


def _remove_volumes(client: Any, names: Sequence[str]) -> list[str]:
    """`docker rm -f` of the containers that use each volume, then `docker volume rm -f`; what failed."""
    from docker.errors import DockerException

    problems: list[str] = []
    for name in names:
        for container in client.api.containers(all=True, filters={"volume": name}):
            try:
                client.api.remove_container(container["Id"], force=True)
            except DockerException as exc:
                problems.append(f"container {container['Id'][:12]}: {exc}")
        problem = _force_remove_volume(client, name)
        if problem:
            problems.append(f"volume {name}: {problem}")
    return problems


def _force_remove_volume(client: Any, name: str) -> str:
    """`DELETE /volumes/NAME?force=1`: what went wrong, or "". The Docker SDK's
    `remove_volume(name, force=True)` does not send `force` (7.x builds its URL without the
    parameters): dockerd then keeps a volume whose Remove failed, which is what the clean-up is
    there to purge."""
    from requests import RequestException

    url = f"{client.api.base_url}/v{client.api.api_version}/volumes/{quote(name, safe='')}"
    try:
        answer = client.api.delete(url, params={"force": "1"})
    except RequestException as exc:
        return str(exc)
    if answer.status_code in (200, 204, 404):
        return ""
    try:
        return str(answer.json().get("message", answer.text))
    except ValueError:
        return str(answer.text)


def describe_findings(result: RunResult, audited: bool) -> str:
    if not audited:
        return "not audited"
    if not result.findings:
        return "consistent"
    return "; ".join(f"{f.kind} {f.volume}" for f in result.findings)


def describe_hit(result: RunResult) -> str:
    hit = result.hit
    if hit is None:
        return "(none: the call did not come)"
    volume = f" {hit.volume}" if hit.volume else ""
    return f"{hit.op}{volume} (seq {hit.seq})"


def describe_exit(result: RunResult) -> str:
    return "timeout" if result.exit_status is None else str(result.exit_status)


def summary_line(result: RunResult, audited: bool) -> str:
    return f"hit {describe_hit(result)}: exit {describe_exit(result)}, audit {describe_findings(result, audited)}"


def table(results: Sequence[RunResult], audited: bool) -> str:
    rows = [("K", "CALL HIT", "EXIT", "AUDIT")]
    for result in results:
        hit = "(baseline: no fault)" if result.k == 0 else describe_hit(result)
        rows.append((str(result.k), hit, describe_exit(result), describe_findings(result, audited)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() + "\n" for row in rows)


def tail(path: Path | None, lines: int = TAIL_LINES) -> str:
    if path is None:
        return ""
    try:
        text = path.read_text(errors="replace").rstrip("\n").splitlines()
    except OSError:
        return ""
    return "\n".join(f"    | {line}" for line in text[-lines:])


def check_operation(operation: str) -> str:
    if operation not in OPERATION_BY_NAME:
        raise UsageError(f"--op {operation!r}: allowed: {', '.join(OPERATION_BY_NAME)}")
    return operation


def print_report(results: Sequence[RunResult], spec: SweepSpec, stream: Any = sys.stdout) -> int:
    """The table, then the runs that went wrong with their output's last lines; exit status."""
    print(table(results, spec.audit), end="", file=stream)
    bad = [r for r in results if r.k > 0 and r.bad]
    for result in results:
        if result.bad:
            print(f"\nk={result.k}: {summary_line(result, spec.audit)}; output {result.output}", file=stream)
            if result.broke:
                print(tail(result.output), file=stream)
        for problem in result.cleanup_problems:
            print(f"k={result.k}: clean-up left {problem}", file=stream)
    baseline = results[0] if results else None
    if baseline is not None and baseline.bad:
        print("\nthe baseline itself failed or was inconsistent: fix the workload first", file=stream)
        return 1
    print(f"\n{len(bad)} of {len(results) - 1} run(s) broke the workload or left an inconsistency", file=stream)
    return 1 if bad else 0
