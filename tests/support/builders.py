"""Builders for calls, rules and profiles, and the exact requests dockerd sends."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from chaosvol.core.effects import Effect, Plan
from chaosvol.core.engine import ChaosEngine, Decision
from chaosvol.core.errors import ProfileError
from chaosvol.core.profile import Profile, parse_profile
from chaosvol.core.protocol import Operation, PluginCall, PluginReply

MOUNT_ID = "c97d4b7e5fb65282dd83d5701ed81319747d0f6e8421705670169513b176c979"


def activate() -> PluginCall:
    return PluginCall.build(Operation.ACTIVATE)


def create(name: str, opts: dict[str, str] | None = None) -> PluginCall:
    return PluginCall.build(Operation.CREATE, name, opts=opts or {})


def remove(name: str) -> PluginCall:
    return PluginCall.build(Operation.REMOVE, name)


def get(name: str) -> PluginCall:
    return PluginCall.build(Operation.GET, name)


def path(name: str) -> PluginCall:
    return PluginCall.build(Operation.PATH, name)


def mount(name: str, mount_id: str = MOUNT_ID) -> PluginCall:
    return PluginCall.build(Operation.MOUNT, name, mount_id=mount_id)


def unmount(name: str, mount_id: str = MOUNT_ID) -> PluginCall:
    return PluginCall.build(Operation.UNMOUNT, name, mount_id=mount_id)


def list_() -> PluginCall:
    return PluginCall.build(Operation.LIST)


def capabilities() -> PluginCall:
    return PluginCall.build(Operation.CAPABILITIES)


def empty_retry(operation: Operation) -> PluginCall:
    return PluginCall.parse(operation, b"")


def rule(action: Any, *, op: str | list[str] | None = None, name: str | None = None, **fields: Any) -> dict[str, Any]:
    """One rule as a profile would write it."""
    written: dict[str, Any] = {}
    if name is not None:
        written["name"] = name
    match: dict[str, Any] = {}
    if op is not None:
        match["op"] = op
    for key in ("volume", "opts", "retry"):
        if key in fields:
            match[key] = fields.pop(key)
    if match:
        written["match"] = match
    written.update(fields)
    written["actions" if isinstance(action, list) else "action"] = action
    return written


def profile_text(*rules: dict[str, Any], seed: int | None = None) -> str:
    document: dict[str, Any] = {"version": 1}
    if seed is not None:
        document["seed"] = seed
    document["rules"] = list(rules)
    return yaml.safe_dump(document, sort_keys=False)


def profile(*rules: dict[str, Any], seed: int | None = None) -> Profile:
    return parse_profile(profile_text(*rules, seed=seed), "test.yaml")


def profile_error(*rules: dict[str, Any]) -> ProfileError:
    try:
        profile(*rules)
    except ProfileError as exc:
        return exc
    raise AssertionError("the profile was accepted")


def injected_error(operation: Operation, status: int = 500) -> PluginReply:
    return PluginReply.error(f"chaosvol: injected: {operation.value} failed", status)


class Playbook:
    """Engine scenarios: `play.at(10.0).call(remove("v1")).expect(Forward(), Reply(...))`."""

    def __init__(self, *rules: dict[str, Any], seed: int = 0) -> None:
        self.engine = ChaosEngine(profile(*rules), seed=seed)
        self.now = 0.0
        self.decisions: list[Decision] = []

    def at(self, now: float) -> Playbook:
        self.now = now
        return self

    def call(self, call: PluginCall) -> _Expectation:
        decision = self.engine.decide(call, now=self.now)
        self.decisions.append(decision)
        return _Expectation(decision)


@dataclass
class _Expectation:
    decision: Decision

    def expect(self, *effects: Effect) -> Decision:
        expected = Plan.of(*effects)
        assert self.decision.plan == expected, f"\nexpected {expected}\n     got {self.decision.plan}"
        return self.decision


@dataclass(frozen=True)
class DockerdRequest:
    """A request exactly as dockerd 20.10 sends it (captured, shared/protocol.md §1)."""

    label: str
    raw: bytes
    call: PluginCall

    def __str__(self) -> str:
        return self.label


def _raw(target: str, body: bytes, host: bytes = b"") -> bytes:
    return (
        b"POST " + target.encode() + b" HTTP/1.1\r\nHost: " + host + b"\r\nUser-Agent: Go-http-client/1.1\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n"
        b"Accept: application/vnd.docker.plugins.v1.2+json\r\n\r\n" + body
    )


DOCKERD_REQUESTS = [
    DockerdRequest("activate", _raw("/Plugin.Activate", b""), activate()),
    DockerdRequest("capabilities", _raw("/VolumeDriver.Capabilities", b"{}\n"), capabilities()),
    DockerdRequest("list", _raw("/VolumeDriver.List", b"{}\n"), list_()),
    DockerdRequest("get", _raw("/VolumeDriver.Get", b'{"Name":"rawv"}\n'), get("rawv")),
    DockerdRequest("create", _raw("/VolumeDriver.Create", b'{"Name":"v1","Opts":{}}\n'), create("v1")),
    DockerdRequest(
        "create-opts", _raw("/VolumeDriver.Create", b'{"Name":"v1","Opts":{"size":"5"}}\n'), create("v1", {"size": "5"})
    ),
    DockerdRequest(
        "create-anonymous",
        _raw("/VolumeDriver.Create", b'{"Name":"' + b"a" * 64 + b'","Opts":null}\n'),
        PluginCall.parse(Operation.CREATE, b'{"Name":"' + b"a" * 64 + b'","Opts":null}\n'),
    ),
    DockerdRequest("remove", _raw("/VolumeDriver.Remove", b'{"Name":"v1"}\n'), remove("v1")),
    DockerdRequest("mount", _raw("/VolumeDriver.Mount", f'{{"Name":"v1","ID":"{MOUNT_ID}"}}\n'.encode()), mount("v1")),
    DockerdRequest(
        "unmount", _raw("/VolumeDriver.Unmount", f'{{"Name":"v1","ID":"{MOUNT_ID}"}}\n'.encode()), unmount("v1")
    ),
    DockerdRequest("path", _raw("/VolumeDriver.Path", b'{"Name":"v1"}\n'), path("v1")),
    DockerdRequest("empty-body-retry", _raw("/VolumeDriver.Remove", b""), empty_retry(Operation.REMOVE)),
    DockerdRequest(
        "dummy-host", _raw("/VolumeDriver.Get", b'{"Name":"rawv"}\n', b"plugin.moby.localhost"), get("rawv")
    ),
    DockerdRequest(
        "podman",
        b"POST /VolumeDriver.Get HTTP/1.1\r\nHost: plugin\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: 15\r\n"
        b"Content-Type: application/vnd.docker.plugins.v1.1+json\r\nAccept-Encoding: gzip\r\n\r\n"
        b'{"Name":"rawv"}',
        PluginCall.parse(Operation.GET, b'{"Name":"rawv"}'),
    ),
]


def _podman(target: str, body: bytes) -> bytes:
    """Podman 4.3's exact request: these four headers in this order, no Accept, no newline."""
    return (
        b"POST " + target.encode() + b" HTTP/1.1\r\nHost: plugin\r\nUser-Agent: Go-http-client/1.1\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n"
        b"Content-Type: application/vnd.docker.plugins.v1.1+json\r\n\r\n" + body
    )


PODMAN_ID = "2f73349cfc4630255319c6c8dfc1b46a8996ace9d14d8e07563b165915918ec2"  # its one pseudo mount ID
PODMAN_REQUESTS = [
    DockerdRequest("podman-activate", _podman("/Plugin.Activate", b""), activate()),
    DockerdRequest("podman-list", _podman("/VolumeDriver.List", b""), PluginCall(Operation.LIST, b"")),
    DockerdRequest("podman-get", _podman("/VolumeDriver.Get", b'{"Name":"v1"}'), PluginCall(Operation.GET, b'{"Name":"v1"}', "v1")),
    DockerdRequest("podman-create", _podman("/VolumeDriver.Create", b'{"Name":"v1"}'), PluginCall(Operation.CREATE, b'{"Name":"v1"}', "v1")),
    DockerdRequest(
        "podman-create-opts",
        _podman("/VolumeDriver.Create", b'{"Name":"v2","Opts":{"UID":"1000","o":"uid=1000,foo=bar","size":"5"}}'),
        PluginCall(Operation.CREATE, b'{"Name":"v2","Opts":{"UID":"1000","o":"uid=1000,foo=bar","size":"5"}}', "v2",
                   opts={"UID": "1000", "o": "uid=1000,foo=bar", "size": "5"}),
    ),
    DockerdRequest(
        "podman-mount",
        _podman("/VolumeDriver.Mount", f'{{"Name":"v1","ID":"{PODMAN_ID}"}}'.encode()),
        PluginCall(Operation.MOUNT, f'{{"Name":"v1","ID":"{PODMAN_ID}"}}'.encode(), "v1", PODMAN_ID),
    ),
    DockerdRequest("podman-remove", _podman("/VolumeDriver.Remove", b'{"Name":"v1"}'), PluginCall(Operation.REMOVE, b'{"Name":"v1"}', "v1")),
]
