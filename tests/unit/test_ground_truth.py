"""The audit's model of each daemon, row by row from the measured ground truth: for each row of
shared/dockerd-behaviour.md §1 (dockerd 20.10 and 26.1 behave the same there, measured side by
side: shared/dockerd-26.md) and of the Podman table (shared/podman-behaviour.md), the calls the
event log holds, the end state of the daemon's records and of the backend the row describes, and
the kinds the audit must give. A row is one line of the table: change the table, change a row."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import pytest

from chaosvol.core.events import CallEvent
from chaosvol.tools.audit import BackendView, DaemonView, DaemonVolume, LogView, audit
from chaosvol.tools.boltdb import VolumeRecord

D = "cv"
seq = iter(range(1, 100_000))


def call(op: str, *, answer: int | None = 200, err: str | None = None, backend: int | None = 200, found: bool | None = None,
         mount_id: str | None = None, outcome: str = "answered", retry_of: int | None = None, opts: dict[str, str] | None = None) -> CallEvent:
    """One logged call on volume v: `answer` None = dockerd got none (cut); `backend` None = not forwarded."""
    reply: dict[str, Any] | None = None if answer is None else {"status": answer, "err": err}
    if reply is not None and found is not None:
        reply["found"] = found
    event = CallEvent.from_json({
        "seq": next(seq), "op": op, "volume": "v", "mount_id": mount_id, "forwarded": backend is not None,
        "backend": None if backend is None else {"status": backend, "err": None if backend == 200 else "refused"},
        "reply": reply, "opts": opts, "outcome": outcome if answer is not None else "reset",
    })
    return dataclasses.replace(event, retry=retry_of is not None, retry_of=retry_of)


CREATED = [call("Create")]
PLAIN = VolumeRecord("v", D, {}, {})  # a `docker volume create` with no labels or options, on 20.10
LOOKUP = VolumeRecord("v", D, None, None)  # written by a re-adoption through Get or List; on 26.1 also by a plain create
# How each dockerd records a plain `docker volume create` (the one difference the audit meets):
PLAIN_BY_VERSION = {"20.10": PLAIN, "26.1": LOOKUP}
MOUNT = "m" * 64


@dataclass
class Row:
    fault: str  # the row of the table, as it reads there
    events: list[CallEvent]
    record: VolumeRecord | None  # dockerd's record of v at the end (None: none)
    backend: dict[str, int] | None  # the backend's mounts of v (None: it has no v)
    kinds: list[str]
    listed: bool = False  # the API lists v (dockerd's records merged with the plugin's List)
    on_26: list[str] | None = None  # the kinds on 26.1, where they differ (its plain record is a lookup's)


def cut_then_retry(acted: bool, retry_status: int, retry_backend: int | None) -> list[CallEvent]:
    first = call("Create", answer=None, backend=200 if acted else None)
    return [first, call("Create", answer=retry_status, err=None if retry_status == 200 else "x", backend=retry_backend, retry_of=first.seq)]


DOCKERD = [
    Row("Remove answers OK but does nothing (drop)", [*CREATED, call("Remove", backend=None)], None, {}, ["unknown-to-daemon"]),
    Row("... then a lookup re-adopts it", [*CREATED, call("Remove", backend=None), call("Get", found=True)], LOOKUP, {}, ["metadata-lost"]),
    Row("Remove deletes, then answers Err", [*CREATED, call("Remove", answer=500, err="x")], PLAIN, None, ["stale-in-daemon"]),
    Row("Remove errors without deleting, user runs rm -f", [*CREATED, call("Remove", answer=500, err="x", backend=None)], None, {},
        ["metadata-lost", "unknown-to-daemon"], listed=True),
    Row("... then a lookup re-adopts it (`run -v v:`)", [*CREATED, call("Remove", answer=500, err="x", backend=None), call("Get", found=True)],
        LOOKUP, {}, ["metadata-lost"], on_26=[]),  # undecidable there: a plain create records the same, and a plain failed rm keeps it
    Row("Remove errors without deleting, plain rm (record kept)", [*CREATED, call("Remove", answer=500, err="x", backend=None)], PLAIN, {}, []),
    Row("Create times out, plugin creates it later", [call("Create", outcome="client-gone")], None, {}, ["unknown-to-daemon"]),
    Row("Create acts, connection dropped, retry gets an error", cut_then_retry(True, 500, 500), None, {}, ["unknown-to-daemon"]),
    Row("... then a lookup re-adopts it", [*cut_then_retry(True, 500, 500), call("Get", found=True)], LOOKUP, {}, ["metadata-lost"]),
    Row("Create acts, connection dropped, retry answered success", cut_then_retry(True, 200, None), PLAIN, {}, []),
    Row("Create not done, connection dropped, retry answered success (phantom)", cut_then_retry(False, 200, None), PLAIN, None, ["stale-in-daemon"]),
    Row("Get answers Err for an existing volume", [*CREATED, call("Get", answer=500, err="x", backend=None)], None, {},
        ["metadata-lost", "unknown-to-daemon"]),
    Row("... then a lookup re-adopts it", [*CREATED, call("Get", answer=500, err="x", backend=None), call("Get", found=True)], LOOKUP, {},
        ["metadata-lost"]),
    Row("... then `docker volume create` adopts it again (its labels written again)",
        [*CREATED, call("Get", answer=500, err="x", backend=None), call("Get", found=True)], VolumeRecord("v", D, {"k": "v"}, None), {}, []),
    Row("... during `run -v v:` a local volume shadows it", [*CREATED, call("Get", answer=500, err="x", backend=None)],
        VolumeRecord("v", "local", {}, {}), {}, ["shadowed"]),
    Row("Get times out / EOF (transport)", [*CREATED, call("Get", answer=None, backend=None)], PLAIN, {}, []),
    Row("Get ghost, then create", [call("Get", found=True, backend=None)], PLAIN, None, ["stale-in-daemon"]),
    Row("List omits a volume", CREATED, PLAIN, {}, []),
    Row("List ghost (listed, no record, the backend has none)", [], None, None, [], listed=True),
    Row("Mount Err, nothing mounted", [*CREATED, call("Mount", answer=500, err="x", backend=None, mount_id=MOUNT)], PLAIN, {}, []),
    Row("Mount Err after the backend mounted (a hidden mount)", [*CREATED, call("Mount", answer=500, err="x", mount_id=MOUNT)], PLAIN,
        {MOUNT: 1}, ["leaked-mount"]),
    Row("Unmount Err", [*CREATED, call("Mount", mount_id=MOUNT), call("Unmount", answer=500, err="x", backend=None, mount_id=MOUNT)], PLAIN,
        {MOUNT: 1}, ["leaked-mount"]),
    Row("Create options differ from what dockerd recorded", [call("Create", opts={"size": "1"})], VolumeRecord("v", D, {}, {"size": "2"}), {},
        ["metadata-lost"]),
]


def kinds_of(row: Row, daemon: DaemonView, log: LogView) -> list[str]:
    return sorted(f.kind for f in audit(D, daemon, BackendView({} if row.backend is None else {"v": row.backend}), log) if f.volume == "v")


@pytest.mark.parametrize("version", sorted(PLAIN_BY_VERSION))
@pytest.mark.parametrize("row", DOCKERD, ids=[f"{i:02d} {r.fault}" for i, r in enumerate(DOCKERD)])
def test_dockerd_rows(row: Row, version: str) -> None:
    record = PLAIN_BY_VERSION[version] if row.record is PLAIN else row.record
    listed = (DaemonVolume("v", record.driver if record else D),) if row.listed or record else ()
    daemon = DaemonView(listed, records={} if record is None else {"v": record}, plain_create_is_null=version == "26.1")
    expected = row.on_26 if version == "26.1" and row.on_26 is not None else row.kinds
    assert kinds_of(row, daemon, LogView.from_records(row.events)) == expected


# Podman: its volume list is its own database (authoritative), it never asks List, it takes any
# HTTP 200 as success, Err or not (podman-behaviour.md §6).
PODMAN = [
    Row("drop-removes: rm exits 0, the volume never shows again", [*CREATED, call("Remove", backend=None)], None, {}, ["unknown-to-daemon"]),
    Row("get-fails: rm fails, yet Podman dropped the volume, never sent Remove", [*CREATED, call("Get", answer=500, err="x", backend=None)],
        None, {}, ["unknown-to-daemon"]),
    Row("create-err-200: create exits 0 on a Create the backend never did", [call("Create", answer=200, err="x", backend=None)], PLAIN, None,
        ["stale-in-daemon"]),
    Row("unmount-fails: run exits 0, the mount count stays", [*CREATED, call("Mount", mount_id=MOUNT), call("Unmount", answer=500, err="x",
        backend=None, mount_id=MOUNT)], PLAIN, {MOUNT: 1}, ["leaked-mount"]),
    Row("nothing injected", [*CREATED], PLAIN, {}, []),
]


@pytest.mark.parametrize("row", PODMAN, ids=[f"{i:02d} {r.fault}" for i, r in enumerate(PODMAN)])
def test_podman_rows(row: Row) -> None:
    listed = (DaemonVolume("v", D),) if row.record is not None else ()
    daemon = DaemonView(listed, authoritative=True, name="Podman")
    assert kinds_of(row, daemon, LogView.from_records(row.events, podman=True)) == row.kinds
