"""`sweep`: fail the k-th matching call, once per k, and report which k broke the workload."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any, Final

import trio

from chaosvol.cli.common import (
    command,
    daemon_arguments,
    driver_name_of,
    duration,
    first_chaosvol_error,
    podman_command,
    socket_arguments,
    socket_path_of,
)
from chaosvol.core.errors import UsageError
from chaosvol.core.profile import PASSTHROUGH, load_profile
from chaosvol.proxy.unix import check_socket_path
from chaosvol.tools.sweep import Sweep, SweepSpec, check_operation, print_report, sweep_profile

log = logging.getLogger("chaosvol")


SWEEP_EPILOG: Final = """\
examples:
  chaosvol sweep --op Remove --action drop -- ./my-workload.sh
      run the workload once pass-through (counting its Removes), then once per Remove with only
      that one dropped; a table says, for each k, which call was hit, the workload's exit
      status and what `chaosvol audit` found; exit 1 if any run broke or left an inconsistency
  chaosvol sweep --op Create --action '{error: {when: after}}' --profile slow-mounts -- make e2e

The workload talks to dockerd as usual and uses the driver NAME (default chaosvol; the
environment also has CHAOSVOL_DRIVER and CHAOSVOL_SWEEP_K). Between runs the proxy is paused and
what the run left is removed: containers using the driver's volumes, those volumes, and what the
backend still holds. Each run gets a fresh built-in backend unless --backend is given."""


def add_parsers(commands: Any) -> None:
    sweep = command(commands, run_sweep, epilog=SWEEP_EPILOG, raw=True)
    sweep.add_argument("--op", required=True, metavar="OP", help="the operation whose calls are failed one at a time (Create, Remove, Mount, ...)")
    sweep.add_argument("--action", required=True, metavar="ACTION", help="what happens to the k-th call, as in a profile: drop, error, '{error: {when: after}}', '{delay: {duration: 130s}}'")
    sweep.add_argument("--volume", metavar="GLOB", help="only calls on volumes matching GLOB count")
    sweep.add_argument("--profile", metavar="FILE", help="a base profile in force in every run, the baseline included")
    socket_arguments(sweep, default_name="chaosvol")
    sweep.add_argument("--backend", metavar="SPEC", help="the backend, shared by every run (default: a fresh built-in backend per run)")
    daemon_arguments(sweep, what="audit and clean")
    sweep.add_argument("--no-audit", action="store_true", help="no daemon: judge runs by exit status only, clean the backend only")
    sweep.add_argument("--timeout", type=duration, default=600.0, metavar="DURATION", help="kill a run after this long (default 10m)")
    sweep.add_argument("--max-runs", type=int, metavar="N", help="stop after N faulty runs")
    sweep.add_argument("--work", metavar="DIR", help="where the event log, each run's output and backends go (default: a new directory in /tmp)")
    sweep.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND...", help="the workload")


def run_sweep(args: argparse.Namespace) -> int:
    """run a workload once per k, failing the k-th matching call each time, and report which k broke it

    Run COMMAND once pass-through to count the calls matching --op, then once per k failing only
    the k-th of them with --action; report, for each k, the call hit, COMMAND's exit status and
    the audit.
    """

    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise UsageError("sweep: give the workload after --, e.g. chaosvol sweep --op Remove --action drop -- ./workload.sh")
    logging.basicConfig(level=logging.WARNING, format="chaosvol %(levelname)s %(message)s", stream=sys.stderr)
    spec = SweepSpec(
        operation=check_operation(args.op),
        action=args.action,
        command=tuple(command),
        base=load_profile(args.profile) if args.profile else PASSTHROUGH,
        volume=args.volume,
        name=driver_name_of(args),
        socket_path=socket_path_of(args),
        backend=args.backend,
        docker_host=args.docker_host,
        audit=not args.no_audit,
        timeout=args.timeout,
        max_runs=args.max_runs,
        podman=podman_command(args),
    )
    sweep_profile(spec, None)  # a bad --op/--action is refused before anything starts
    spec.bench().check_daemon()  # fail now, not after the baseline, when the daemon is not there
    check_socket_path(spec.socket_path)  # a live proxy on that socket: said now, before any run
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="chaosvol-sweep-"))
    try:
        work.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--work {work}: {exc.strerror or exc}") from exc
    spec = dataclasses.replace(spec, work=work)

    def progress(line: str) -> None:
        print(f"chaosvol sweep: {line}", file=sys.stderr, flush=True)

    progress(f"serving {spec.name} on {spec.socket_path}; runs, logs and events in {work}")
    progress(f"baseline: {' '.join(command)} (no fault)")
    try:
        results = trio.run(Sweep(spec, progress).run)
    except BaseExceptionGroup as group:
        leaf = first_chaosvol_error(group)
        if leaf is None:
            raise
        raise leaf from None
    return print_report(results, spec)
