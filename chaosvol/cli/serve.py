"""`serve`, `backend`, `managed` and `podman`: running the proxy (or the backend alone) and registering it."""

from __future__ import annotations

import argparse
import logging
import os
import resource
import secrets
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import trio

from chaosvol.backends.directory import DirectoryBackend
from chaosvol.backends.rewrite import RewritingBackend
from chaosvol.backends.spec import BACKEND_FORMS, DEFAULT_BACKEND, open_backend
from chaosvol.cli.common import (
    EXIT_CRASHED,
    EXIT_OK,
    command,
    driver_name_of,
    first_chaosvol_error,
    log_level_argument,
    seed_number,
    setup_logging,
    socket_arguments,
    socket_path_of,
)
from chaosvol.cli.managed import serve_arguments
from chaosvol.core.engine import ChaosEngine
from chaosvol.core.errors import ProfileError, UsageError
from chaosvol.core.mountpoints import MountpointRewrite
from chaosvol.core.profile import PASSTHROUGH, Profile, advice, load_profile
from chaosvol.proxy.control import control_path_for
from chaosvol.proxy.eventlog import EventLog
from chaosvol.proxy.server import PluginServer
from chaosvol.proxy.service import serve_proxy
from chaosvol.proxy.settings import ServeSettings, default_socket_path
from chaosvol.proxy.state import ProxyState
from chaosvol.tools.podman import drop_in_text, register, unregister

log = logging.getLogger("chaosvol")


DEFAULT_BACKEND_ROOT: Final = "/var/lib/chaosvol/backends"


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


def add_parsers(commands: Any) -> None:
    serve = command(commands, run_serve, epilog=SERVE_EPILOG, raw=True)
    socket_arguments(serve, default_name="chaosvol")
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
    serve.add_argument("--seed", type=seed_number, metavar="N", help="seed for the profile's probabilities (overrides the profile's seed)")
    serve.add_argument("--events", metavar="FILE", help="append one JSON line per call to FILE (`-` for stdout)")
    control = serve.add_mutually_exclusive_group()
    control.add_argument("--control", metavar="PATH", help="the control socket for `chaosvol ctl` (default: next to the plugin socket, NAME.ctl.sock)")
    control.add_argument("--no-control", action="store_true", help="serve no control socket")
    log_level_argument(serve)

    podman = command(commands, run_podman)
    podman_commands = podman.add_subparsers(title="commands", metavar="COMMAND", dest="podman_command", required=True)
    for verb in ("register", "unregister"):
        verb_parser = podman_commands.add_parser(verb, help=f"{verb} NAME with Podman")
        verb_parser.add_argument("name", metavar="NAME", help="the driver name: podman volume create --driver NAME")
        if verb == "register":
            verb_parser.add_argument("--socket", metavar="PATH", help="the proxy's socket (default: /run/docker/plugins/NAME.sock, as `serve --name NAME`)")
            verb_parser.add_argument("--print", action="store_true", help="print the drop-in instead of writing it")
        verb_parser.add_argument("--conf-dir", metavar="DIR", default="/etc/containers/containers.conf.d", help="where drop-ins go (default: %(default)s)")

    command(commands, run_managed)

    backend = command(commands, run_backend)
    socket_arguments(backend, default_name="chaosvol-backend")
    backend.add_argument("--root", metavar="DIR", help=f"where volumes live (default: {DEFAULT_BACKEND_ROOT}/NAME)")
    log_level_argument(backend)


def run_serve(args: argparse.Namespace) -> int:
    """run the fault-injecting proxy in front of a backend plugin

    Run the fault-injecting proxy: a volume plugin socket that forwards every call to a backend.
    """
    setup_logging(args.log_level)
    profile: Profile = load_profile(args.profile) if args.profile else PASSTHROUGH
    for note in advice(profile):
        log.info("%s", note)
    seed = args.seed if args.seed is not None else profile.seed
    chosen = seed is None
    if seed is None:
        seed = secrets.randbelow(2**32)
    socket_path = socket_path_of(args)
    backend = open_backend(args.backend, own_socket=socket_path)
    backend_label = args.backend
    if args.rewrite_mountpoints:

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
    settings = ServeSettings(driver_name_of(args), socket_path, backend_label, control_path)
    _raise_descriptor_limit()
    rules = len(profile.rules)
    draws = any(rule.draws for rule in profile.rules)
    how = f" (chosen at random: --seed {seed} replays this run)" if chosen and draws else ""
    profile_line = f"profile {profile.source} ({rules} rule{'s' if rules != 1 else ''}), seed {seed}{how}"
    state = ProxyState(settings, backend, engine, events, seed_override=args.seed)

    def reload() -> None:
        if not args.profile:
            log.info("SIGHUP: no --profile to reload; everything still passes through")
            return
        try:
            new = load_profile(args.profile)
        except ProfileError as exc:
            log.error("SIGHUP: the profile was not reloaded; the old one stays in force:\n%s", exc)
            return
        engine = state.load(new)
        log.warning("SIGHUP: reloaded %s (%d rules, seed %d); rule counters start again", new.source, len(new.rules), engine.seed)

    return _run_server(state, profile_line, reload)


def run_podman(args: argparse.Namespace) -> int:
    """register a chaosvol socket with Podman (a containers.conf drop-in), or unregister it

    Podman finds volume plugins only in containers.conf's [engine.volume_plugins]. `register`
    writes a drop-in naming the socket; `unregister` removes it. --print shows the drop-in
    without writing it.
    """
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
    """the managed plugin's entrypoint: serve, configured from PROFILE, BACKEND, BACKEND_ROOT, SEED, EVENTS, LOG_LEVEL

    Run as the entrypoint of chaosvol's managed plugin (see README, 'Run as a managed plugin'):
    `chaosvol serve` with the plugin's paths, configured from the environment `docker plugin
    set` controls.
    """
    arguments = serve_arguments(os.environ)
    events = arguments[arguments.index("--events") + 1] if "--events" in arguments else None
    if events is not None:
        try:
            os.makedirs(os.path.dirname(events) or ".", exist_ok=True)
        except OSError as exc:
            raise UsageError(f"EVENTS={events}: cannot create its directory: {exc.strerror or exc}") from exc
    print(f"chaosvol managed: chaosvol serve {' '.join(arguments)}", file=sys.stderr, flush=True)
    parser = argparse.ArgumentParser(prog="chaosvol")
    add_parsers(parser.add_subparsers())
    serve_args = parser.parse_args(["serve", *arguments])
    code: int = serve_args.run(serve_args)
    return code


def run_backend(args: argparse.Namespace) -> int:
    """run only the built-in directory backend, as a plain volume plugin

    Run the built-in directory backend alone: a correct volume plugin keeping each volume as a
    directory under --root (state survives restarts).
    """
    setup_logging(args.log_level)
    name = driver_name_of(args)
    root = args.root or f"{DEFAULT_BACKEND_ROOT}/{name}"
    try:
        backend = DirectoryBackend(root)
    except OSError as exc:
        raise UsageError(f"--root {root}: {exc.strerror or exc}") from exc
    settings = ServeSettings(name, socket_path_of(args), backend.name)
    return _run_server(ProxyState(settings, backend, ChaosEngine(PASSTHROUGH)), f"built-in backend, volumes in {backend.root}")


def _raise_descriptor_limit() -> None:
    """Every connection costs two descriptors (dockerd's side and the backend's): take all the
    kernel allows, so a burst of thousands of calls is not refused by a default soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-files limit from %d to %d: %s", soft, hard, exc)


def _run_server(state: ProxyState, detail: str, reload: Callable[[], None] | None = None) -> int:
    servers: list[PluginServer] = []

    async def serve() -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            async with trio.open_nursery() as nursery:

                async def serve_then_stop(task_status: trio.TaskStatus[PluginServer] = trio.TASK_STATUS_IGNORED) -> None:
                    await serve_proxy(state, task_status=task_status)
                    nursery.cancel_scope.cancel()  # it returned by itself (a crash rule with no restart)

                server: PluginServer = await nursery.start(serve_then_stop)
                servers.append(server)
                settings = state.settings
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
        leaf = first_chaosvol_error(group)
        if leaf is None:
            raise
        raise leaf from None
    if servers and servers[0].crashed:
        print("chaosvol: crashed on purpose (a crash rule without restart); exiting with status 3", file=sys.stderr)
        return EXIT_CRASHED
    log.info("stopped")
    return EXIT_OK
