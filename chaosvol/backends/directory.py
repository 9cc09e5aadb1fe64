"""The built-in backend: a correct volume plugin keeping each volume as a directory.

Layout under the root (state survives restarts; the in-memory index is rebuilt at start):

    ROOT/volumes/NAME/_data        the volume's data, returned as Mountpoint
    ROOT/volumes/NAME/meta.json    {"created_at", "opts", "mounts": {mount ID: count}}
    ROOT/trash/                    removed volumes on their way out

Rules it keeps: Create is idempotent; Mount and Unmount count per (volume, mount ID), since one
ID can be mounted twice (protocol.md §3.2); Remove refuses a mounted volume, naming the IDs;
names with `/`, NUL, `.` or `..`, or over 255 bytes are refused with a clear Err and nothing is
created outside the root. Errors are HTTP 500 + `{"Err": ...}`, like go-plugins-helpers.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import trio

from chaosvol.backends import AnswerSink
from chaosvol.core.protocol import Operation, PluginCall, PluginReply, decode_first_json_value, field_of

log = logging.getLogger(__name__)


@dataclass(slots=True)
class VolumeState:
    created_at: str
    opts: dict[str, Any] = field(default_factory=dict)
    mounts: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"created_at": self.created_at, "opts": self.opts, "mounts": self.mounts}


class VolumeError(Exception):
    """A call this backend refuses; the message is the Err dockerd shows."""


class DirectoryBackend:
    """Volumes as directories under `root`. All calls are served in process."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).absolute()
        self.name = f"builtin:{self.root}"
        self._volumes_dir = self.root / "volumes"
        self._trash = self.root / "trash"
        self._volumes_dir.mkdir(parents=True, exist_ok=True)
        self._trash.mkdir(exist_ok=True)
        self._volumes: dict[str, VolumeState] = {}
        self._load()

    def _load(self) -> None:
        for entry in self._volumes_dir.iterdir():
            try:
                self._real_directory(entry)
                fd = os.open(entry / "meta.json", os.O_RDONLY | os.O_NOFOLLOW)
                with open(fd, encoding="utf-8") as handle:
                    state = json.load(handle)
                self._volumes[entry.name] = VolumeState(
                    str(state["created_at"]), dict(state.get("opts") or {}), {str(k): int(v) for k, v in (state.get("mounts") or {}).items()}
                )
            except (OSError, ValueError, KeyError, TypeError, VolumeError) as exc:
                log.warning("built-in backend: skipping %s: no readable meta.json (%s)", entry, exc)
        # A crash during Remove leaves half-deleted trees here: finish the job.
        for leftover in self._trash.iterdir():
            _delete(leftover)

    def mounts_of(self, name: str) -> dict[str, int]:
        return dict(self._volumes[name].mounts)

    async def aclose(self) -> None:
        return None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await trio.sleep_forever()  # nothing to keep: every call is done in process

    async def call(self, call: PluginCall, sink: AnswerSink | None = None) -> PluginReply:
        """The answer, whole (it is in memory already: nothing to pass on as it arrives)."""
        try:
            return await self._dispatch(call)
        except VolumeError as exc:
            return PluginReply.error(str(exc))
        except OSError as exc:  # disk full, permissions: an honest error, never a crash
            return PluginReply.error(f"built-in backend: {exc}")

    async def _dispatch(self, call: PluginCall) -> PluginReply:
        op = call.operation
        if op is Operation.ACTIVATE:
            return PluginReply.json({"Implements": ["VolumeDriver"]})
        if op is Operation.CAPABILITIES:
            return PluginReply.json({"Capabilities": {"Scope": "local"}})
        if op is Operation.LIST:
            return PluginReply.json(
                {"Volumes": [self._describe(name, state) for name, state in sorted(self._volumes.items())], "Err": ""}
            )
        body = self._body(call)
        name = self._name(body)
        if op is Operation.CREATE:
            return self._create(name, field_of(body, "Opts"))
        if op is Operation.GET:
            if name not in self._volumes:
                raise VolumeError(f"no such volume: {name!r}")
            return PluginReply.json({"Volume": self._describe(name, self._volumes[name], status=True), "Err": ""})
        state = self._existing(name)
        if op is Operation.PATH:
            return PluginReply.json({"Mountpoint": str(self._real_directory(self._data(name))), "Err": ""})
        if op is Operation.REMOVE:
            return await self._remove(name, state)
        mount_id = field_of(body, "ID")
        if not isinstance(mount_id, str) or not mount_id:
            raise VolumeError(f"{op.value} needs a mount ID (ID)")
        if op is Operation.MOUNT:
            self._real_directory(self._dir(name))
            self._real_directory(self._data(name))
            state.mounts[mount_id] = state.mounts.get(mount_id, 0) + 1
            self._save(name, state)
            return PluginReply.json({"Mountpoint": str(self._data(name)), "Err": ""})
        assert op is Operation.UNMOUNT
        count = state.mounts.get(mount_id, 0)
        if count == 0:
            raise VolumeError(f"volume {name!r} is not mounted by ID {mount_id}")
        if count == 1:
            del state.mounts[mount_id]
        else:
            state.mounts[mount_id] = count - 1
        self._save(name, state)
        return PluginReply.ok()

    @staticmethod
    def _body(call: PluginCall) -> dict[str, Any]:
        if call.retry:
            raise VolumeError(f"empty request body ({call.operation.value} needs a JSON body)")
        try:
            body = decode_first_json_value(call.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise VolumeError(f"request body is not JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise VolumeError("request body must be a JSON object")
        return body

    @staticmethod
    def _name(body: dict[str, Any]) -> str:
        name = field_of(body, "Name")
        if not isinstance(name, str):
            raise VolumeError("request needs Name, a string")
        if name in ("", ".", "..") or "/" in name or "\0" in name or len(name.encode("utf-8", "surrogateescape")) > 255:
            raise VolumeError(
                f"invalid volume name {name!r}: it must be 1 to 255 bytes, not '.' or '..', without '/' or NUL"
            )
        return name

    def _existing(self, name: str) -> VolumeState:
        state = self._volumes.get(name)
        if state is None:
            raise VolumeError(f"no such volume: {name!r}")
        return state

    def _real_directory(self, path: Path) -> Path:
        """`path` itself, if it is a directory and not a symbolic link: a link planted in the root
        must never send a container (or our own writes) outside it."""
        info = os.lstat(path)
        if not stat.S_ISDIR(info.st_mode):
            raise VolumeError(f"{path} is not a directory this backend made (a symbolic link or a file); refusing to use it")
        return path

    def _dir(self, name: str) -> Path:
        return self._volumes_dir / name

    def _data(self, name: str) -> Path:
        return self._volumes_dir / name / "_data"

    def _describe(self, name: str, state: VolumeState, status: bool = False) -> dict[str, Any]:
        described: dict[str, Any] = {"Name": name, "Mountpoint": str(self._data(name)), "CreatedAt": state.created_at}
        if status:
            described["Status"] = {"mounts": dict(state.mounts)}
        return described

    def _create(self, name: str, opts: Any) -> PluginReply:
        if name in self._volumes:
            return PluginReply.ok()
        if opts is not None and not isinstance(opts, dict):
            raise VolumeError("Opts must be an object of strings")
        state = VolumeState(datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), dict(opts or {}))
        try:
            for directory in (self._dir(name), self._data(name)):
                try:
                    os.mkdir(directory, 0o755)
                except FileExistsError:
                    self._real_directory(directory)  # a leftover of ours is fine; a planted link is not
            self._save(name, state)
        except OSError as exc:
            raise VolumeError(f"cannot create volume {name!r}: {exc.strerror or exc}") from exc
        self._volumes[name] = state
        return PluginReply.ok()

    async def _remove(self, name: str, state: VolumeState) -> PluginReply:
        if state.mounts:
            ids = ", ".join(f"{mount_id} ({count}x)" if count > 1 else mount_id for mount_id, count in state.mounts.items())
            raise VolumeError(f"volume {name!r} is busy (device or resource busy): still mounted by {ids}")
        # Forget it first and move it out of the way atomically; deleting a big tree can take a
        # while and must not block other calls.
        del self._volumes[name]
        doomed = self._trash / f"{uuid.uuid4().hex}"
        try:
            os.rename(self._dir(name), doomed)
        except OSError as exc:
            self._volumes[name] = state
            raise VolumeError(f"cannot remove volume {name!r}: {exc.strerror or exc}") from exc
        await trio.to_thread.run_sync(_delete, doomed)
        return PluginReply.ok()

    def _save(self, name: str, state: VolumeState) -> None:
        meta = self._dir(name) / "meta.json"
        temporary = meta.with_suffix(".tmp")
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(state.to_json(), handle)
        # Atomic against a crash of this process (what we promise), not against power loss:
        # an fsync per Mount would cost more than the whole proxy.
        os.replace(temporary, meta)


def _delete(path: Path) -> None:
    """Delete a removed volume's tree; a symbolic link is unlinked, never followed."""
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)
