"""The checks: one async function each, registered in the order they run.

Every check touches only volumes it creates (named under the run's prefix) and says, when it
fails, what was sent, what came back and what the daemon does with that answer. A check
returns a Result: PASS, FAIL (the daemon breaks on it), WARN (it works, with a cost the message
names) or SKIP (cannot be checked here, and why).
"""

from __future__ import annotations

import os
import secrets
import statistics
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal, NamedTuple

import trio

from chaosvol.core.protocol import PODMAN_PLUGIN_TIMEOUT, Operation
from chaosvol.tools.conform.client import Answer, ConformClient, dockerd_timeout, pretty

Status = Literal["PASS", "FAIL", "WARN", "SKIP"]
DATA_FILE: Final = "chaosvol-conform.txt"  # what data checks write into a Mountpoint, and read back
CONCURRENCY: Final = 20  # volumes created, mounted and unmounted at once by the concurrency check


class Result(NamedTuple):
    """One check's verdict: str() is the line conform prints, `STATUS check: message`."""

    status: Status
    check: str
    message: str

    def __str__(self) -> str:
        return f"{self.status} {self.check}: {self.message}"


class CheckFailed(Exception):
    """A check's verdict reached early: `raise CheckFailed("FAIL", "...")`; str() is the message."""

    def __init__(self, status: Status, message: str) -> None:
        super().__init__(message)
        self.status: Status = status


@dataclass(frozen=True, slots=True)
class Filled:
    name: str
    mount_id: str
    mountpoint: str
    token: str | None  # None: the Mountpoint is not visible from here, no data was written


@dataclass
class Context:
    client: ConformClient
    prefix: str
    opts: dict[str, str] = field(default_factory=dict)  # --opt: options the plugin takes
    restart_cmd: str | None = None
    created: set[str] = field(default_factory=set)  # every name this run created (for clean-up)
    mounted: dict[str, set[str]] = field(default_factory=dict)  # name -> mount IDs still mounted
    refuses_mounted_remove: bool | None = None  # learned by remove-while-mounted
    _count: int = 0

    @property
    def daemon(self) -> str:
        return self.client.shape.title

    def name(self, what: str) -> str:
        self._count += 1
        name = f"{self.prefix}-{self._count}-{what}"
        self.created.add(name)
        return name

    async def call(self, operation: Operation, value: object = None, *, raw: bytes | None = None) -> Answer:
        return await self.client.call(operation, value, raw=raw)

    async def new_volume(self, what: str) -> str:
        """The name of a volume created for this run (`what` says which check it serves)."""
        name = self.name(what)
        await self.create(name)
        return name

    async def create(self, name: str, opts: dict[str, str] | None = None) -> Answer:
        answer = await self.call(Operation.CREATE, self.client.shape.create_body(name, opts))
        must(answer, f"Create {name}")
        return answer

    async def mount(self, name: str, mount_id: str) -> str:
        answer = await self.call(Operation.MOUNT, {"Name": name, "ID": mount_id})
        must(answer, f"Mount {name}")
        self.mounted.setdefault(name, set()).add(mount_id)
        mountpoint = answer.field("Mountpoint")
        if not isinstance(mountpoint, str) or not mountpoint:
            raise CheckFailed("FAIL", f"Mount {name} answered {answer.describe()}: no Mountpoint (dockerd binds the "
                              "containerd shim's bundle directory into the container instead)")
        return mountpoint

    async def unmount(self, name: str, mount_id: str) -> Answer:
        answer = await self.call(Operation.UNMOUNT, {"Name": name, "ID": mount_id})
        if answer.ok:
            self.mounted.get(name, set()).discard(mount_id)
        return answer

    async def listed(self) -> set[str]:
        answer = await self.call(Operation.LIST, {})
        must(answer, "List")
        volumes = answer.field("Volumes")
        if volumes is None:
            return set()
        if not isinstance(volumes, list):
            raise CheckFailed("FAIL", f"List answered {answer.describe()}: Volumes is not a list (dockerd: `docker volume ls` "
                              "shows a warning and none of this plugin's volumes)")
        return {str(entry.get("Name")) for entry in volumes if isinstance(entry, dict)}

    async def get(self, name: str) -> Answer:
        return await self.call(Operation.GET, {"Name": name})

    async def filled(self, what: str, *, keep_mounted: bool = False) -> Filled:
        """A new volume with a file written into it (when its Mountpoint is visible from here),
        unmounted again unless `keep_mounted`."""
        name = await self.new_volume(what)
        mount_id = self.client.shape.mount_id()
        mountpoint = await self.mount(name, mount_id)
        filled = Filled(name, mount_id, mountpoint, write_token(mountpoint))
        if not keep_mounted:
            await self.unmount(name, mount_id)
        return filled

    async def still_has(self, filled: Filled) -> bool:
        """Whether the file `filled()` wrote is still there, read through a new Mount."""
        mountpoint = await self.mount(filled.name, filled.mount_id)
        kept = read_token(mountpoint) == filled.token
        await self.unmount(filled.name, filled.mount_id)
        return kept

    def mine(self, names: set[str]) -> set[str]:
        return {name for name in names if name.startswith(self.prefix)}


def must(answer: Answer, what: str) -> None:
    if not answer.ok:
        raise CheckFailed("FAIL", f"{what}: expected success, got {answer.describe()}")


def visible(path: str) -> bool:
    """Whether a Mountpoint can be looked into from here (the plugin may live in another mount
    namespace: a managed plugin's paths are inside its rootfs)."""
    return os.path.isdir(path)


def is_mount_point(path: str) -> bool:
    """Whether `path` is a mount point in this mount namespace (/proc/self/mountinfo: a bind
    mount of a directory of the same filesystem, what most plugins do, has the parent's device,
    so os.path.ismount cannot see it)."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as handle:
            points = {_unescape(line.split()[4]) for line in handle if len(line.split()) > 4}
    except OSError:
        return os.path.ismount(path)
    return os.path.realpath(path) in points


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def write_token(mountpoint: str) -> str | None:
    if not visible(mountpoint):
        return None
    token = secrets.token_hex(8)
    Path(mountpoint, DATA_FILE).write_text(token, encoding="utf-8")
    return token


def read_token(mountpoint: str) -> str | None:
    try:
        return Path(mountpoint, DATA_FILE).read_text(encoding="utf-8")
    except OSError:
        return None


Check = Callable[[Context], Awaitable[Result]]


@dataclass(frozen=True, slots=True)
class CheckSpec:
    id: str
    what: str  # one line for the README's table and --help
    run: Check


CHECKS: list[CheckSpec] = []


def check(check_id: str, what: str) -> Callable[[Check], Check]:
    def register(run: Check) -> Check:
        CHECKS.append(CheckSpec(check_id, what, run))
        return run

    return register


def passed(check_id: str, message: str) -> Result:
    return Result("PASS", check_id, message)


# -- the checks ------------------------------------------------------------------------------


@check("activate", "Implements lists VolumeDriver, and the answer is prompt")
async def activate(ctx: Context) -> Result:
    answer = await ctx.call(Operation.ACTIVATE)
    implements = answer.field("Implements")
    if answer.status != 200 or not isinstance(implements, list) or "VolumeDriver" not in implements:
        return Result("FAIL", "activate", f"Plugin.Activate answered {answer.describe()}: dockerd needs 200 and "
                      '{"Implements": ["VolumeDriver"]} (a 200 without it is cached: the plugin is unusable until dockerd restarts)')
    if answer.seconds > PODMAN_PLUGIN_TIMEOUT:
        return Result("WARN", "activate", f"answered after {answer.seconds:.1f}s: dockerd has no timeout on Activate, so every "
                      "`docker volume ls` waits that long; Podman gives up after 5 s")
    return passed("activate", f"Implements {pretty(implements)} in {answer.seconds * 1000:.0f} ms")


@check("capabilities", "a valid Scope (local or global)")
async def capabilities(ctx: Context) -> Result:
    if ctx.client.shape.timeout == "podman":
        return Result("SKIP", "capabilities", "Podman never asks for Capabilities")
    answer = await ctx.call(Operation.CAPABILITIES, {})
    caps = answer.field("Capabilities")
    scope = caps.get("Scope") if isinstance(caps, dict) else None
    if not answer.ok:
        return Result("WARN", "capabilities", f"answered {answer.describe()}: dockerd takes scope local and asks again at every "
                      "use (not cached)")
    if scope not in ("local", "global"):
        return Result("FAIL", "capabilities", f"answered {answer.describe()}: Scope must be \"local\" or \"global\"")
    return passed("capabilities", f"Scope {scope}")


@check("create-get-list", "a created volume is returned by Get and List with the same name")
async def create_get_list(ctx: Context) -> Result:
    name = await ctx.new_volume("cgl")
    got = await ctx.get(name)
    volume = got.field("Volume")
    if not got.ok or not isinstance(volume, dict) or volume.get("Name") != name:
        return Result("FAIL", "create-get-list", f"Get {name} after Create answered {got.describe()}: dockerd needs "
                      f'{{"Volume": {{"Name": "{name}", ...}}}} (else it reports no such volume and creates it again)')
    if name not in await ctx.listed():
        return Result("FAIL", "create-get-list", f"List after Create {name} leaves it out: `docker volume ls` will not show it")
    return passed("create-get-list", f"Create, Get and List agree on {name}")


async def _create_with(ctx: Context, check_id: str, opts_json: object, shape: str) -> Result:
    name = ctx.name(check_id.removeprefix("create-"))
    body = {"Name": name} if opts_json is _ABSENT else {"Name": name, "Opts": opts_json}
    answer = await ctx.call(Operation.CREATE, body)
    if not answer.ok:
        return Result("FAIL", check_id, f"Create {pretty(body)} ({shape}) answered {answer.describe()}: the volume cannot be created")
    if name not in await ctx.listed():
        return Result("FAIL", check_id, f"Create {pretty(body)} answered success but List leaves {name} out")
    return passed(check_id, f"{pretty(body).replace(name, 'NAME')} accepted ({shape})")


_ABSENT: Final = object()


@check("create-opts-null", 'Create with "Opts": null, as dockerd 26 sends it without -o')
async def create_opts_null(ctx: Context) -> Result:
    return await _create_with(ctx, "create-opts-null", None, "dockerd 26 without -o")


@check("create-opts-empty", 'Create with "Opts": {}, as dockerd 20.10 sends it without -o')
async def create_opts_empty(ctx: Context) -> Result:
    return await _create_with(ctx, "create-opts-empty", {}, "dockerd 20.10 without -o")


@check("create-opts-absent", "Create with no Opts at all, as Podman sends it without --opt")
async def create_opts_absent(ctx: Context) -> Result:
    return await _create_with(ctx, "create-opts-absent", _ABSENT, "Podman without --opt")


@check("create-opts-values", "Create with options (--opt K=V: ones the plugin takes)")
async def create_opts_values(ctx: Context) -> Result:
    if not ctx.opts:
        name = ctx.name("opts")
        answer = await ctx.call(Operation.CREATE, {"Name": name, "Opts": {"chaosvol-conform": "1"}})
        if answer.ok:
            return passed("create-opts-values", "an option it does not know was accepted (give --opt K=V to check its own)")
        return Result("WARN", "create-opts-values", f"an unknown option was refused ({answer.describe()}): fine if deliberate; "
                      "give --opt K=V with options it takes to check those")
    return await _create_with(ctx, "create-opts-values", ctx.opts, "--opt")


@check("create-idempotent", "Create of a name the plugin holds succeeds and keeps the data")
async def create_idempotent(ctx: Context) -> Result:
    filled = await ctx.filled("again")
    name = filled.name
    again = await ctx.call(Operation.CREATE, ctx.client.shape.create_body(name, None))
    if not again.ok:
        return Result("FAIL", "create-idempotent", f"a second Create {name} answered {again.describe()}: dockerd sends Create "
                      "again for a volume it forgot or after a timeout, and then reports the volume as failed")
    if filled.token is None:
        return passed("create-idempotent", "a second Create succeeded (data not checked: the Mountpoint is not visible here)")
    if not await ctx.still_has(filled):
        return Result("FAIL", "create-idempotent", f"a second Create {name} succeeded but the data written before is gone")
    return passed("create-idempotent", "a second Create succeeded and the data stayed")


@check("get-unknown", "Get of an unknown name answers an Err and creates nothing")
async def get_unknown(ctx: Context) -> Result:
    name = f"{ctx.prefix}-never-created"
    ctx.created.add(name)  # if the plugin makes it, clean-up removes it
    answer = await ctx.get(name)
    if answer.error is not None:
        return Result("FAIL", "get-unknown", f"Get {name}: {answer.error}")
    if isinstance(answer.field("Volume"), dict) and answer.err is None:
        return Result("FAIL", "get-unknown", f"Get of a name never created answered {answer.describe()}: dockerd then believes the "
                      "volume exists and never sends Create (a ghost)")
    if name in await ctx.listed():
        return Result("FAIL", "get-unknown", f"after a Get of {name}, List shows it: a Get must not create")
    how = f"Err {answer.err!r}" if answer.err else f"{answer.status} with Volume null"
    return passed("get-unknown", f"answered {how}; nothing created")


@check("remove", "after Remove the volume is gone from Get and List, and its data too")
async def remove(ctx: Context) -> Result:
    filled = await ctx.filled("rm")
    name, mountpoint, token = filled.name, filled.mountpoint, filled.token
    answer = await ctx.call(Operation.REMOVE, {"Name": name})
    must(answer, f"Remove {name}")
    got = await ctx.get(name)
    if isinstance(got.field("Volume"), dict) and got.err is None:
        return Result("FAIL", "remove", f"after Remove {name}, Get still answers {got.describe()}: dockerd brings it back")
    if name in await ctx.listed():
        return Result("FAIL", "remove", f"after Remove {name}, List still shows it: `docker volume ls` brings it back, without labels")
    if token is not None and read_token(mountpoint) == token:
        return Result("WARN", "remove", f"Remove {name} succeeded but its data is still at {mountpoint}")
    return passed("remove", "gone from Get and List" + (", data gone" if token is not None else " (data not visible here)"))


@check("remove-unknown", "Remove of an unknown name: any answer, nothing else changes")
async def remove_unknown(ctx: Context) -> Result:
    before = ctx.mine(await ctx.listed())
    name = f"{ctx.prefix}-never-made"
    ctx.created.add(name)
    answer = await ctx.call(Operation.REMOVE, {"Name": name})
    if answer.error is not None:
        return Result("FAIL", "remove-unknown", f"Remove {name}: {answer.error}")
    after = ctx.mine(await ctx.listed())
    if after != before:
        return Result("FAIL", "remove-unknown", f"Remove of an unknown name changed List: {sorted(before ^ after)}")
    return passed("remove-unknown", f"answered {'Err ' + repr(answer.err) if answer.err else 'success'}; nothing changed")


@check("mount-path", "Mount returns an existing directory; a second mount sees the data; Path returns it")
async def mount_path(ctx: Context) -> Result:
    name = await ctx.new_volume("mount")
    shape = ctx.client.shape
    first, second = shape.mount_id(), shape.mount_id()
    mountpoint = await ctx.mount(name, first)
    path = await ctx.call(Operation.PATH, {"Name": name})
    if shape.timeout != "podman" and (not path.ok or path.field("Mountpoint") != mountpoint):
        return Result("FAIL", "mount-path", f"Path {name} while mounted at {mountpoint} answered {path.describe()}: dockerd uses "
                      "Path for mounted volumes (docker cp, inspect)")
    if not visible(mountpoint):
        await ctx.unmount(name, first)
        return Result("SKIP", "mount-path", f"Mountpoint {mountpoint} is not visible from here (another mount namespace?)")
    token = write_token(mountpoint)
    other = await ctx.mount(name, second) if not shape.one_mount_id else mountpoint
    seen = read_token(other) == token
    unmounts = [await ctx.unmount(name, first)] + ([] if shape.one_mount_id else [await ctx.unmount(name, second)])
    if not seen:
        return Result("FAIL", "mount-path", f"data written at {mountpoint} is not seen by the second mount at {other}")
    failed = next((answer for answer in unmounts if not answer.ok), None)
    if failed is not None:
        return Result("FAIL", "mount-path", f"Unmount of a mounted volume answered {failed.describe()}: dockerd only logs a "
                      "warning and never sends that Unmount again (a leaked mount; a strict plugin then refuses Remove for good)")
    return passed("mount-path", f"mounted at {mountpoint}; Path agrees; a second mount sees the data; Unmount answers success")


async def _held(ctx: Context, name: str, mount_id: str, mountpoint: str, was_mount: bool) -> bool | None:
    """Whether the plugin still holds `name` for `mount_id`, as far as can be seen from here:
    Get's Status.mounts when it reports one, else whether the Mountpoint is still a mount point.
    None: nothing tells."""
    got = await ctx.get(name)
    volume = got.field("Volume")
    status = volume.get("Status") if isinstance(volume, dict) else None
    mounts = status.get("mounts") if isinstance(status, dict) else None
    if isinstance(mounts, dict):
        return mount_id in mounts
    if was_mount:
        return is_mount_point(mountpoint)
    return None


@check("mount-refcount", "two mount IDs: Unmount of one keeps the other's mount; of an unknown ID, releases nothing")
async def mount_refcount(ctx: Context) -> Result:
    shape = ctx.client.shape
    if shape.one_mount_id:
        return Result("SKIP", "mount-refcount", "Podman mounts once per volume, with one ID, and keeps its own count")
    name = await ctx.new_volume("refs")
    first, second, unknown = shape.mount_id(), shape.mount_id(), shape.mount_id()
    mountpoint = await ctx.mount(name, first)
    await ctx.mount(name, second)
    was_mount = is_mount_point(mountpoint)
    unmounted = await ctx.unmount(name, first)
    if not unmounted.ok:
        return Result("FAIL", "mount-refcount", f"Unmount of one of two mount IDs answered {unmounted.describe()}")
    held = await _held(ctx, name, second, mountpoint, was_mount)
    if held is None:
        await ctx.unmount(name, second)
        return Result("SKIP", "mount-refcount", "nothing here tells whether the plugin still holds the mount (no Status.mounts "
                      "in Get, and the Mountpoint is not a mount point)")
    if not held:
        await ctx.unmount(name, second)
        return Result("FAIL", "mount-refcount", "Unmount of the first of two mount IDs released the volume while the second "
                      "still uses it: the other container's mount is pulled from under it (count per mount ID, not per volume)")
    await ctx.unmount(name, unknown)
    if not await _held(ctx, name, second, mountpoint, was_mount):
        await ctx.unmount(name, second)
        return Result("FAIL", "mount-refcount", "Unmount of an ID that never mounted released the volume (dockerd sends "
                      "Unmount with the IDs it knows: after a restart those may be ones the plugin never saw)")
    last = await ctx.unmount(name, second)
    if not last.ok:
        return Result("FAIL", "mount-refcount", f"Unmount of the last mount ID answered {last.describe()}")
    if await _held(ctx, name, second, mountpoint, was_mount):
        return Result("FAIL", "mount-refcount", "after Unmount of every mount ID the volume is still held: a leaked mount")
    return passed("mount-refcount", "counted per mount ID; an unknown ID released nothing; the last Unmount released it")


@check("remove-while-mounted", "Remove of a mounted volume is refused, or its data survives")
async def remove_while_mounted(ctx: Context) -> Result:
    filled = await ctx.filled("busy", keep_mounted=True)
    name, mount_id, mountpoint, token = filled.name, filled.mount_id, filled.mountpoint, filled.token
    answer = await ctx.call(Operation.REMOVE, {"Name": name})
    if not answer.ok:
        ctx.refuses_mounted_remove = True
        await ctx.unmount(name, mount_id)
        return passed("remove-while-mounted", f"refused: {answer.err or answer.describe()}")
    ctx.refuses_mounted_remove = False
    await ctx.unmount(name, mount_id)
    if token is not None and read_token(mountpoint) != token:
        return Result("WARN", "remove-while-mounted", "Remove of a mounted volume succeeded and deleted the data under the running "
                      "container (after a purge dockerd can send it: the seed of 'pod stuck Terminating')")
    return Result("WARN", "remove-while-mounted", "Remove of a mounted volume succeeded (the data is still there): dockerd "
                  "now forgets a volume a container uses")


EMPTY_BODY_FAILS: Final = (Operation.CREATE, Operation.REMOVE, Operation.MOUNT, Operation.UNMOUNT, Operation.GET, Operation.PATH)


@check("empty-body", "every endpoint with an empty body (dockerd's retry) answers a JSON Err promptly, changes nothing")
async def empty_body(ctx: Context) -> Result:
    before = await ctx.listed()
    problems: list[str] = []
    for operation in EMPTY_BODY_FAILS:
        answer = await ctx.client.send(operation, b"")
        if answer.error is not None:
            problems.append(f"{operation.value}: {answer.error}")
        elif answer.ok:
            problems.append(f"{operation.value} answered success ({answer.describe()}): a phantom, dockerd believes it was done")
        elif answer.seconds > PODMAN_PLUGIN_TIMEOUT:
            problems.append(f"{operation.value} answered after {answer.seconds:.1f}s")
    for operation in (Operation.LIST, Operation.CAPABILITIES):
        answer = await ctx.client.send(operation, b"")
        if answer.error is not None:
            problems.append(f"{operation.value}: {answer.error}")
    after = await ctx.listed()
    if after != before:
        problems.append(f"List changed: {sorted(before ^ after)}")
    if problems:
        return Result("FAIL", "empty-body", "; ".join(problems))
    return passed("empty-body", "Create, Remove, Mount, Unmount, Get and Path refused an empty body; List and Capabilities answered")


BAD_BODIES: Final = (
    (Operation.CREATE, b"{not json"),
    (Operation.CREATE, b'{"Name": 5}'),
    (Operation.GET, b'{"Name": null}'),
    (Operation.MOUNT, b"[]"),
    (Operation.REMOVE, b'"just a string"'),
)


@check("bad-json", "garbage and wrong types answer a JSON Err, and the plugin stays up")
async def bad_json(ctx: Context) -> Result:
    problems: list[str] = []
    warnings: list[str] = []
    for operation, body in BAD_BODIES:
        answer = await ctx.client.send(operation, body)
        if answer.error is not None:
            problems.append(f"{operation.value} {body!r}: {answer.error}")
        elif answer.status == 200 and answer.err is None:
            problems.append(f"{operation.value} {body!r} answered success ({answer.describe()})")
        elif answer.err is None:
            warnings.append(f"{operation.value} {body!r} answered {answer.describe()} (not a JSON Err: dockerd shows the raw body)")
    alive = await ctx.call(Operation.ACTIVATE)
    if alive.error is not None:
        problems.append(f"afterwards the plugin does not answer: {alive.error}")
    if problems:
        return Result("FAIL", "bad-json", "; ".join(problems))
    if warnings:
        return Result("WARN", "bad-json", "; ".join(warnings))
    return passed("bad-json", f"{len(BAD_BODIES)} bad bodies, each answered a JSON Err; still up")


@check("names", "names dockerd accepts round-trip; '../x' and 'a/b' are refused")
async def names(ctx: Context) -> Result:
    name = await ctx.new_volume("A.b_c-9" + "x" * 40)
    got = await ctx.get(name)
    volume = got.field("Volume")
    if not isinstance(volume, dict) or volume.get("Name") != name or name not in await ctx.listed():
        return Result("FAIL", "names", f"{name} (a name dockerd accepts) does not round-trip: Get answered {got.describe()}")
    removed = await ctx.call(Operation.REMOVE, {"Name": name})
    must(removed, f"Remove {name}")
    accepted = []
    for bad in (f"../{ctx.prefix}-escape", f"{ctx.prefix}-a/b"):
        ctx.created.add(bad)
        answer = await ctx.call(Operation.CREATE, ctx.client.shape.create_body(bad, None))
        if answer.ok:
            accepted.append(bad)
            await ctx.call(Operation.REMOVE, {"Name": bad})
    if accepted:
        return Result("FAIL", "names", f"Create accepted {', '.join(repr(a) for a in accepted)}: a name with '/' or '..' can reach "
                      "outside the plugin's directory (dockerd never sends one, anything else on the socket can)")
    return passed("names", f"a {len(name)}-character name round-trips; '../x' and 'a/b' refused")


@check("concurrency", f"{CONCURRENCY} parallel Creates, Mounts and Unmounts on distinct names: all correct, List consistent")
async def concurrency(ctx: Context) -> Result:
    batch = [ctx.name(f"par{i}") for i in range(CONCURRENCY)]
    shape = ctx.client.shape
    failures: list[str] = []

    async def each(name: str) -> None:
        client = ConformClient(ctx.client.address, shape)  # a connection of its own, as dockerd opens one per call
        try:
            answer = await client.call(Operation.CREATE, shape.create_body(name, None))
            if not answer.ok:
                failures.append(f"Create {name}: {answer.describe()}")
                return
            mount_id = shape.mount_id()
            mounted = await client.call(Operation.MOUNT, {"Name": name, "ID": mount_id})
            if not mounted.ok:
                failures.append(f"Mount {name}: {mounted.describe()}")
                return
            unmounted = await client.call(Operation.UNMOUNT, {"Name": name, "ID": mount_id})
            if not unmounted.ok:
                failures.append(f"Unmount {name}: {unmounted.describe()}")
        finally:
            for operation, seconds in client.seconds.items():
                ctx.client.seconds[operation].extend(seconds)
            await client.aclose()

    async with trio.open_nursery() as nursery:
        for name in batch:
            nursery.start_soon(each, name)
    missing = set(batch) - await ctx.listed()
    if failures or missing:
        shown = failures[:3] + ([f"List misses {len(missing)}: {sorted(missing)[:3]}"] if missing else [])
        return Result("FAIL", "concurrency", f"{len(failures)} of {CONCURRENCY * 3} calls failed; " + "; ".join(shown))
    return passed("concurrency", f"{CONCURRENCY} volumes created, mounted and unmounted at once; List has them all")


@check("restart", "with --restart-cmd: volumes and data survive a restart of the plugin")
async def restart(ctx: Context) -> Result:
    if ctx.restart_cmd is None:
        return Result("SKIP", "restart", "give --restart-cmd CMD (a shell command that restarts the plugin) to check this")
    filled = await ctx.filled("restart")
    name = filled.name
    await ctx.client.aclose()
    done = await trio.run_process(["sh", "-c", ctx.restart_cmd], check=False, stdout=subprocess.DEVNULL, capture_stderr=True)
    if done.returncode != 0:
        return Result("FAIL", "restart", f"--restart-cmd exited {done.returncode}: {done.stderr.decode(errors='replace').strip()[:200]}")
    with trio.move_on_after(30):
        while (await ctx.call(Operation.ACTIVATE)).error is not None:
            await trio.sleep(0.2)
    if name not in await ctx.listed():
        return Result("FAIL", "restart", f"after the restart List has no {name}: dockerd's volume is stale (`docker volume ls` still "
                      "shows it; using it fails)")
    if filled.token is not None and not await ctx.still_has(filled):
        return Result("FAIL", "restart", f"after the restart {name}'s data is gone")
    return passed("restart", "the volume and its data survived the restart")


def latency_verdict(seconds: dict[Operation, list[float]], daemon: Literal["dockerd", "podman"]) -> Result:
    """Per-endpoint p50/p99 of every call of the run, against the daemon's timeouts."""
    if not seconds:
        return Result("SKIP", "latency", "no call answered")
    rows = []
    fail, warn = [], []
    for operation in sorted(seconds, key=lambda op: op.value):
        times = sorted(seconds[operation])
        p50 = statistics.median(times)
        p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
        rows.append(f"{operation.value} p50 {p50 * 1000:.0f} ms p99 {p99 * 1000:.0f} ms")
        slowest = times[-1]
        if slowest >= dockerd_timeout(operation):
            fail.append(f"{operation.value} took {slowest:.1f}s (dockerd gives up at {dockerd_timeout(operation):g}s)")
        elif slowest > PODMAN_PLUGIN_TIMEOUT:
            warn.append(f"{operation.value} took {slowest:.1f}s (past Podman's 5 s)")
    if fail or (warn and daemon == "podman"):
        return Result("FAIL", "latency", "; ".join(fail + warn) + "; " + ", ".join(rows))
    if warn:
        return Result("WARN", "latency", "; ".join(warn) + "; " + ", ".join(rows))
    return passed("latency", ", ".join(rows))


@check("latency", "per-endpoint p50/p99 over the run, against dockerd's timeouts (and Podman's 5 s)")
async def latency(ctx: Context) -> Result:
    return latency_verdict(dict(ctx.client.seconds), ctx.client.shape.timeout)
