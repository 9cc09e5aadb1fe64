"""The control socket: a running proxy's state and switches, as HTTP/JSON over a unix socket.

Served by the same wire code as the plugin socket (a ServerSide whose requests are
ControlRequests), owner-only (mode 0600), next to the plugin socket by default (`NAME.ctl.sock`).
No handler awaits anything a fault can stall (the backend, a held call): each answers from
memory, so the control plane answers at once with hundreds of calls held or delayed and the
backend hung. The only waits are the ones a client asks for (`wait` on /events and /held).

The API (every answer is JSON; an error is `{"Err": "..."}` with a 4xx status):

    GET  /status                    the proxy: uptime, backend, profile, paused, calls, in flight, held
    GET  /rules                     each rule: action, enabled, matched, fired
    POST /load     {"text", "source"}   validate a profile and put it in force (400 with every problem)
    POST /pause, /resume            the kill switch: everything passes through; counters go on counting
    POST /enable, /disable {"rule"} one rule on or off (404: no such rule)
    GET  /held                      calls parked by `hold`
    POST /held     {"match", "count", "wait"}   wait up to `wait` s until `count` held calls match
    POST /release  {"id"} | {"all": true} | {"match": {"op", "volume"}}   (404: nothing matched,
                                    except for `all`)
    POST /events   {"after", "wait", "limit"}   records with seq > after (waiting up to `wait` s
                                    for one); the last RECENT_EVENTS calls are kept
    POST /Plugin.Activate           {"Implements": []}: dockerd activates every socket in
                                    /run/docker/plugins, and leaves alone one that implements nothing

ControlClient is the synchronous client `chaosvol ctl` and the pytest plugin use.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import trio

from chaosvol.core.errors import ChaosvolError, ProfileError, RequestError, UsageError
from chaosvol.core.profile import parse_profile
from chaosvol.core.protocol import OPERATION_BY_NAME, PluginReply
from chaosvol.proxy.connection import serve_connection
from chaosvol.proxy.holds import HoldMatch
from chaosvol.proxy.state import ProxyState
from chaosvol.proxy.unix import accept_forever, open_unix_listener
from chaosvol.wire.http import Refused, ServerSide
from chaosvol.wire.streams import RECEIVE_SIZE, SocketStream

log = logging.getLogger(__name__)

CONTROL_MODE: Final = 0o600  # owner only: whoever can load a profile can break every volume
JSON: Final = "application/json"
MAX_WAIT: Final = 60.0  # the longest a client may ask a request to wait (events, held)
MAX_EVENTS: Final = 1000  # records in one /events answer
READ_TIMEOUT: Final = 30.0


def control_path_for(socket_path: str) -> str:
    """The control socket next to a plugin socket: `NAME.sock` -> `NAME.ctl.sock`."""
    return socket_path.removesuffix(".sock") + ".ctl.sock"


@dataclass(frozen=True, slots=True)
class ControlRequest:
    method: str
    target: str
    body: bytes


class ControlWire(ServerSide[ControlRequest]):
    def _complete(self, target: bytes, method: bytes, headers: Sequence[tuple[bytes, bytes]], body: bytes) -> ControlRequest | Refused:
        path = target.decode("ascii", "replace").split("?", 1)[0]
        verb = method.decode("ascii", "replace")
        allowed = ROUTES.get(path)
        if allowed is None:
            return Refused(RequestError(f"unknown endpoint {path}; the control API has {', '.join(sorted(ROUTES))}", 404), path)
        if verb not in allowed:
            return Refused(RequestError(f"{path} takes {' or '.join(sorted(allowed))}, not {verb}", 405), path)
        return ControlRequest(verb, path, body)


class BadControlRequest(Exception):
    """A request the API refuses: its status and message become the answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


_READ = frozenset({"GET", "POST"})
_CHANGE = frozenset({"POST"})
ROUTES: Final[dict[str, frozenset[str]]] = {
    "/status": _READ,
    "/rules": _READ,
    "/load": _CHANGE,
    "/pause": _CHANGE,
    "/resume": _CHANGE,
    "/enable": _CHANGE,
    "/disable": _CHANGE,
    "/held": _READ,
    "/release": _CHANGE,
    "/events": _READ,
    # Every dockerd on the host activates every socket in /run/docker/plugins on `docker volume
    # ls` (protocol.md §6), this one included: it says it implements nothing, so dockerd leaves it be.
    "/Plugin.Activate": _CHANGE,
}


class ControlServer:
    """Serves the control socket of one proxy until `shut_down()`: it reads and changes the
    proxy's ProxyState, never the plugin server itself."""

    def __init__(self, state: ProxyState, path: str, *, mode: int = CONTROL_MODE) -> None:
        self.state = state
        self.path = path
        self.mode = mode
        self._scope: trio.CancelScope | None = None
        self._handlers: dict[str, Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]] = {
            "/status": self._status,
            "/rules": self._rules,
            "/load": self._load,
            "/pause": self._pause,
            "/resume": self._resume,
            "/enable": self._enable,
            "/disable": self._disable,
            "/held": self._held,
            "/release": self._release,
            "/events": self._events,
            "/Plugin.Activate": self._activate,
        }

    async def serve(self, *, task_status: trio.TaskStatus[ControlServer] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen (`nursery.start` returns once it does) and serve until `shut_down()`.

        Raises:
            UsageError: the socket cannot be created.
        """
        listener = await open_unix_listener(self.path, mode=self.mode, backlog=64)
        try:
            with trio.CancelScope() as self._scope:
                async with trio.open_nursery() as nursery:
                    task_status.started(self)
                    def handle(stream: SocketStream) -> None:
                        nursery.start_soon(self.handle_connection, stream)

                    await accept_forever(listener, handle, what="control socket")
        finally:
            with trio.CancelScope(shield=True):
                await listener.aclose()

    def shut_down(self) -> None:
        if self._scope is not None:
            self._scope.cancel()

    async def handle_connection(self, stream: trio.abc.Stream) -> None:
        wire = ControlWire()

        async def receive() -> bytes | bytearray | None:
            if not wire.mid_request:
                return await stream.receive_some(RECEIVE_SIZE)
            with trio.move_on_after(READ_TIMEOUT):
                return await stream.receive_some(RECEIVE_SIZE)
            return None  # half a request, then nothing

        async def on_request(request: ControlRequest) -> bool:
            await stream.send_all(wire.reply_bytes(await self.dispatch(request)))
            return True

        async def on_refused(refused: Refused) -> bool:
            await stream.send_all(wire.reply_bytes(_json_reply({"Err": str(refused.error)}, refused.error.status_hint)))
            return True

        async def on_bad_request(error: RequestError) -> None:
            await stream.send_all(wire.error_bytes(error))

        try:
            await serve_connection(wire, receive, on_request, on_refused, on_bad_request)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        except Exception:
            log.exception("control: internal error; closing this control connection")
        finally:
            await trio.aclose_forcefully(stream)

    async def dispatch(self, request: ControlRequest) -> PluginReply:
        """The answer to one request; never raises for a bad request."""
        try:
            body = _body_object(request.body)
            return _json_reply(await self._handlers[request.target](body))
        except BadControlRequest as exc:
            return _json_reply({"Err": str(exc)}, exc.status)
        except ProfileError as exc:
            return _json_reply({"Err": str(exc), "problems": [str(problem) for problem in exc.problems]}, 400)

    # -- the handlers: each answers from memory -----------------------------------------------

    async def _activate(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"Implements": []}

    async def _status(self, body: dict[str, Any]) -> dict[str, Any]:
        state = self.state
        engine = state.engine
        settings = state.settings
        events = state.events
        return {
            "name": settings.name,
            "socket": settings.socket_path,
            "control": self.path,
            "backend": settings.backend_label,
            "pid": os.getpid(),
            "uptime_s": round(time.time() - state.started_at, 3),
            "paused": state.paused,
            "profile": {"source": engine.profile.source, "rules": len(engine.profile.rules), "seed": engine.seed,
                        "loaded": _iso(state.profile_loaded_at)},
            "calls": dict(state.calls_by_operation),
            "calls_total": sum(state.calls_by_operation.values()),
            "last_seq": state.recent.last_seq,
            "in_flight": state.in_flight,
            "held": len(state.holds),
            "connections": state.connections,
            "events": None if events is None else {"written": events.written, "lost": events.lost},
        }

    async def _rules(self, body: dict[str, Any]) -> dict[str, Any]:
        now = trio.current_time()
        statistics = self.state.engine.statistics()
        return {
            "paused": self.state.paused,
            "rules": [
                {
                    "name": rule.name,
                    "action": rule.action,
                    "enabled": rule.enabled,
                    "matched": rule.matched,
                    "fired": rule.fired,
                    "last_fired_s_ago": None if rule.last_fired_at is None else round(now - rule.last_fired_at, 3),
                }
                for rule in statistics.rules.values()
            ],
        }

    async def _load(self, body: dict[str, Any]) -> dict[str, Any]:
        text = _field(body, "text", str)
        source = _field(body, "source", str, default="<ctl load>")
        profile = parse_profile(text, source)  # ProfileError: refused, the old profile stays
        engine = self.state.load(profile)
        log.warning("ctl load: %s in force (%d rules, seed %d); rule counters start again", source, len(profile.rules), engine.seed)
        return {"loaded": source, "rules": len(profile.rules), "seed": engine.seed}

    async def _pause(self, body: dict[str, Any]) -> dict[str, Any]:
        if self.state.pause():
            log.warning("ctl pause: every call passes through until resume")
        return {"paused": True}

    async def _resume(self, body: dict[str, Any]) -> dict[str, Any]:
        if self.state.resume():
            log.warning("ctl resume: the profile's rules fire again")
        return {"paused": False}

    async def _enable(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._set_enabled(body, True)

    async def _disable(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._set_enabled(body, False)

    def _set_enabled(self, body: dict[str, Any], enabled: bool) -> dict[str, Any]:
        name = _field(body, "rule", str)
        engine = self.state.engine
        try:
            engine.set_enabled(name, enabled)
        except KeyError:
            names = ", ".join(engine.rule_names) or "none (the profile has no rules)"
            raise BadControlRequest(f"no rule named {name!r}; the rules are: {names}", 404) from None
        log.warning("ctl: rule %s %s", name, "enabled" if enabled else "disabled")
        return {"rule": name, "enabled": enabled}

    async def _held(self, body: dict[str, Any]) -> dict[str, Any]:
        holds = self.state.holds
        match = _hold_match(body.get("match"))
        wait = _wait(body)
        if wait:
            count = _field(body, "count", int, default=1)
            with trio.move_on_after(wait):
                await holds.wait_for(match, count)
        now = trio.current_time()
        return {"held": [held.to_json(now) for held in holds if match.matches(held)]}

    async def _release(self, body: dict[str, Any]) -> dict[str, Any]:
        holds = self.state.holds
        now = trio.current_time()
        if "id" in body:
            ident = _field(body, "id", int)
            released = holds.release(ident)
            if not released:
                raise BadControlRequest(f"no held call has id {ident}; held now: {_held_ids(holds)}", 404)
        elif body.get("all") is True:
            released = holds.release()
        elif "match" in body:
            match = _hold_match(body["match"])
            released = holds.release(match=match)
            if not released:
                raise BadControlRequest(f"no held call matches {_describe_match(match)}; held now: {_held_ids(holds)}", 404)
        else:
            raise BadControlRequest('say which calls to release: {"id": N}, {"all": true} or {"match": {"op": ..., "volume": ...}}')
        if released:
            log.info("ctl release: %s", ", ".join(f"#{held.ident} {held.call}" for held in released))
        return {"released": [held.to_json(now) for held in released]}

    async def _events(self, body: dict[str, Any]) -> dict[str, Any]:
        recent = self.state.recent
        after = _field(body, "after", int, default=0)
        limit = min(_field(body, "limit", int, default=MAX_EVENTS), MAX_EVENTS)
        wait = _wait(body)
        records = await recent.wait_after(after, wait, limit) if wait else recent.after(after, limit)
        return {"events": [record.to_json() for record in records], "last": records[-1].seq if records else max(after, 0)}


def _json_reply(payload: dict[str, Any], status: int = 200) -> PluginReply:
    return PluginReply(status, (json.dumps(payload, separators=(",", ":"), ensure_ascii=False) + "\n").encode(), JSON)


def _body_object(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadControlRequest(f"the request body is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise BadControlRequest(f"the request body must be a JSON object, not {type(value).__name__}")
    return value


_MISSING: Final = object()


def _field(body: dict[str, Any], name: str, kind: type[Any], default: Any = _MISSING) -> Any:
    value = body.get(name, _MISSING)
    if value is _MISSING or value is None:
        if default is _MISSING:
            raise BadControlRequest(f"{name!r} is required")
        return default
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise BadControlRequest(f"{name!r} must be {'a number' if kind is int else 'a string'}, not {json.dumps(value)}")
    return value


def _wait(body: dict[str, Any]) -> float:
    value = body.get("wait", 0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value:
        raise BadControlRequest(f"'wait' is a number of seconds >= 0, not {json.dumps(value)}")
    return min(float(value), MAX_WAIT)


def _hold_match(value: Any) -> HoldMatch:
    if value is None:
        return HoldMatch()
    if not isinstance(value, dict) or set(value) - {"op", "volume"}:
        raise BadControlRequest(f'a match is {{"op": OP, "volume": GLOB}} (either or both), not {json.dumps(value)}')
    op = value.get("op")
    volume = value.get("volume")
    if op is not None and (not isinstance(op, str) or op.lower() not in {name.lower() for name in OPERATION_BY_NAME}):
        raise BadControlRequest(f"match op {json.dumps(op)} is no operation; allowed: {', '.join(OPERATION_BY_NAME)}")
    if volume is not None and not isinstance(volume, str):
        raise BadControlRequest(f"match volume must be a glob string, not {json.dumps(volume)}")
    return HoldMatch(op, volume)


def _describe_match(match: HoldMatch) -> str:
    parts = [f"op={match.operation}" if match.operation else "", f"volume={match.volume}" if match.volume else ""]
    return ",".join(part for part in parts if part) or "anything"


def _held_ids(holds: Any) -> str:
    held = [f"#{item.ident} {item.call}" for item in holds]
    return ", ".join(held) if held else "none"


def _iso(unix: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(unix))


# -- the client -------------------------------------------------------------------------------


class ControlError(ChaosvolError):
    """The proxy refused a control request; the message is its Err."""

    def __init__(self, message: str, status: int, payload: dict[str, Any]) -> None:
        super().__init__(message)
        self.status = status
        self.payload = payload


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("chaosvol", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class ControlClient:
    """A running proxy's control socket, from synchronous code (`chaosvol ctl`, tests)."""

    def __init__(self, path: str, *, timeout: float = 10.0) -> None:
        self.path = path
        self.timeout = timeout

    def request(self, target: str, body: dict[str, Any] | None = None, *, wait: float = 0.0) -> dict[str, Any]:
        """POST `body` to `target`; the answer's JSON object.

        Raises:
            UsageError: no proxy answers on the control socket.
            ControlError: the proxy refused the request (its Err).
        """
        connection = _UnixHTTPConnection(self.path, self.timeout + wait)
        try:
            try:
                connection.request("POST", target, body=json.dumps(body or {}), headers={"Content-Type": JSON})
                response = connection.getresponse()
                data = response.read()
            except FileNotFoundError:
                raise UsageError(f"no control socket at {self.path}: is `chaosvol serve` running with that name?") from None
            except ConnectionRefusedError:
                raise UsageError(f"nothing listens on {self.path}: the proxy that made it is gone") from None
            except PermissionError:
                raise UsageError(f"{self.path}: permission denied (the control socket is its owner's only)") from None
            except (OSError, http.client.HTTPException) as exc:
                raise UsageError(f"control socket {self.path}: {exc.strerror if isinstance(exc, OSError) and exc.strerror else exc}") from None
        finally:
            connection.close()
        try:
            payload = json.loads(data)
        except ValueError:
            raise UsageError(f"control socket {self.path}: the answer is not JSON: {data[:200]!r}") from None
        if response.status != 200:
            raise ControlError(str(payload.get("Err", f"status {response.status}")), response.status, payload)
        if not isinstance(payload, dict):
            raise UsageError(f"control socket {self.path}: the answer is not a JSON object")
        return payload

    def status(self) -> dict[str, Any]:
        return self.request("/status")

    def rules(self) -> list[dict[str, Any]]:
        return list(self.request("/rules")["rules"])

    def load_text(self, text: str, source: str) -> dict[str, Any]:
        return self.request("/load", {"text": text, "source": source})

    def pause(self) -> None:
        self.request("/pause")

    def resume(self) -> None:
        self.request("/resume")

    def enable(self, rule: str, enabled: bool = True) -> None:
        self.request("/enable" if enabled else "/disable", {"rule": rule})

    def held(self, *, op: str | None = None, volume: str | None = None, count: int = 0, wait: float = 0.0) -> list[dict[str, Any]]:
        """The held calls; with `count`, first wait up to `wait` s until that many match."""
        body: dict[str, Any] = {"match": _match(op, volume)}
        if count:
            body |= {"count": count, "wait": wait}
        return list(self.request("/held", body, wait=wait if count else 0.0)["held"])

    def release(self, ident: int | None = None, *, op: str | None = None, volume: str | None = None, all: bool = False) -> list[dict[str, Any]]:
        if ident is not None:
            body: dict[str, Any] = {"id": ident}
        elif all:
            body = {"all": True}
        else:
            body = {"match": _match(op, volume)}
        return list(self.request("/release", body)["released"])

    def events(self, after: int = 0, *, wait: float = 0.0, limit: int = MAX_EVENTS) -> tuple[list[dict[str, Any]], int]:
        """Records after `after` and the last seq seen (pass it back to follow)."""
        answer = self.request("/events", {"after": after, "wait": wait, "limit": limit}, wait=wait)
        return list(answer["events"]), int(answer["last"])


def _match(op: str | None, volume: str | None) -> dict[str, str]:
    match: dict[str, str] = {}
    if op is not None:
        match["op"] = op
    if volume is not None:
        match["volume"] = volume
    return match

