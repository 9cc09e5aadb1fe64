"""The audit core: what the daemon (dockerd or Podman) believes, what the backend holds, and
where they disagree.

Pure: it compares three views that the shell gathers (daemon.py for dockerd's, backend_view for
the backend's, the event log for what dockerd was told), never talks to anything, and changes
nothing. Kinds (shared/contract.md):

* `stale-in-daemon`: dockerd lists or believes in a volume the backend lacks;
* `unknown-to-daemon`: the backend holds a volume that dockerd was told is gone, or was never
  told was created (a Create that finished after dockerd gave up);
* `metadata-lost`: dockerd forgot a volume's labels and options while the backend kept it (it was
  told the volume was removed or not found, then re-adopted it), or the options it shows differ
  from those the volume was created with;
* `leaked-mount`: the backend counts a mount that no running container holds;
* `shadowed`: a `local` volume hides a plugin volume of the same name.

Without an event log only what the two live views show can be judged (shadowed, stale entries
dockerd lists, leaked mounts the backend reports); the log adds what dockerd was told.

Podman differs in two ways that matter here (podman-behaviour.md): its volume list is its own
database, never the plugin's List, so its live view is authoritative (a backend volume missing
from it is unknown to Podman, with or without a log); and it takes any HTTP 200 answer as
success, `Err` or not, so the log is read that way for it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from chaosvol.core.events import CallEvent
from chaosvol.tools.boltdb import VolumeRecord

Kind = Literal["stale-in-daemon", "unknown-to-daemon", "metadata-lost", "leaked-mount", "shadowed"]


@dataclass(frozen=True, slots=True)
class DaemonVolume:
    name: str
    driver: str
    labels: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DaemonView:
    """dockerd's `GET /volumes` and which running containers use which volume."""

    volumes: tuple[DaemonVolume, ...] = ()
    warnings: tuple[str, ...] = ()
    in_use: Mapping[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)  # (driver, name) -> containers
    # True when `volumes` is the daemon's own record (Podman), not merged with the plugin's List.
    authoritative: bool = False
    name: str = "dockerd"  # how findings name the daemon
    # dockerd's own volume records (its metadata.db), when they could be read; a volume listed
    # without one is there only because the plugin's List returned it.
    records: Mapping[str, VolumeRecord] | None = None
    records_note: str | None = None  # why `records` is None
    # How this dockerd records a plain `docker volume create` (no labels, no options): `{}` (20.10,
    # measured), or null as a lookup's re-adoption does (26.1, measured; assumed for every later
    # version). Only with `{}` does a null record tell a re-adoption apart from a plain create.
    plain_create_is_null: bool = True


@dataclass(frozen=True, slots=True)
class BackendView:
    """The backend's volumes; each with its mounts by ID, or None when the backend does not say."""

    volumes: Mapping[str, Mapping[str, int] | None] = field(default_factory=dict)


@dataclass(slots=True)
class LogView:
    """What the event log says dockerd was told, per volume."""

    believed: dict[str, bool] = field(default_factory=dict)
    create_opts: dict[str, dict[str, str]] = field(default_factory=dict)
    purged_while_kept: set[str] = field(default_factory=set)
    mounts: dict[str, dict[str, int]] = field(default_factory=dict)
    made_by_backend: set[str] = field(default_factory=set)  # a Create reached the backend and it acted
    # dockerd purged a volume it knew because a lookup failed (never told by a Remove that it is gone)
    forgotten: set[str] = field(default_factory=set)
    # a Remove of a volume dockerd knew failed (answered an error, or not at all): `rm -f` then drops
    # dockerd's record anyway, and a later lookup re-adopts the volume without its labels
    remove_failed: set[str] = field(default_factory=set)

    err_in_200_is_success: bool = False  # Podman's reading of an answer

    @classmethod
    def from_records(cls, records: Iterable[CallEvent], *, podman: bool = False) -> LogView:
        view = cls(err_in_200_is_success=podman)
        # Arrival order: `t` first, since a log appended by several runs restarts `seq` each time.
        for record in sorted(records, key=lambda r: (r.t, r.seq)):
            view._apply(record)
        return view

    def _apply(self, record: CallEvent) -> None:
        operation, volume = record.op, record.volume
        if volume is None:
            return
        # dockerd never read an answer when it hung up first, or when we hung or reset.
        reply = record.reply if record.outcome == "answered" else None
        answered_ok = reply is not None and reply.status == 200 and (self.err_in_200_is_success or reply.err is None)
        backend = record.backend
        backend_ok = record.forwarded and backend is not None and backend.ok
        if operation == "Create":
            self.believed.setdefault(volume, False)
            if backend_ok:
                self.made_by_backend.add(volume)
            if answered_ok:
                self.believed[volume] = True
                if not record.retry:  # a retry's empty body carried no options
                    self.create_opts[volume] = dict(record.opts or {})
                self.purged_while_kept.discard(volume)
                self.forgotten.discard(volume)
                self.remove_failed.discard(volume)
            elif reply is not None and volume in self.made_by_backend and not self.believed[volume]:
                # dockerd was told its create failed, but the backend made the volume (a Create
                # cut after the backend acted, then a retry refused; or an error after): it is
                # left behind, and re-adopted later without the create's labels and options.
                self.purged_while_kept.add(volume)
        elif operation == "Get":
            if reply is None:
                return  # no answer (hang, reset): a transport error, dockerd purges nothing
            found = answered_ok and reply.found is not False
            if found:
                self.believed[volume] = True
            elif self.believed.get(volume):
                # Any answered Get failure means "does not exist" to dockerd: it purges the
                # volume's metadata (protocol.md §5.2).
                self.believed[volume] = False
                self.purged_while_kept.add(volume)
                self.forgotten.add(volume)
        elif operation == "Remove":
            self.believed.setdefault(volume, False)
            if answered_ok:
                self.believed[volume] = False
                self.forgotten.discard(volume)
                self.remove_failed.discard(volume)
                if not backend_ok:
                    self.purged_while_kept.add(volume)  # told removed; the backend kept it
            elif self.believed[volume]:
                self.remove_failed.add(volume)
            if backend_ok:
                self.made_by_backend.discard(volume)
        elif operation in ("Mount", "Unmount") and backend_ok:
            mount_id = record.mount_id
            if mount_id is None:
                return
            counts = self.mounts.setdefault(volume, {})
            counts[mount_id] = counts.get(mount_id, 0) + (1 if operation == "Mount" else -1)
            if counts[mount_id] <= 0:
                del counts[mount_id]


@dataclass(frozen=True, slots=True)
class Finding:
    volume: str
    kind: Kind
    daemon: str
    backend: str
    who: str = "dockerd"
    evidence: tuple[str, ...] = ()  # what shows it: the daemon's API, its records, the event log, the backend

    def __str__(self) -> str:
        shown = f" (evidence: {', '.join(self.evidence)})" if self.evidence else ""
        return f"{self.kind} {self.volume}: {self.who} {self.daemon}; backend {self.backend}{shown}"

    def to_json(self) -> dict[str, Any]:
        return {"volume": self.volume, "kind": self.kind, "daemon": self.daemon, "backend": self.backend, "evidence": list(self.evidence)}


def audit(driver: str, daemon: DaemonView, backend: BackendView, log: LogView | None = None) -> list[Finding]:
    """Every inconsistency between the daemon's view of `driver` and the backend, sorted by volume.

    When dockerd's own records could be read they decide what dockerd holds (they are what it
    restores from, and what `inspect` shows); the event log then says only what no record can
    (that a volume was purged, and so re-adopted without its labels, and what options its Create
    carried). Without them, the event log stands in for them (`_by_log`)."""
    ours = {v.name: v for v in daemon.volumes if v.driver == driver}
    held = backend.volumes
    records = daemon.records if not daemon.authoritative else None
    believed: Mapping[str, bool] = log.believed if log is not None else {}
    if daemon.authoritative:  # its list is what it believes, whatever it was told
        believed = {name: name in ours for name in set(ours) | set(held)}
    names = sorted(set(ours) | set(held) | set(believed) | {n for n, r in (records or {}).items() if r.driver == driver})
    judge = _Judge(driver, daemon, log, believed, ours, {v.name for v in daemon.volumes if v.driver == "local"})
    findings: list[Finding] = []
    for name in names:
        if records is not None:
            findings.extend(judge.by_records(name, records.get(name), name in held))
        else:
            findings.extend(judge.by_log(name, name in held))
        if name in held:
            findings.extend(judge.mounts(name, held[name]))
    if daemon.name != "dockerd":
        findings = [dataclasses.replace(finding, who=daemon.name) for finding in findings]
    return findings


API, TOLD, KEPT, RECORDS = "API", "event log", "backend", "records"


@dataclass(frozen=True, slots=True)
class _Judge:
    driver: str
    daemon: DaemonView
    log: LogView | None
    believed: Mapping[str, bool]
    ours: Mapping[str, DaemonVolume]
    local: set[str]

    def _ev(self, *sources: str) -> tuple[str, ...]:
        names = {API: f"{self.daemon.name} API", RECORDS: f"{self.daemon.name}'s records"}
        return tuple(names.get(source, source) for source in sources)

    def by_records(self, name: str, record: VolumeRecord | None, in_backend: bool) -> list[Finding]:
        """dockerd's record of `name` (None: it has none) against the backend."""
        driver, log = self.driver, self.log
        if not in_backend:
            if record is not None and record.driver == driver:
                told = (TOLD,) if log is not None and self.believed.get(name) else ()
                return [Finding(name, "stale-in-daemon", f"has a record of {name!r} under {driver}", "has no such volume",
                                evidence=self._ev(RECORDS, *told, KEPT))]
            # Listed without a record: only the plugin's List (at this moment) says it exists, and
            # dockerd holds nothing of it (a List ghost goes when the List stops saying so).
            return []
        if record is not None and record.driver == "local":
            return [Finding(name, "shadowed", f"has a local volume {name!r}", f"holds a plugin volume {name!r} that it hides",
                            evidence=self._ev(RECORDS, KEPT))]
        if record is None or record.driver != driver:
            listed = " (it lists it only from the plugin's List)" if name in self.ours else ""
            if log is None:
                return [Finding(name, "unknown-to-daemon", f"has no record of {name!r}{listed}", f"holds {name!r}", evidence=self._ev(RECORDS, KEPT))]
            if self.believed.get(name) or name in log.forgotten:
                # dockerd knew the volume and was never told by a Remove that it is gone: it dropped
                # its record on its own (a forced rm after a failed Remove, a lookup that failed).
                why = "a forced rm dropped it after the plugin's Remove failed" if self.believed.get(name) else "a failed lookup purged it"
                return [
                    Finding(name, "unknown-to-daemon", f"has no record of {name!r}{listed}: {why}", f"holds {name!r}",
                            evidence=self._ev(RECORDS, TOLD, KEPT)),
                    Finding(name, "metadata-lost", f"dropped its record of {name!r} ({why}), and with it the labels and options it was "
                            "created with", f"kept {name!r} all along", evidence=self._ev(RECORDS, TOLD, KEPT)),
                ]
            why = "it was told the volume is gone, or never that it was created"
            return [Finding(name, "unknown-to-daemon", f"has no record of {name!r}{listed}: {why}", f"holds {name!r}",
                            evidence=self._ev(RECORDS, TOLD, KEPT))]
        if log is None:
            return []
        lookup_record = record.labels is None and record.options is None
        after_failed_remove = name in log.remove_failed and not self.daemon.plain_create_is_null
        if lookup_record and (name in log.purged_while_kept or after_failed_remove):
            # Purged (or dropped by a forced rm after a failed Remove, which leaves no trace in the
            # calls), then re-adopted by a lookup: the record it wrote again carries neither labels
            # nor options (a `docker volume create` that adopts it writes its own: on 20.10 `{}`
            # when none; 26.1 writes null then, so there a plain create looks like a lookup: after
            # a failed Remove, which a plain failed `rm` leaves too, it says nothing there).
            how = "" if name in log.purged_while_kept else " (after its Remove failed: a forced rm drops the record)"
            return [Finding(name, "metadata-lost", f"re-adopted {name!r} without the labels and options it was created with{how}",
                            f"kept {name!r} all along", evidence=self._ev(TOLD, RECORDS, KEPT))]
        created = log.create_opts.get(name)
        if created and not _same_options(record.options, created):
            return [Finding(name, "metadata-lost", f"records options {dict(record.options or {})}", f"was created with options {created}",
                            evidence=self._ev(RECORDS, TOLD))]
        return []

    def by_log(self, name: str, in_backend: bool) -> list[Finding]:
        """Without dockerd's records: what it was told (the log) and what it lists (the API)."""
        driver, log, ours, believed = self.driver, self.log, self.ours, self.believed
        findings: list[Finding] = []
        if name in self.local and in_backend:
            findings.append(Finding(name, "shadowed", f"has a local volume {name!r}", f"holds a plugin volume {name!r} that it hides",
                                    evidence=self._ev(API, KEPT)))
        if not in_backend:
            if name in ours:
                findings.append(Finding(name, "stale-in-daemon", f"lists {name!r} under {driver}", "has no such volume", evidence=self._ev(API, KEPT)))
            elif believed.get(name):
                findings.append(Finding(name, "stale-in-daemon", f"was told {name!r} exists and keeps it cached", "has no such volume",
                                        evidence=self._ev(TOLD, KEPT)))
            return findings
        if (log is not None or self.daemon.authoritative) and name in believed and not believed[name] and name not in self.local:
            findings.append(Finding(
                name, "unknown-to-daemon", f"has no record of {name!r} (it was told the volume is gone, or never that it was created)",
                f"holds {name!r}", evidence=self._ev(API, KEPT) if self.daemon.authoritative else self._ev(TOLD, KEPT),
            ))
        elif log is not None and believed.get(name) and name in log.purged_while_kept:
            findings.append(Finding(
                name, "metadata-lost", f"re-adopted {name!r} without the labels and options it was created with", f"kept {name!r} all along",
                evidence=self._ev(TOLD, KEPT),
            ))
        elif log is not None and name in ours and log.create_opts.get(name) and not _same_options(ours[name].options, log.create_opts[name]):
            findings.append(Finding(
                name, "metadata-lost", f"shows options {dict(ours[name].options or {})}", f"was created with options {log.create_opts[name]}",
                evidence=self._ev(API, TOLD),
            ))
        return findings

    def mounts(self, name: str, counted: Mapping[str, int] | None) -> list[Finding]:
        source = KEPT
        if counted is None and self.log is not None:
            counted, source = self.log.mounts.get(name, {}), TOLD
        if not counted or self.daemon.in_use.get((self.driver, name)):
            return []
        ids = ", ".join(f"{mount_id[:12]} ({count}x)" if count > 1 else mount_id[:12] for mount_id, count in sorted(counted.items()))
        return [Finding(name, "leaked-mount", "has no running container using it", f"still counts mounts {ids}", evidence=self._ev(API, source))]


def _same_options(shown: Mapping[str, str] | None, created: Mapping[str, str]) -> bool:
    """Whether dockerd still shows the options a volume was created with (redacted values in the
    log are compared by name only)."""
    shown = dict(shown or {})
    if set(shown) != set(created):
        return False
    return all(value == "<redacted>" or shown[key] == value for key, value in created.items())
