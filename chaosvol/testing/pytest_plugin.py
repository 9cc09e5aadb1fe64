"""chaosvol's pytest plugin: fixtures for your own test suite, with no plumbing to write.

Installed with chaosvol (the `pytest11` entry point), so the fixtures are there in any suite:

* `chaosvol_proxy`: a chaosvol proxy running in this process (in a thread, with its own trio
  loop) in front of a built-in backend in a temporary directory, or `--chaosvol-backend SPEC`.
  One proxy serves the whole session (dockerd never forgets a plugin it activated, and a dead one
  costs 15 s in every later `docker volume ls`); each test gets it back in pass-through with
  nothing held, and sees only its own events. Methods: `load(profile)`, `hold(op, ...)`, `pause()`, `resume()`,
  `enable(rule)`, `disable(rule)`, `rules()`, `held()`, `wait_held(...)`, `release(...)`,
  `events(op=...)`, `backend_volumes()`; attributes `name` (the driver name for
  `docker volume create -d`), `socket`, `control`, `backend`.
* `chaosvol_dockerd`: a private dockerd for the session (its own data-root, exec-root and
  socket), with a busybox image `bb:local`; or the daemon at `--chaosvol-docker-host URL`.
  `--chaosvol-dockerd 20|26|PATH` picks which: 20 (default) this machine's dockerd, 26 Debian 13's
  26.1 from the chroot `scripts/build-dockerd-26` makes (or $CHAOSVOL_DOCKERD_26_ROOT), PATH
  another dockerd binary or chroot; `--chaosvol-live-restore` starts it with `--live-restore`, and
  its `restart()` stops and starts it on the same state (running containers stay up).
  Skipped when the machine cannot run one, unless `--chaosvol-require-dockerd` (or CI=true),
  which makes that a failure. Attributes and methods: `host`, `environment()`,
  `docker(*args)`, `client()` (a Docker SDK client).

As root, the proxy's socket is `/run/docker/plugins/NAME.sock`, where dockerd finds it; otherwise
it is in a temporary directory, for tests that talk to the socket themselves.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import trio
import yaml

from chaosvol.core.engine import ChaosEngine
from chaosvol.core.profile import PASSTHROUGH, resolve_profile
from chaosvol.proxy.control import ControlClient
from chaosvol.proxy.settings import PLUGIN_SOCKET_DIR, ServeSettings

PASSTHROUGH_TEXT = "version: 1\nrules: []\n"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("chaosvol", "chaosvol fixtures (chaosvol_proxy, chaosvol_dockerd)")
    group.addoption("--chaosvol-backend", metavar="SPEC", help="backend of the chaosvol_proxy fixture (default: a built-in backend in a temporary directory)")
    group.addoption("--chaosvol-name", metavar="NAME", help="driver name of the chaosvol_proxy fixture (default: cvt-<random>)")
    group.addoption("--chaosvol-docker-host", metavar="URL", help="use this dockerd for chaosvol_dockerd instead of starting a private one")
    group.addoption("--chaosvol-dockerd", metavar="20|26|PATH", default="20", help="which dockerd chaosvol_dockerd starts: 20 (this machine's), 26 (Debian 13's, from a chroot), or a dockerd binary or chroot directory")
    group.addoption("--chaosvol-live-restore", action="store_true", help="start chaosvol_dockerd with --live-restore (restart() keeps containers running)")
    group.addoption("--chaosvol-require-dockerd", action="store_true", help="fail, rather than skip, when chaosvol_dockerd cannot start one (implied by CI=true)")


class ProxyThread:
    """A PluginServer with its control socket, run by trio in a thread of this process."""

    def __init__(self, settings: ServeSettings, backend_spec: str) -> None:
        self.settings = settings
        self.backend_spec = backend_spec
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._server: Any = None
        self._thread = threading.Thread(target=self._run, name=f"chaosvol {settings.name}", daemon=True)

    def start(self, timeout: float = 30.0) -> None:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"chaosvol did not start serving {self.settings.socket_path} within {timeout:g}s")
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        if self._token is not None and self._thread.is_alive():
            try:
                trio.from_thread.run_sync(self._server.shut_down, 1.0, trio_token=self._token)
            except trio.RunFinishedError:
                pass
        self._thread.join(15)

    def _run(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as exc:  # noqa: BLE001  reported by start(), in the test's thread
            self._error = exc
        finally:
            self._ready.set()

    async def _main(self) -> None:
        from chaosvol.backends.spec import open_backend
        from chaosvol.proxy.service import serve_proxy
        from chaosvol.proxy.state import ProxyState

        self._token = trio.lowlevel.current_trio_token()
        backend = open_backend(self.backend_spec, own_socket=self.settings.socket_path)
        async with trio.open_nursery() as nursery:
            self._server = await nursery.start(serve_proxy, ProxyState(self.settings, backend, ChaosEngine(PASSTHROUGH)))
            self._ready.set()


class ChaosvolProxy:
    """The test's handle on the session's proxy (see the module's docstring)."""

    def __init__(self, name: str, socket: str, control: str, backend: str) -> None:
        self.name = name
        self.socket = socket
        self.control = control
        self.backend = backend
        self.client = ControlClient(control)
        self._since = 0

    def reset(self) -> None:
        """Pass-through, not paused, nothing held; events() from now on."""
        self.client.release(all=True)
        self.client.request("/load", {"text": PASSTHROUGH_TEXT, "source": "<pytest: pass-through>"})
        self.client.resume()
        self._since = int(self.client.status()["last_seq"])

    def load(self, profile: str | Path | Mapping[str, Any]) -> dict[str, Any]:
        """Put a profile in force: a file, a shipped name (`drop-removes`), YAML text, or the
        profile as a mapping (`{"version": 1, "rules": [...]}`). Rule counters start again.

        Raises:
            chaosvol.proxy.control.ControlError: the profile is invalid (the message says where).
        """
        if isinstance(profile, Mapping):
            text, source = yaml.safe_dump(dict(profile), sort_keys=False), "<pytest: mapping>"
        elif isinstance(profile, str) and "\n" in profile:
            text, source = profile, "<pytest: text>"
        else:
            path = resolve_profile(str(profile))
            text, source = path.read_text(encoding="utf-8"), str(path)
        return self.client.load_text(text, source)

    def hold(self, op: str, *, volume: str | None = None, when: str = "before", timeout: str | None = None) -> dict[str, Any]:
        """Load a profile that holds every `op` call (on `volume`, a glob, if given) until
        `release()`: `when="after"` lets the backend act first and holds the answer."""
        options: dict[str, Any] = {"when": when} | ({"timeout": timeout} if timeout is not None else {})
        match: dict[str, Any] = {"op": op} | ({"volume": volume} if volume is not None else {})
        return self.load({"version": 1, "rules": [{"name": "hold", "match": match, "action": {"hold": options}}]})

    def pause(self) -> None:
        self.client.pause()

    def resume(self) -> None:
        self.client.resume()

    def enable(self, rule: str) -> None:
        self.client.enable(rule, True)

    def disable(self, rule: str) -> None:
        self.client.enable(rule, False)

    def rules(self) -> dict[str, dict[str, Any]]:
        """Each rule by name: action, enabled, matched, fired."""
        return {rule["name"]: rule for rule in self.client.rules()}

    def held(self, *, op: str | None = None, volume: str | None = None) -> list[dict[str, Any]]:
        return self.client.held(op=op, volume=volume)

    def wait_held(self, *, op: str | None = None, volume: str | None = None, count: int = 1, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Wait until `count` matching calls are held; those calls.

        Raises:
            TimeoutError: fewer were held after `timeout` seconds.
        """
        held = self.client.held(op=op, volume=volume, count=count, wait=timeout)
        if len(held) < count:
            raise TimeoutError(f"{len(held)} call(s) matching op={op} volume={volume} held after {timeout:g}s, wanted {count}")
        return held

    def release(self, ident: int | None = None, *, op: str | None = None, volume: str | None = None, all: bool = False) -> list[dict[str, Any]]:
        """Let held calls go on: by id, by op/volume, or all.

        Raises:
            chaosvol.proxy.control.ControlError: nothing matched (except with `all`).
        """
        if ident is None and op is None and volume is None:
            all = True
        return self.client.release(ident, op=op, volume=volume, all=all)

    def events(self, *, op: str | None = None, volume: str | None = None) -> list[dict[str, Any]]:
        """This test's calls so far, as event-log records (oldest first)."""
        found: list[dict[str, Any]] = []
        after = self._since
        while True:
            records, after = self.client.events(after)
            if not records:
                break
            found += records
        return [r for r in found if (op is None or r["op"] == op) and (volume is None or r["volume"] == volume)]

    def backend_volumes(self) -> list[str]:
        """The volumes the backend holds now, asked directly (never through the faults)."""
        from chaosvol.tools.inventory import backend_view

        with ThreadPoolExecutor(1) as pool:  # backend_view may run trio: never in the test's loop
            return sorted(pool.submit(backend_view, self.backend).result().volumes)


def _in_ci(config: pytest.Config) -> bool:
    return bool(config.getoption("--chaosvol-require-dockerd")) or os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def _chaosvol_session(request: pytest.FixtureRequest) -> Iterator[ChaosvolProxy]:
    config = request.config
    name = config.getoption("--chaosvol-name") or f"cvt-{secrets.token_hex(3)}"
    directory = tempfile.mkdtemp(prefix="cvt", dir="/tmp")  # short: socket paths must fit 107 bytes
    plugin_dir = PLUGIN_SOCKET_DIR if os.geteuid() == 0 else directory
    if plugin_dir == PLUGIN_SOCKET_DIR:
        os.makedirs(plugin_dir, exist_ok=True)
    socket = f"{plugin_dir}/{name}.sock"
    control = f"{directory}/{name}.ctl.sock"
    backend = config.getoption("--chaosvol-backend") or f"builtin:{directory}/backend"
    proxy = ProxyThread(ServeSettings(name, socket, backend, control), backend)
    proxy.start()
    try:
        yield ChaosvolProxy(name, socket, control, backend)
    finally:
        proxy.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def chaosvol_proxy(_chaosvol_session: ChaosvolProxy) -> Iterator[ChaosvolProxy]:
    """The session's chaosvol proxy, in pass-through with nothing held; released again after."""
    _chaosvol_session.reset()
    yield _chaosvol_session
    _chaosvol_session.client.release(all=True)  # a test that forgot a held call does not wedge the next


@pytest.fixture(scope="session")
def chaosvol_dockerd(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A private dockerd for the session (see the module's docstring)."""
    from chaosvol.testing.private_dockerd import DockerdUnavailable, PrivateDockerd

    host = request.config.getoption("--chaosvol-docker-host")
    try:
        daemon = PrivateDockerd.existing(host) if host else PrivateDockerd.start(
            build=request.config.getoption("--chaosvol-dockerd"),
            flags=("--live-restore",) if request.config.getoption("--chaosvol-live-restore") else (),
        )
    except DockerdUnavailable as exc:
        if _in_ci(request.config):
            pytest.fail(f"chaosvol_dockerd: no dockerd, and it is required here: {exc}")
        pytest.skip(f"chaosvol_dockerd: no dockerd on this machine: {exc}")
    try:
        yield daemon
    finally:
        if not host:
            daemon.stop()
