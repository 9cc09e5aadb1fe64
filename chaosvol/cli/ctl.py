"""`ctl`: talk to a running proxy through its control socket (ControlClient)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any, Final

from chaosvol.cli.common import EXIT_FOUND, EXIT_OK, EXIT_USAGE, command, duration
from chaosvol.cli.managed import CONTROL_SOCKET
from chaosvol.core.errors import UsageError
from chaosvol.core.profile import resolve_profile
from chaosvol.proxy.control import ControlClient, ControlError, control_path_for
from chaosvol.proxy.settings import default_socket_path

log = logging.getLogger("chaosvol")


CTL_EPILOG: Final = """\
examples:
  chaosvol ctl status                      what the proxy named chaosvol is doing
  chaosvol ctl --name myproxy rules        each rule with its matched/fired counters
  chaosvol ctl load profiles/flaky.yaml    validate, then put in force (a bad one is refused)
  chaosvol ctl pause                       everything passes through until `resume`
  chaosvol ctl held --match op=List --wait 30s
                                           wait until a List is held, then list held calls
  chaosvol ctl release --match op=List     let held Lists go on (or: release 3, release --all)
  chaosvol ctl events --follow             one JSON line per call, as they happen

Exit status: 0 done; 2 refused (bad profile, unknown rule, nothing held that matches) or no
proxy on the control socket. `held --wait` exits 1 when fewer calls than --count were held in time."""


def add_parsers(commands: Any) -> None:
    ctl = command(commands, run_ctl, epilog=CTL_EPILOG, raw=True)
    where = ctl.add_mutually_exclusive_group()
    where.add_argument("--name", default="chaosvol", help="the proxy's --name (default: chaosvol): its control socket is /run/docker/plugins/NAME.ctl.sock")
    where.add_argument("--socket", metavar="PATH", help="the proxy's plugin socket: the control socket is next to it")
    where.add_argument("--control", metavar="PATH", help="the control socket itself")
    where.add_argument("--plugin", metavar="NAME", help="chaosvol running as the managed plugin NAME (found through dockerd: DOCKER_HOST)")
    ctl.add_argument("--json", action="store_true", help="print the proxy's JSON answer")
    sub = ctl.add_subparsers(title="commands", metavar="COMMAND", dest="ctl_command", required=True)
    sub.add_parser("status", help="uptime, backend, profile, calls per operation, in flight, held")
    sub.add_parser("rules", help="each rule with its action, enabled, matched and fired counters")
    load = sub.add_parser("load", help="validate a profile and put it in force; a bad one is refused and the old one stays")
    load.add_argument("profile", metavar="FILE", help="a profile file or a shipped name")
    sub.add_parser("pause", help="kill switch: every call passes through; rules keep counting matches")
    sub.add_parser("resume", help="the rules fire again")
    for verb in ("enable", "disable"):
        verb_parser = sub.add_parser(verb, help=f"{verb} one rule by name")
        verb_parser.add_argument("rule", metavar="RULE")
    held = sub.add_parser("held", help="the calls parked by a hold rule")
    _match_argument(held)
    held.add_argument("--wait", type=duration, metavar="DURATION", help="first wait up to DURATION (e.g. 30s) until --count calls are held")
    held.add_argument("--count", type=int, default=1, metavar="N", help="with --wait: how many (default 1)")
    release = sub.add_parser("release", help="let held calls go on: one by ID, all, or those a --match selects")
    release.add_argument("id", nargs="?", type=int, metavar="ID", help="a held call's id (see `held`)")
    release.add_argument("--all", action="store_true", help="every held call (nothing held is not an error)")
    _match_argument(release)
    events = sub.add_parser("events", help="the recent calls' records (one JSON line each); --follow for new ones")
    events.add_argument("--follow", "-f", action="store_true", help="keep printing new records until interrupted")
    events.add_argument("--after", type=int, default=0, metavar="SEQ", help="only records with a seq above SEQ")


def _match_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--match", action="append", default=[], metavar="KEY=VALUE",
        help="op=OP and/or volume=GLOB, comma-separated or repeated (e.g. --match op=List,volume='db-*')",
    )


def _managed_control_path(name: str) -> str:
    """The control socket of chaosvol running as the managed plugin `name`: in the plugin's
    socket directory on the host, /run/docker/plugins/<plugin id>/.

    Raises:
        UsageError: dockerd cannot be reached, or has no such plugin.
    """
    import docker
    from docker.errors import DockerException, NotFound

    try:
        client = docker.from_env()
        try:
            ident = client.plugins.get(name).id
        finally:
            client.close()
    except NotFound:
        raise UsageError(f"--plugin {name}: dockerd has no plugin by that name (docker plugin ls)") from None
    except DockerException as exc:
        raise UsageError(f"--plugin {name}: cannot ask dockerd: {exc}") from None
    return f"/run/docker/plugins/{ident}/{CONTROL_SOCKET.rsplit('/', 1)[-1]}"


def _parse_match(items: list[str]) -> tuple[str | None, str | None]:
    """`--match op=List,volume=v*` → ("List", "v*")."""
    found: dict[str, str] = {}
    for item in items:
        for part in item.split(","):
            key, equals, value = part.partition("=")
            key = key.strip().lower()
            if not equals or key not in ("op", "volume") or not value:
                raise UsageError(f"--match {item!r}: expected op=OP and/or volume=GLOB")
            found[key] = value.strip()
    return found.get("op"), found.get("volume")


def run_ctl(args: argparse.Namespace) -> int:
    """talk to a running proxy's control socket (status, rules, load, pause/resume, hold/release, events)

    Talk to a running `chaosvol serve` over its control socket.
    """
    path = args.control or (_managed_control_path(args.plugin) if args.plugin else control_path_for(args.socket or default_socket_path(args.name)))
    client = ControlClient(path)
    command = args.ctl_command
    try:
        if command == "events":
            return _ctl_events(client, args)
        answer = _ctl_request(client, args)
    except ControlError as exc:
        print(exc if exc.payload.get("problems") else f"chaosvol ctl {command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(json.dumps(answer, indent=2))
    else:
        print(_ctl_text(command, answer), end="")
    if command == "held" and args.wait is not None and len(answer["held"]) < args.count:
        print(f"chaosvol ctl held: fewer than {args.count} matching call(s) held after {args.wait:g}s", file=sys.stderr)
        return EXIT_FOUND
    return EXIT_OK


def _ctl_request(client: Any, args: argparse.Namespace) -> dict[str, Any]:
    command = args.ctl_command
    if command == "load":
        path = resolve_profile(args.profile)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from exc
        return dict(client.request("/load", {"text": text, "source": str(path)}))
    if command in ("enable", "disable"):
        return dict(client.request(f"/{command}", {"rule": args.rule}))
    if command == "held":
        op, volume = _parse_match(args.match)
        body: dict[str, Any] = {"match": {k: v for k, v in (("op", op), ("volume", volume)) if v is not None}}
        if args.wait is not None:
            body |= {"wait": args.wait, "count": args.count}
        return dict(client.request("/held", body, wait=args.wait or 0.0))
    if command == "release":
        op, volume = _parse_match(args.match)
        chosen = sum([args.id is not None, args.all, bool(args.match)])
        if chosen != 1:
            raise UsageError("ctl release: give exactly one of ID, --all or --match")
        if args.id is not None:
            return dict(client.request("/release", {"id": args.id}))
        if args.all:
            return dict(client.request("/release", {"all": True}))
        return dict(client.request("/release", {"match": {k: v for k, v in (("op", op), ("volume", volume)) if v is not None}}))
    return dict(client.request(f"/{command}"))


def _ctl_events(client: Any, args: argparse.Namespace) -> int:
    after = args.after
    try:
        while True:
            records, after = client.events(after, wait=10.0 if args.follow else 0.0)
            for record in records:
                print(json.dumps(record, separators=(",", ":"), ensure_ascii=False), flush=args.follow)
            if not args.follow:
                return EXIT_OK
    except (KeyboardInterrupt, BrokenPipeError):
        return EXIT_OK


def _ctl_text(command: str, answer: dict[str, Any]) -> str:
    """A person's view of a control answer."""
    if command == "status":
        profile = answer["profile"]
        calls = ", ".join(f"{op} {n}" for op, n in sorted(answer["calls"].items())) or "none yet"
        events = answer["events"]
        lines = [
            f"{answer['name']}: serving {answer['socket']} -> {answer['backend']} (pid {answer['pid']}, up {answer['uptime_s']:.0f}s)",
            f"profile: {profile['source']} ({profile['rules']} rule{'s' if profile['rules'] != 1 else ''}, seed {profile['seed']}, loaded {profile['loaded']})"
            + ("  PAUSED: everything passes through" if answer["paused"] else ""),
            f"calls: {answer['calls_total']} ({calls})",
            f"now: {answer['in_flight']} in flight, {answer['held']} held, {answer['connections']} connection(s)",
            "event log: " + ("none (--events not given)" if events is None else f"{events['written']} written, {events['lost']} lost"),
        ]
        return "\n".join(lines) + "\n"
    if command == "rules":
        if not answer["rules"]:
            return "no rules: everything passes through\n"
        rows = [("RULE", "ACTION", "STATE", "MATCHED", "FIRED")]
        for rule in answer["rules"]:
            state = "enabled" if rule["enabled"] else "disabled"
            rows.append((rule["name"], rule["action"], state, str(rule["matched"]), str(rule["fired"])))
        text = _table(rows)
        return text + ("(paused: no rule fires until resume)\n" if answer["paused"] else "")
    if command == "held":
        return _held_table(answer["held"]) if answer["held"] else "no call is held\n"
    if command == "release":
        released = answer["released"]
        return f"released {len(released)} call(s)\n" + (_held_table(released) if released else "")
    if command == "load":
        return f"loaded {answer['loaded']}: {answer['rules']} rule(s), seed {answer['seed']}; rule counters start again\n"
    if command in ("pause", "resume"):
        return "paused: every call passes through\n" if answer["paused"] else "resumed: the rules fire again\n"
    if command in ("enable", "disable"):
        return f"rule {answer['rule']} {'enabled' if answer['enabled'] else 'disabled'}\n"
    return f"{answer}\n"


def _held_table(held: list[dict[str, Any]]) -> str:
    rows = [("ID", "OP", "VOLUME", "RULE", "HELD", "TIMEOUT")]
    for item in held:
        timeout = "none" if item["timeout_s"] is None else f"{item['timeout_s']:g}s"
        rows.append((str(item["id"]), item["op"], item["volume"] or "-", item["rule"] or "-", f"{item['held_s']:.1f}s", timeout))
    return _table(rows)


def _table(rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() + "\n" for row in rows)
