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
backend still holds (a Remove sent to it directly). It touches nothing else.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import trio
import trio.lowlevel
import yaml

from chaosvol.backends import Backend
from chaosvol.backends.directory import DirectoryBackend
from chaosvol.backends.spec import open_backend
from chaosvol.core.engine import ChaosEngine
from chaosvol.core.errors import BackendError, ProfileError, UsageError
from chaosvol.core.events import CallEvent
from chaosvol.core.profile import PASSTHROUGH, Profile, parse_profile
from chaosvol.core.protocol import OPERATION_BY_NAME, Operation, PluginCall
from chaosvol.proxy.eventlog import EventLog
from chaosvol.proxy.server import PluginServer
from chaosvol.proxy.settings import ServeSettings
from chaosvol.proxy.state import ProxyState
from chaosvol.tools.audit import Finding, LogView, audit

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


class Sweep:
    def __init__(self, spec: SweepSpec, progress: Callable[[str], None]) -> None:
        self.spec = spec
        self.progress = progress
        self.events_path = spec.work / "events.jsonl"
        self.results: list[RunResult] = []

    def backend_for(self, k: int) -> tuple[Backend, str]:
        if self.spec.backend is not None:
            return open_backend(self.spec.backend, own_socket=self.spec.socket_path), self.spec.backend
        root = self.spec.work / f"backend-{k}"
        return DirectoryBackend(root), f"builtin:{root}"

    async def run(self) -> list[RunResult]:
        spec = self.spec
        sweep_profile(spec, None)  # refuse a bad --op/--action before starting anything
        backend, backend_spec = self.backend_for(0)
        settings = ServeSettings(spec.name, spec.socket_path, backend.name, None, shutdown_grace=2.0)
        events = EventLog.open(str(self.events_path))
        state = ProxyState(settings, backend, ChaosEngine(sweep_profile(spec, None)), events)
        server = PluginServer(state)
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve)
            try:
                baseline = await self.one_run(state, 0, backend_spec)
                total = baseline.matching_calls
                runs = total if spec.max_runs is None else min(total, spec.max_runs)
                self.progress(
                    f"baseline: exit {baseline.exit_status}, {total} matching {spec.operation} call(s), "
                    f"audit {describe_findings(baseline, spec.audit)}; now {runs} run(s), one per k"
                )
                for k in range(1, runs + 1):
                    backend, backend_spec = self.backend_for(k)
                    if spec.backend is None:
                        await (await state.use_backend(backend)).aclose()
                    state.load(sweep_profile(spec, k))
                    state.resume()
                    self.progress(f"[{k}/{runs}] failing {spec.operation} call #{k} with {spec.action}")
                    result = await self.one_run(state, k, backend_spec)
                    self.progress(f"[{k}/{runs}] {summary_line(result, spec.audit)}")
            finally:
                server.shut_down()
        return self.results

    async def one_run(self, state: ProxyState, k: int, backend_spec: str) -> RunResult:
        spec = self.spec
        first_seq = state.recent.last_seq
        output = spec.work / f"run-{k}.log"
        started = time.monotonic()
        env = dict(os.environ, CHAOSVOL_SWEEP_K=str(k), CHAOSVOL_DRIVER=spec.name)
        exit_status: int | None = None
        with open(output, "wb") as sink:  # noqa: ASYNC230  a local file for the child to write to; opening it is instant
            with trio.move_on_after(spec.timeout):
                done = await trio.run_process(list(spec.command), stdout=sink, stderr=sink, check=False, env=env)
                exit_status = done.returncode
        result = RunResult(k, exit_status, time.monotonic() - started, output=output)
        await trio.lowlevel.checkpoint()  # let the event log writer take the last records
        records = [CallEvent.from_json(record.to_json()) for record in state.recent.after(first_seq)]
        result.hit = next((r for r in records if r.rule == SWEEP_RULE), None)
        result.matching_calls = state.engine.statistics().rules[SWEEP_RULE].matched
        state.pause()  # nothing is injected from here to the next run
        if spec.audit:
            result.findings = await self.audit(backend_spec, records)
        result.cleanup_problems = await self.clean_up(state)
        self.results.append(result)
        return result

    async def audit(self, backend_spec: str, records: list[CallEvent]) -> list[Finding]:
        from chaosvol.tools.daemon import daemon_view
        from chaosvol.tools.inventory import backend_view

        daemon = await trio.to_thread.run_sync(daemon_view, self.spec.docker_host)
        backend = await trio.to_thread.run_sync(backend_view, backend_spec)
        return audit(self.spec.name, daemon, backend, LogView.from_records(records))

    async def clean_up(self, state: ProxyState) -> list[str]:
        """Remove what the run left: containers on the driver's volumes, the volumes, and what the
        backend still holds. Returns what could not be removed."""
        problems: list[str] = []
        if self.spec.audit:
            problems += await trio.to_thread.run_sync(_clean_docker, self.spec.docker_host, self.spec.name)
        listed = await _backend_call(state.backend, PluginCall.build(Operation.LIST))
        value = listed.decoded() if listed is not None else None
        for entry in (value or {}).get("Volumes") or [] if isinstance(value, dict) else []:
            name = entry.get("Name") if isinstance(entry, dict) else None
            if isinstance(name, str):
                reply = await _backend_call(state.backend, PluginCall.build(Operation.REMOVE, name))
                if reply is None or reply.is_error:
                    problems.append(f"backend volume {name}: {reply.err if reply is not None else 'no answer'}")
        return problems


async def _backend_call(backend: Backend, call: PluginCall) -> Any:
    try:
        with trio.move_on_after(30):
            return await backend.call(call)
    except BackendError as exc:
        log.warning("sweep clean-up: %s: %s", call, exc)
    return None


def _clean_docker(docker_host: str | None, driver: str) -> list[str]:
    import docker
    from docker.errors import DockerException

    problems: list[str] = []
    client = docker.DockerClient(base_url=docker_host) if docker_host else docker.from_env()
    try:
        names = [v["Name"] for v in client.api.volumes().get("Volumes") or [] if v.get("Driver") == driver]
        for name in names:
            for container in client.api.containers(all=True, filters={"volume": name}):
                try:
                    client.api.remove_container(container["Id"], force=True)
                except DockerException as exc:
                    problems.append(f"container {container['Id'][:12]}: {exc}")
            try:
                client.api.remove_volume(name, force=True)
            except DockerException as exc:
                problems.append(f"volume {name}: {exc}")
    finally:
        client.close()
    return problems


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
