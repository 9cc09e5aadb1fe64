"""`audit`, `report` and `replay`: judging, summarizing and replaying a run."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any

from chaosvol.backends.spec import DEFAULT_BACKEND
from chaosvol.cli.common import EXIT_FOUND, EXIT_OK, command, daemon_arguments, podman_command
from chaosvol.core.errors import UsageError
from chaosvol.core.events import EventLogContents, EventLogError, parse_event_log
from chaosvol.core.profile import load_profile, parse_profile
from chaosvol.tools.audit import LogView, audit
from chaosvol.tools.daemon import daemon_view
from chaosvol.tools.inventory import backend_view
from chaosvol.tools.podman import podman_view
from chaosvol.tools.replay import replay
from chaosvol.tools.report import render_html, summarize

log = logging.getLogger("chaosvol")


def add_parsers(commands: Any) -> None:
    audit = command(commands, run_audit)
    daemon_arguments(audit, what="ask")
    audit.add_argument("--driver", default="chaosvol", help="the driver name dockerd knows the volumes by (default: chaosvol)")
    audit.add_argument("--backend", default=DEFAULT_BACKEND, metavar="SPEC", help=f"the backend, asked directly, never through faults (default: {DEFAULT_BACKEND})")
    audit.add_argument("--events", metavar="FILE", help="the proxy's event log: what dockerd was told (created, removed, mounted)")
    audit.add_argument("--json", action="store_true", help="print a JSON list of findings")

    report = command(commands, run_report)
    report.add_argument("events", metavar="EVENTS", help="an event log written by chaosvol serve --events")
    report.add_argument("--html", metavar="OUT", help="write an HTML timeline to OUT")

    replay = command(commands, run_replay, epilog='Exit status: 0 every fault of the run is in the profile; 1 some call could not be reproduced (each is named on stderr; the profile holds the rest); 2 the log cannot be read.')
    replay.add_argument("events", metavar="EVENTS", help="the event log of the run to replay")
    replay.add_argument("-o", "--output", metavar="PROFILE", help="write the profile here (default: stdout)")
    replay.add_argument("--profile", metavar="FILE", help="the profile the run used (needed only for logs of event schema 1)")
    replay.add_argument("--run", dest="run_number", type=int, metavar="N", help="which run of a log several runs appended to (from 1; default: the last)")


def run_audit(args: argparse.Namespace) -> int:
    """compare what dockerd (or Podman) believes with what the backend holds; exit 1 on any inconsistency

    Compare dockerd's view of a driver's volumes with the backend's, and with what the event log
    says dockerd was told. One line per inconsistency: the kind, the volume, what each side
    believes. Exit 0: consistent; 1: inconsistencies found; 2: could not audit. Changes nothing.
    """

    podman = podman_command(args)
    log = LogView.from_records(_read_events(args.events).events, podman=podman is not None) if args.events else None
    daemon = podman_view(podman) if podman is not None else daemon_view(args.docker_host)
    backend = backend_view(args.backend)
    findings = audit(args.driver, daemon, backend, log)
    if args.json:
        print(json.dumps([finding.to_json() for finding in findings], indent=2))
    else:
        for finding in findings:
            print(finding)
        for warning in daemon.warnings:
            print(f"note: dockerd warned: {warning} (its volume list may include stale cached entries)", file=sys.stderr)
        if daemon.records is None and daemon.records_note:
            print(f"note: {daemon.records_note}; judged from what dockerd answers and the event log", file=sys.stderr)
        if log is None and not podman:
            print("note: without --events, only what dockerd and the backend show now is compared", file=sys.stderr)
        if not findings:
            print(f"consistent: {'Podman' if podman else 'dockerd'} and the backend agree on {args.driver}'s volumes", file=sys.stderr)
    return EXIT_FOUND if findings else EXIT_OK


def _read_events(path: str) -> EventLogContents:
    """An event log, typed (chaosvol.core.events.parse_event_log).

    Raises:
        UsageError: the file cannot be read, or a line is not chaosvol's (`file:line: why`).
    """
    try:
        with open(path, encoding="utf-8") as handle:
            return parse_event_log(handle, path)
    except EventLogError as exc:
        raise UsageError(str(exc)) from exc
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not an event log: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from exc


def run_report(args: argparse.Namespace) -> int:
    """summarize a run's event log; --html writes a timeline to open in a browser

    Summarize an event log: calls per operation with latencies, faults fired per rule, real
    backend failures apart from injected ones. --html writes a self-contained timeline page.
    """
    records = _read_events(args.events).events
    if not records:
        raise UsageError(f"{args.events}: no events in it")
    print(summarize(records).to_text(), end="")
    if args.html:
        try:
            with open(args.html, "w", encoding="utf-8") as handle:
                handle.write(render_html(records, os.path.basename(args.events)))
        except OSError as exc:
            raise UsageError(f"--html {args.html}: cannot write: {exc.strerror or exc}") from exc
        print(f"timeline written to {args.html}", file=sys.stderr)
    return EXIT_OK


def run_replay(args: argparse.Namespace) -> int:
    """turn a recorded run's event log into a profile that makes the same decisions

    Write a profile that fires the same actions, with the same options, on the same calls as the
    recorded run (selected by operation, volume and call index, never by chance), whatever the
    seed. The log alone is enough: it records each fault as carried out (a delay's drawn
    duration, an error's message). Logs of chaosvol before event schema 2 did not: give the
    run's profile with --profile for them.
    """

    original = load_profile(args.profile) if args.profile else None
    log = _read_events(args.events)
    if not log.runs:
        raise UsageError(f"{args.events}: no calls in it: nothing to replay")
    run = log.runs if args.run_number is None else args.run_number
    if not 1 <= run <= log.runs:
        raise UsageError(f"--run {run}: {args.events} holds {log.runs} run(s); give 1 to {log.runs}")
    if log.runs > 1:
        print(f"chaosvol replay: {args.events} holds {log.runs} runs; replaying run {run} (--run N for another)", file=sys.stderr)
    if log.schema < 2 and original is None:
        print(f"chaosvol replay: {args.events} is of event schema 1 (no decisions recorded): actions that need options "
              "need the run's profile (--profile)", file=sys.stderr)
    result = replay(log.run(run - 1), original, os.path.basename(args.events))
    parse_profile(result.text, "<replay>")  # what we write must load: a failure here is our bug
    for note in result.notes:
        print(f"chaosvol replay: approximate: {note}", file=sys.stderr)
    for reason in result.unreproducible:
        print(f"chaosvol replay: cannot reproduce {reason}", file=sys.stderr)
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as handle:
                handle.write(result.text)
        except OSError as exc:
            raise UsageError(f"-o {args.output}: cannot write: {exc.strerror or exc}") from exc
        print(f"chaosvol replay: {result.rules} rule(s) written to {args.output}", file=sys.stderr)
    else:
        print(result.text, end="")
    if result.unreproducible:
        print(f"chaosvol replay: {len(result.unreproducible)} faulted call(s) could not be reproduced (above)", file=sys.stderr)
        return EXIT_FOUND
    return EXIT_OK
