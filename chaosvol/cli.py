"""The command line: argparse, logging, exit codes. The only place that reads argv or prints.

Exit codes (shared/contract.md): 0 success, 1 a check found something, 2 usage or input error.
A ChaosvolError becomes one clear message and exit 2, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any, Final, NoReturn

import trio

from chaosvol import __version__
from chaosvol.backends.spec import BACKEND_FORMS, DEFAULT_BACKEND, open_backend
from chaosvol.control import control_path_for
from chaosvol.engine import ChaosEngine
from chaosvol.errors import ChaosvolError, ProfileError, UsageError
from chaosvol.eventlog import EventLog
from chaosvol.events import EventLogContents
from chaosvol.profile import PASSTHROUGH, Profile, advice, load_profile
from chaosvol.server import PluginServer
from chaosvol.settings import ServeSettings, default_socket_path

log = logging.getLogger("chaosvol")

EXIT_OK: Final = 0
EXIT_FOUND: Final = 1
EXIT_USAGE: Final = 2
EXIT_CRASHED: Final = 3  # a crash rule without restart: the plugin "died", as asked
DEFAULT_BACKEND_ROOT: Final = "/var/lib/chaosvol/backends"

DESCRIPTION: Final = """\
chaosvol: a Docker volume plugin that forwards every call to a real backend plugin and injects
the faults a profile asks for (dropped removes, errors, delays, hangs, resets, corrupt answers),
to reproduce on demand the inconsistencies between dockerd and its volume plugins."""

SERVE_EPILOG: Final = """\
examples:
  chaosvol serve --profile drop-removes
      serve /run/docker/plugins/chaosvol.sock in front of the built-in backend; every
      `docker volume rm` through it is answered success and never reaches the backend
  chaosvol serve --backend realvol --profile flaky --events /tmp/run.jsonl
      in front of the legacy plugin `realvol`, a few percent of errors and delays, every call
      logged as one JSON line

Profiles: a path, or the name of a shipped one (passthrough, drop-removes, flaky, slow-mounts).
`chaosvol check FILE` validates one without serving."""


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Entry point of the `chaosvol` console script and of `python -m chaosvol`."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help(sys.stderr)
        sys.exit(EXIT_USAGE)
    try:
        code = args.run(args)
    except ChaosvolError as exc:
        print(_as_message(exc), file=sys.stderr)
        code = EXIT_USAGE
    except KeyboardInterrupt:
        code = EXIT_OK
    except OSError as exc:  # the machine refused something no command anticipated: still one line
        if os.environ.get("CHAOSVOL_DEBUG"):
            raise
        print(f"chaosvol: {_os_error_text(exc)}", file=sys.stderr)
        code = EXIT_USAGE
    except Exception as exc:  # a bug of ours: one line for the user, the traceback on request
        if os.environ.get("CHAOSVOL_DEBUG"):
            raise
        print(f"chaosvol: internal error: {type(exc).__name__}: {exc} (set CHAOSVOL_DEBUG=1 for the traceback, and please report it)", file=sys.stderr)
        code = EXIT_USAGE
    sys.exit(code)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chaosvol", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"chaosvol {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run the fault-injecting proxy in front of a backend plugin",
        description="Run the fault-injecting proxy: a volume plugin socket that forwards every call to a backend.",
        epilog=SERVE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _socket_arguments(serve, default_name="chaosvol")
    serve.add_argument(
        "--backend",
        default=DEFAULT_BACKEND,
        metavar="SPEC",
        help=f"where calls go: {BACKEND_FORMS} (default: {DEFAULT_BACKEND})",
    )
    serve.add_argument(
        "--rewrite-mountpoints", metavar="FROM=TO",
        help="a Mountpoint under FROM in the backend's Mount, Path and List answers becomes TO/...; one outside FROM is an "
        "error (for a managed plugin, whose containers only see its propagatedMount)",
    )
    serve.add_argument("--profile", metavar="FILE", help="fault profile: a file or a shipped name; without one, everything passes through")
    serve.add_argument("--seed", type=_seed, metavar="N", help="seed for the profile's probabilities (overrides the profile's seed)")
    serve.add_argument("--events", metavar="FILE", help="append one JSON line per call to FILE (`-` for stdout)")
    control = serve.add_mutually_exclusive_group()
    control.add_argument("--control", metavar="PATH", help="the control socket for `chaosvol ctl` (default: next to the plugin socket, NAME.ctl.sock)")
    control.add_argument("--no-control", action="store_true", help="serve no control socket")
    _log_level_argument(serve)
    serve.set_defaults(run=run_serve)

    _ctl_parser(commands)
    _sweep_parser(commands)

    podman = commands.add_parser(
        "podman",
        help="register a chaosvol socket with Podman (a containers.conf drop-in), or unregister it",
        description="Podman finds volume plugins only in containers.conf's [engine.volume_plugins]. `register` writes "
        "a drop-in naming the socket; `unregister` removes it. --print shows the drop-in without writing it.",
    )
    podman_commands = podman.add_subparsers(title="commands", metavar="COMMAND", dest="podman_command", required=True)
    for verb in ("register", "unregister"):
        command = podman_commands.add_parser(verb, help=f"{verb} NAME with Podman")
        command.add_argument("name", metavar="NAME", help="the driver name: podman volume create --driver NAME")
        if verb == "register":
            command.add_argument("--socket", metavar="PATH", help="the proxy's socket (default: /run/docker/plugins/NAME.sock, as `serve --name NAME`)")
            command.add_argument("--print", action="store_true", help="print the drop-in instead of writing it")
        command.add_argument("--conf-dir", metavar="DIR", default="/etc/containers/containers.conf.d", help="where drop-ins go (default: %(default)s)")
    podman.set_defaults(run=run_podman)

    managed = commands.add_parser(
        "managed",
        help="the managed plugin's entrypoint: serve, configured from PROFILE, BACKEND, BACKEND_ROOT, SEED, EVENTS, LOG_LEVEL",
        description="Run as the entrypoint of chaosvol's managed plugin (see README, 'Run as a managed plugin'): "
        "`chaosvol serve` with the plugin's paths, configured from the environment `docker plugin set` controls.",
    )
    managed.set_defaults(run=run_managed)

    backend = commands.add_parser(
        "backend",
        help="run only the built-in directory backend, as a plain volume plugin",
        description="Run the built-in directory backend alone: a correct volume plugin keeping each volume "
        "as a directory under --root (state survives restarts).",
    )
    _socket_arguments(backend, default_name="chaosvol-backend")
    backend.add_argument("--root", metavar="DIR", help=f"where volumes live (default: {DEFAULT_BACKEND_ROOT}/NAME)")
    _log_level_argument(backend)
    backend.set_defaults(run=run_backend)

    check = commands.add_parser(
        "check",
        help="validate profiles",
        description="Validate profiles: every problem is printed as file:line:column: field: message. "
        "Exit 0 when all are valid, 2 otherwise.",
    )
    check.add_argument("profiles", nargs="+", metavar="PROFILE", help="a profile file or a shipped name")
    check.set_defaults(run=run_check)

    audit = commands.add_parser(
        "audit",
        help="compare what dockerd (or Podman) believes with what the backend holds; exit 1 on any inconsistency",
        description="Compare dockerd's view of a driver's volumes with the backend's, and with what the event log "
        "says dockerd was told. One line per inconsistency: the kind, the volume, what each side believes. "
        "Exit 0: consistent; 1: inconsistencies found; 2: could not audit. Changes nothing.",
    )
    audit.add_argument("--docker-host", metavar="URL", help="dockerd to ask (default: DOCKER_HOST, then the default socket)")
    audit.add_argument("--driver", default="chaosvol", help="the driver name dockerd knows the volumes by (default: chaosvol)")
    audit.add_argument("--backend", default=DEFAULT_BACKEND, metavar="SPEC", help=f"the backend, asked directly, never through faults (default: {DEFAULT_BACKEND})")
    audit.add_argument("--events", metavar="FILE", help="the proxy's event log: what dockerd was told (created, removed, mounted)")
    audit.add_argument("--json", action="store_true", help="print a JSON list of findings")
    audit.add_argument(
        "--podman", nargs="?", const="podman", metavar="COMMAND",
        help="audit Podman's view instead of dockerd's; COMMAND runs podman with any global options "
        "(default: podman; e.g. 'podman --root /x --runroot /y')",
    )
    audit.set_defaults(run=run_audit)

    report = commands.add_parser(
        "report",
        help="summarize a run's event log; --html writes a timeline to open in a browser",
        description="Summarize an event log: calls per operation with latencies, faults fired per rule, "
        "real backend failures apart from injected ones. --html writes a self-contained timeline page.",
    )
    report.add_argument("events", metavar="EVENTS", help="an event log written by chaosvol serve --events")
    report.add_argument("--html", metavar="OUT", help="write an HTML timeline to OUT")
    report.set_defaults(run=run_report)

    schema = commands.add_parser(
        "schema",
        help="print the JSON Schema of the profile format (for editors and CI linters)",
        description="Print the JSON Schema (draft 2020-12) of the profile format, generated from the same "
        "definitions the loader uses. `chaosvol check` remains the authority: it also checks what a schema cannot say.",
    )
    schema.add_argument("--events", action="store_true", help="the JSON Schema of the event log's lines instead (event schema 2)")
    schema.set_defaults(run=run_schema)

    replay = commands.add_parser(
        "replay",
        help="turn a recorded run's event log into a profile that makes the same decisions",
        description="Write a profile that fires the same actions, with the same options, on the same calls as the "
        "recorded run (selected by operation, volume and call index, never by chance), whatever the seed. The log "
        "alone is enough: it records each fault as carried out (a delay's drawn duration, an error's message). "
        "Logs of chaosvol before event schema 2 did not: give the run's profile with --profile for them.",
        epilog="Exit status: 0 every fault of the run is in the profile; 1 some call could not be reproduced "
        "(each is named on stderr; the profile holds the rest); 2 the log cannot be read.",
    )
    replay.add_argument("events", metavar="EVENTS", help="the event log of the run to replay")
    replay.add_argument("-o", "--output", metavar="PROFILE", help="write the profile here (default: stdout)")
    replay.add_argument("--profile", metavar="FILE", help="the profile the run used (needed only for logs of event schema 1)")
    replay.add_argument("--run", dest="run_number", type=int, metavar="N", help="which run of a log several runs appended to (from 1; default: the last)")
    replay.set_defaults(run=run_replay)
    return parser


def _socket_arguments(parser: argparse.ArgumentParser, *, default_name: str) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--name", default=default_name, help=f"driver name for `docker volume create -d NAME`; socket /run/docker/plugins/NAME.sock (default: {default_name})"
    )
    where.add_argument("--socket", metavar="PATH", help="listen on this socket path instead")


def _log_level_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="debug shows every call; info every injected fault (default: info)",
    )


def _seed(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError("a seed is a whole number >= 0")
    return value


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s.%(msecs)03d chaosvol %(levelname)s %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S",
        stream=sys.stderr,
    )


def _socket_path(args: argparse.Namespace) -> str:
    return str(args.socket) if args.socket else default_socket_path(str(args.name))


def _name(args: argparse.Namespace) -> str:
    if args.socket:
        base = str(args.socket).rsplit("/", 1)[-1]
        return base.removesuffix(".sock")
    return str(args.name)


# -- serve ------------------------------------------------------------------------------------


def run_serve(args: argparse.Namespace) -> int:
    _setup_logging(args.log_level)
    profile: Profile = load_profile(args.profile) if args.profile else PASSTHROUGH
    for note in advice(profile):
        log.info("%s", note)
    seed = args.seed if args.seed is not None else profile.seed
    chosen = seed is None
    if seed is None:
        seed = secrets.randbelow(2**32)
    socket_path = _socket_path(args)
    backend = open_backend(args.backend, own_socket=socket_path)
    backend_label = args.backend
    if args.rewrite_mountpoints:
        from chaosvol.backends.rewrite import RewritingBackend
        from chaosvol.mountpoints import MountpointRewrite

        try:
            rewrite = MountpointRewrite.parse(args.rewrite_mountpoints)
        except ValueError as exc:
            raise UsageError(f"--rewrite-mountpoints: {exc}") from exc
        backend = RewritingBackend(backend, rewrite)
        backend_label = f"{args.backend} (mountpoints {rewrite.source} -> {rewrite.target})"
    try:
        events = EventLog.open(args.events) if args.events else None
    except OSError as exc:
        raise UsageError(f"--events {args.events}: cannot open: {exc.strerror or exc}") from exc
    engine = ChaosEngine(profile, seed=seed)
    control_path = None if args.no_control else args.control or control_path_for(socket_path)
    if control_path is not None and os.path.abspath(control_path) == os.path.abspath(socket_path):
        raise UsageError("--control: the control socket cannot be the plugin socket; give another path")
    settings = ServeSettings(_name(args), socket_path, backend_label, control_path)
    _raise_descriptor_limit()
    rules = len(profile.rules)
    draws = any(rule.draws for rule in profile.rules)
    how = f" (chosen at random: --seed {seed} replays this run)" if chosen and draws else ""
    profile_line = f"profile {profile.source} ({rules} rule{'s' if rules != 1 else ''}), seed {seed}{how}"
    server = PluginServer(settings, backend, engine, events, seed_override=args.seed)

    def reload() -> None:
        if not args.profile:
            log.info("SIGHUP: no --profile to reload; everything still passes through")
            return
        try:
            new = load_profile(args.profile)
        except ProfileError as exc:
            log.error("SIGHUP: the profile was not reloaded; the old one stays in force:\n%s", exc)
            return
        server.load(new)
        log.warning("SIGHUP: reloaded %s (%d rules, seed %d); rule counters start again", new.source, len(new.rules), server.engine.seed)

    return _run_server(server, profile_line, reload)


def run_podman(args: argparse.Namespace) -> int:
    from pathlib import Path

    from chaosvol.podman import drop_in_text, register, unregister

    directory = Path(args.conf_dir)
    if args.podman_command == "register":
        socket = args.socket or default_socket_path(args.name)
        if args.print:
            print(drop_in_text(args.name, socket), end="")
            return EXIT_OK
        path = register(args.name, socket, directory)
        print(f"chaosvol podman: wrote {path}: Podman now knows the driver {args.name} at {socket}", file=sys.stderr)
        return EXIT_OK
    removed = unregister(args.name, directory)
    print(f"chaosvol podman: {'removed ' + str(removed) if removed else 'nothing to remove for ' + args.name}", file=sys.stderr)
    return EXIT_OK


def run_managed(args: argparse.Namespace) -> int:
    from chaosvol.managed import serve_arguments

    arguments = serve_arguments(os.environ)
    events = arguments[arguments.index("--events") + 1] if "--events" in arguments else None
    if events is not None:
        try:
            os.makedirs(os.path.dirname(events) or ".", exist_ok=True)
        except OSError as exc:
            raise UsageError(f"EVENTS={events}: cannot create its directory: {exc.strerror or exc}") from exc
    print(f"chaosvol managed: chaosvol serve {' '.join(arguments)}", file=sys.stderr, flush=True)
    serve_args = build_parser().parse_args(["serve", *arguments])
    code: int = serve_args.run(serve_args)
    return code


def run_backend(args: argparse.Namespace) -> int:
    from chaosvol.backends.directory import DirectoryBackend

    _setup_logging(args.log_level)
    name = _name(args)
    root = args.root or f"{DEFAULT_BACKEND_ROOT}/{name}"
    try:
        backend = DirectoryBackend(root)
    except OSError as exc:
        raise UsageError(f"--root {root}: {exc.strerror or exc}") from exc
    settings = ServeSettings(name, _socket_path(args), backend.name)
    return _run_server(PluginServer(settings, backend, ChaosEngine(PASSTHROUGH)), f"built-in backend, volumes in {backend.root}")


def _raise_descriptor_limit() -> None:
    """Every connection costs two descriptors (dockerd's side and the backend's): take all the
    kernel allows, so a burst of thousands of calls is not refused by a default soft limit."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-files limit from %d to %d: %s", soft, hard, exc)


def _run_server(server: PluginServer, detail: str, reload: Callable[[], None] | None = None) -> int:
    async def serve() -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            async with trio.open_nursery() as nursery:

                async def serve_then_stop(task_status: trio.TaskStatus[PluginServer] = trio.TASK_STATUS_IGNORED) -> None:
                    await server.serve(task_status=task_status)
                    nursery.cancel_scope.cancel()  # it returned by itself (a crash rule with no restart)

                await nursery.start(serve_then_stop)
                settings = server.settings
                print(f"chaosvol: {detail}", file=sys.stderr, flush=True)
                if settings.control_path is not None:
                    print(f"chaosvol: control socket {settings.control_path} (see chaosvol ctl --help)", file=sys.stderr, flush=True)
                print(
                    f"chaosvol: serving {settings.name} on {settings.socket_path} -> {settings.backend_label}",
                    file=sys.stderr,
                    flush=True,
                )
                async for signum in signals:
                    if signum == signal.SIGHUP:
                        if reload is not None:
                            reload()
                        continue
                    log.info(
                        "%s: stopping (in-flight calls get %gs)", signal.Signals(signum).name, settings.shutdown_grace
                    )
                    server.shut_down()
                    break

    try:
        trio.run(serve)
    except BaseExceptionGroup as group:
        leaf = _first_chaosvol_error(group)
        if leaf is None:
            raise
        raise leaf from None
    if server.crashed:
        print("chaosvol: crashed on purpose (a crash rule without restart); exiting with status 3", file=sys.stderr)
        return EXIT_CRASHED
    log.info("stopped")
    return EXIT_OK


def _first_chaosvol_error(group: BaseExceptionGroup[BaseException]) -> ChaosvolError | None:
    """The error a user should read from a failed trio.run: ours, or an OSError said in words."""
    for exc in group.exceptions:
        if isinstance(exc, ChaosvolError):
            return exc
        if isinstance(exc, OSError):
            return UsageError(_os_error_text(exc))
        if isinstance(exc, BaseExceptionGroup):
            found = _first_chaosvol_error(exc)
            if found is not None:
                return found
    return None


# -- ctl --------------------------------------------------------------------------------------

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


def _ctl_parser(commands: Any) -> None:
    ctl = commands.add_parser(
        "ctl",
        help="talk to a running proxy's control socket (status, rules, load, pause/resume, hold/release, events)",
        description="Talk to a running `chaosvol serve` over its control socket.",
        epilog=CTL_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
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
        command = sub.add_parser(verb, help=f"{verb} one rule by name")
        command.add_argument("rule", metavar="RULE")
    held = sub.add_parser("held", help="the calls parked by a hold rule")
    _match_argument(held)
    held.add_argument("--wait", type=_duration, metavar="DURATION", help="first wait up to DURATION (e.g. 30s) until --count calls are held")
    held.add_argument("--count", type=int, default=1, metavar="N", help="with --wait: how many (default 1)")
    release = sub.add_parser("release", help="let held calls go on: one by ID, all, or those a --match selects")
    release.add_argument("id", nargs="?", type=int, metavar="ID", help="a held call's id (see `held`)")
    release.add_argument("--all", action="store_true", help="every held call (nothing held is not an error)")
    _match_argument(release)
    events = sub.add_parser("events", help="the recent calls' records (one JSON line each); --follow for new ones")
    events.add_argument("--follow", "-f", action="store_true", help="keep printing new records until interrupted")
    events.add_argument("--after", type=int, default=0, metavar="SEQ", help="only records with a seq above SEQ")
    ctl.set_defaults(run=run_ctl)


def _match_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--match", action="append", default=[], metavar="KEY=VALUE",
        help="op=OP and/or volume=GLOB, comma-separated or repeated (e.g. --match op=List,volume='db-*')",
    )


def _duration(text: str) -> float:
    from chaosvol.durations import DURATION_FORMS, parse_duration

    try:
        return parse_duration(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {DURATION_FORMS}") from None


def _managed_control_path(name: str) -> str:
    """The control socket of chaosvol running as the managed plugin `name`: in the plugin's
    socket directory on the host, /run/docker/plugins/<plugin id>/.

    Raises:
        UsageError: dockerd cannot be reached, or has no such plugin.
    """
    import docker
    from docker.errors import DockerException, NotFound

    from chaosvol.managed import CONTROL_SOCKET

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
    import json

    from chaosvol.control import ControlClient, ControlError

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
        from chaosvol.profile import resolve_profile

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
    import json

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


# -- sweep ------------------------------------------------------------------------------------

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


def _sweep_parser(commands: Any) -> None:
    sweep = commands.add_parser(
        "sweep",
        help="run a workload once per k, failing the k-th matching call each time, and report which k broke it",
        description="Run COMMAND once pass-through to count the calls matching --op, then once per k failing only "
        "the k-th of them with --action; report, for each k, the call hit, COMMAND's exit status and the audit.",
        epilog=SWEEP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sweep.add_argument("--op", required=True, metavar="OP", help="the operation whose calls are failed one at a time (Create, Remove, Mount, ...)")
    sweep.add_argument("--action", required=True, metavar="ACTION", help="what happens to the k-th call, as in a profile: drop, error, '{error: {when: after}}', '{delay: {duration: 130s}}'")
    sweep.add_argument("--volume", metavar="GLOB", help="only calls on volumes matching GLOB count")
    sweep.add_argument("--profile", metavar="FILE", help="a base profile in force in every run, the baseline included")
    _socket_arguments(sweep, default_name="chaosvol")
    sweep.add_argument("--backend", metavar="SPEC", help="the backend, shared by every run (default: a fresh built-in backend per run)")
    sweep.add_argument("--docker-host", metavar="URL", help="dockerd to audit and clean (default: DOCKER_HOST, then the default socket)")
    sweep.add_argument("--no-audit", action="store_true", help="no dockerd: judge runs by exit status only, clean the backend only")
    sweep.add_argument("--timeout", type=_duration, default=600.0, metavar="DURATION", help="kill a run after this long (default 10m)")
    sweep.add_argument("--max-runs", type=int, metavar="N", help="stop after N faulty runs")
    sweep.add_argument("--work", metavar="DIR", help="where the event log, each run's output and backends go (default: a new directory in /tmp)")
    sweep.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND...", help="the workload")
    sweep.set_defaults(run=run_sweep)


def run_sweep(args: argparse.Namespace) -> int:
    import dataclasses
    import tempfile
    from pathlib import Path

    from chaosvol.sweep import Sweep, SweepSpec, check_operation, print_report, sweep_profile

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
        name=_name(args),
        socket_path=_socket_path(args),
        backend=args.backend,
        docker_host=args.docker_host,
        audit=not args.no_audit,
        timeout=args.timeout,
        max_runs=args.max_runs,
    )
    sweep_profile(spec, None)  # a bad --op/--action is refused before anything starts
    if spec.audit:  # fail now, not after the baseline, when dockerd is not there
        from chaosvol.daemon import daemon_view

        daemon_view(spec.docker_host)
    from chaosvol.unix import check_socket_path

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
        leaf = _first_chaosvol_error(group)
        if leaf is None:
            raise
        raise leaf from None
    return print_report(results, spec)


# -- check ------------------------------------------------------------------------------------


def run_check(args: argparse.Namespace) -> int:
    code = EXIT_OK
    for spec in args.profiles:
        try:
            profile = load_profile(spec)
        except ProfileError as exc:
            print(exc, file=sys.stderr)
            code = EXIT_USAGE
            continue
        rules = len(profile.rules)
        for note in advice(profile):
            print(note, file=sys.stderr)
        print(f"{profile.source}: ok ({rules} rule{'s' if rules != 1 else ''})")
    return code


# -- audit ------------------------------------------------------------------------------------


def run_audit(args: argparse.Namespace) -> int:
    import json

    from chaosvol.audit import LogView, audit
    from chaosvol.backends.inventory import backend_view
    from chaosvol.daemon import daemon_view

    podman = args.podman is not None
    log = LogView.from_records(_read_events(args.events).events, podman=podman) if args.events else None
    if podman:
        import shlex

        from chaosvol.podman import podman_view

        daemon = podman_view(shlex.split(args.podman))
    else:
        daemon = daemon_view(args.docker_host)
    backend = backend_view(args.backend)
    findings = audit(args.driver, daemon, backend, log)
    if args.json:
        print(json.dumps([finding.to_json() for finding in findings], indent=2))
    else:
        for finding in findings:
            print(finding)
        for warning in daemon.warnings:
            print(f"note: dockerd warned: {warning} (its volume list may include stale cached entries)", file=sys.stderr)
        if log is None and not podman:
            print("note: without --events, only what dockerd and the backend show now is compared", file=sys.stderr)
        if not findings:
            print(f"consistent: {'Podman' if podman else 'dockerd'} and the backend agree on {args.driver}'s volumes", file=sys.stderr)
    return EXIT_FOUND if findings else EXIT_OK


def _read_events(path: str) -> EventLogContents:
    """An event log, typed (chaosvol.events.parse_event_log).

    Raises:
        UsageError: the file cannot be read, or a line is not chaosvol's (`file:line: why`).
    """
    from chaosvol.events import EventLogError, parse_event_log

    try:
        with open(path, encoding="utf-8") as handle:
            return parse_event_log(handle, path)
    except EventLogError as exc:
        raise UsageError(str(exc)) from exc
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not an event log: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from exc


# -- report -----------------------------------------------------------------------------------


def run_report(args: argparse.Namespace) -> int:
    from chaosvol.report import render_html, summarize

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
    from chaosvol.profile import parse_profile
    from chaosvol.replay import replay

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


def run_schema(args: argparse.Namespace) -> int:
    import json

    from chaosvol.schema import events_schema, profile_schema

    print(json.dumps(events_schema() if args.events else profile_schema(), indent=2))
    return EXIT_OK


def _os_error_text(exc: OSError) -> str:
    """`PATH: what went wrong`, as a person reads it, without Python's `[Errno N]`."""
    what = exc.strerror or str(exc) or type(exc).__name__
    if exc.filename is not None:
        return f"{os.fsdecode(exc.filename)}: {what}"
    return what


def _as_message(exc: ChaosvolError) -> str:
    text = str(exc)
    if isinstance(exc, ProfileError):
        return text
    return f"chaosvol: {text}"
