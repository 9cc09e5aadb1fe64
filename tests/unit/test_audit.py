"""The audit core: each inconsistency kind from the views and the event log."""

from __future__ import annotations

import dataclasses
from typing import Any

from chaosvol.core.events import CallEvent
from chaosvol.tools.audit import BackendView, DaemonView, DaemonVolume, LogView, audit
from chaosvol.tools.boltdb import VolumeRecord

ID = "a" * 64
seq = iter(range(1, 10_000))


def rec(op: str, volume: str, *, status: int = 200, err: str | None = None, forwarded: bool = True,
        backend: dict[str, Any] | None = None, mount_id: str | None = None, opts: dict[str, str] | None = None,
        found: bool | None = None, reply: bool = True) -> CallEvent:
    answer: dict[str, Any] | None = {"status": status, "err": err} if reply else None
    if answer is not None and found is not None:
        answer["found"] = found
    return CallEvent.from_json({
        "seq": next(seq), "op": op, "volume": volume, "mount_id": mount_id, "forwarded": forwarded,
        "backend": backend if backend is not None else ({"status": 200, "err": None} if forwarded else None),
        "reply": answer, "opts": opts,
    })


def kinds(findings: list[Any]) -> list[tuple[str, str]]:
    return [(f.kind, f.volume) for f in findings]


def test_all_agree() -> None:
    log = LogView.from_records([rec("Create", "v1"), rec("Get", "v1", found=True)])
    daemon = DaemonView((DaemonVolume("v1", "cv"),))
    assert audit("cv", daemon, BackendView({"v1": {}}), log) == []


def test_a_dropped_remove_leaves_a_volume_unknown_to_the_daemon_then_metadata_lost_once_readopted() -> None:
    records = [rec("Create", "v1"), rec("Remove", "v1", forwarded=False)]
    backend = BackendView({"v1": {}})
    daemon = DaemonView((DaemonVolume("v1", "cv"),))  # List still shows it
    assert kinds(audit("cv", daemon, backend, LogView.from_records(records))) == [("unknown-to-daemon", "v1")]
    records.append(rec("Get", "v1", found=True))  # docker volume inspect re-adopts it
    assert kinds(audit("cv", daemon, backend, LogView.from_records(records))) == [("metadata-lost", "v1")]


def test_a_remove_that_deleted_but_reported_failure_is_stale_in_the_daemon() -> None:
    records = [rec("Create", "v1"), rec("Remove", "v1", status=500, err="chaosvol: injected: Remove failed")]
    found = audit("cv", DaemonView(), BackendView({}), LogView.from_records(records))
    assert kinds(found) == [("stale-in-daemon", "v1")]
    assert "told 'v1' exists" in found[0].daemon


def test_a_get_error_purges_and_readoption_loses_metadata() -> None:
    records = [rec("Create", "v1", opts={"size": "1"}), rec("Get", "v1", status=500, err="x", forwarded=False),
               rec("Get", "v1", found=True)]
    daemon = DaemonView((DaemonVolume("v1", "cv"),))
    assert kinds(audit("cv", daemon, BackendView({"v1": {}}), LogView.from_records(records))) == [("metadata-lost", "v1")]


def test_a_transport_failure_on_get_purges_nothing() -> None:
    records = [rec("Create", "v1"), rec("Get", "v1", reply=False), rec("Get", "v1", found=True)]
    daemon = DaemonView((DaemonVolume("v1", "cv"),))
    assert audit("cv", daemon, BackendView({"v1": {}}), LogView.from_records(records)) == []


def test_options_that_differ_from_create_are_metadata_lost() -> None:
    records = [rec("Create", "v1", opts={"size": "1"})]
    daemon = DaemonView((DaemonVolume("v1", "cv", options={}),))
    assert kinds(audit("cv", daemon, BackendView({"v1": {}}), LogView.from_records(records))) == [("metadata-lost", "v1")]


def test_a_late_create_leaves_an_orphan_unknown_to_the_daemon() -> None:
    records = [rec("Get", "v1", status=500, err="no such volume", found=False),
               dataclasses.replace(rec("Create", "v1"), outcome="client-gone")]  # dockerd hung up before the answer
    daemon = DaemonView((DaemonVolume("v1", "cv"),))
    assert kinds(audit("cv", daemon, BackendView({"v1": {}}), LogView.from_records(records))) == [("unknown-to-daemon", "v1")]


def test_a_ghost_listed_or_believed_is_stale_in_the_daemon() -> None:
    daemon = DaemonView((DaemonVolume("g7", "cv"),))
    assert kinds(audit("cv", daemon, BackendView({}))) == [("stale-in-daemon", "g7")]
    log = LogView.from_records([rec("Get", "x7", forwarded=False, found=True)])
    assert kinds(audit("cv", DaemonView(), BackendView({}), log)) == [("stale-in-daemon", "x7")]


def test_a_mount_the_backend_still_counts_without_a_container_is_leaked() -> None:
    found = audit("cv", DaemonView((DaemonVolume("v1", "cv"),)), BackendView({"v1": {ID: 2}}))
    assert kinds(found) == [("leaked-mount", "v1")] and "aaaaaaaaaaaa (2x)" in found[0].backend
    in_use = DaemonView((DaemonVolume("v1", "cv"),), in_use={("cv", "v1"): ("c1",)})
    assert audit("cv", in_use, BackendView({"v1": {ID: 1}})) == []


def test_mounts_come_from_the_log_when_the_backend_does_not_report_them() -> None:
    records = [rec("Create", "v1"), rec("Mount", "v1", mount_id=ID), rec("Unmount", "v1", mount_id=ID, status=500,
               err="chaosvol: injected: Unmount failed", forwarded=False)]
    daemon = DaemonView((DaemonVolume("v1", "cv"),))
    assert kinds(audit("cv", daemon, BackendView({"v1": None}), LogView.from_records(records))) == [("leaked-mount", "v1")]


def test_a_local_volume_hiding_a_plugin_volume_is_shadowed() -> None:
    daemon = DaemonView((DaemonVolume("gx", "local"),))
    assert kinds(audit("cv", daemon, BackendView({"gx": {}}))) == [("shadowed", "gx")]


def test_redacted_options_are_compared_by_name_only() -> None:
    records = [rec("Create", "v1", opts={"size": "1", "password": "<redacted>"})]
    same = DaemonView((DaemonVolume("v1", "cv", options={"size": "1", "password": "hunter2"}),))
    assert audit("cv", same, BackendView({"v1": {}}), LogView.from_records(records)) == []


# -- Podman: its list is its own record, and a 200 answer is success whatever its Err ---------


def test_podman_orphans_and_phantoms_show_from_the_live_views_alone() -> None:
    podman = DaemonView((DaemonVolume("phantom", "cv"), DaemonVolume("both", "cv")), authoritative=True)
    backend = BackendView({"orphan": {}, "both": {}})
    assert kinds(audit("cv", podman, backend)) == [("unknown-to-daemon", "orphan"), ("stale-in-daemon", "phantom")]


def test_podman_takes_a_create_answered_200_with_err_as_created() -> None:
    records = [rec("Create", "c200", err="chaosvol: injected: Create failed", forwarded=False)]
    assert LogView.from_records(records, podman=True).believed == {"c200": True}
    assert LogView.from_records(records).believed == {"c200": False}  # dockerd: an error


def test_podman_re_adopting_a_dropped_volume_by_reload_loses_its_metadata() -> None:
    records = [rec("Create", "v1", opts={"size": "1"}), rec("Remove", "v1", forwarded=False)]
    podman = DaemonView((DaemonVolume("v1", "cv"),), authoritative=True)  # `volume reload` added it back, bare
    found = audit("cv", podman, BackendView({"v1": {}}), LogView.from_records(records, podman=True))
    assert kinds(found) == [("metadata-lost", "v1")]


def retry_of(seq_of_first: int, op: str, volume: str, **fields: Any) -> CallEvent:
    """dockerd's empty-body retry of a call chaosvol cut, linked: it carries that call's volume."""
    return dataclasses.replace(rec(op, volume, **fields), retry=True, retry_of=seq_of_first)


def cut(op: str, volume: str, *, acted: bool) -> CallEvent:
    """A call whose connection was cut (reset): dockerd got no answer; the backend acted or not."""
    return dataclasses.replace(rec(op, volume, reply=False, forwarded=acted), outcome="reset")


def test_case_c_a_create_cut_after_the_backend_made_it_and_a_retry_answered_success_is_consistent() -> None:
    first = cut("Create", "c1", acted=True)
    events = [first, retry_of(first.seq, "Create", "c1", forwarded=False)]  # the retry dropped: answered success
    daemon = DaemonView((DaemonVolume("c1", "cv"),), records={"c1": VolumeRecord("c1", "cv", {"k": "v"}, {})})
    assert audit("cv", daemon, BackendView({"c1": {}}), LogView.from_records(events)) == []


def test_case_p_a_create_cut_before_the_backend_and_a_retry_answered_success_is_a_phantom() -> None:
    first = cut("Create", "p1", acted=False)
    events = [first, retry_of(first.seq, "Create", "p1", forwarded=False)]
    found = audit("cv", DaemonView(), BackendView({}), LogView.from_records(events))
    assert kinds(found) == [("stale-in-daemon", "p1")]


def test_case_a_a_create_cut_after_the_backend_made_it_then_refused_leaves_it_behind_before_and_after_readoption() -> None:
    first = cut("Create", "a1", acted=True)
    events = [first, retry_of(first.seq, "Create", "a1", status=500, err="empty body", backend={"status": 500, "err": "empty body"})]
    backend = BackendView({"a1": {}})
    assert kinds(audit("cv", DaemonView(), backend, LogView.from_records(events))) == [("unknown-to-daemon", "a1")]
    events.append(rec("Get", "a1", found=True))  # docker volume inspect re-adopts it, without labels
    readopted = DaemonView((DaemonVolume("a1", "cv"),), records={"a1": VolumeRecord("a1", "cv", None, None)})
    found = audit("cv", readopted, backend, LogView.from_records(events))
    assert kinds(found) == [("metadata-lost", "a1")]


def test_case_l_a_forced_remove_after_a_failed_remove_is_told_by_dockerds_records() -> None:
    events = [rec("Create", "l1"), rec("Remove", "l1", status=500, err="chaosvol: injected: Remove failed", forwarded=False)]
    listed = DaemonView((DaemonVolume("l1", "cv"),), records={})  # rm -f dropped its record; ls lists it from the plugin
    found = audit("cv", listed, BackendView({"l1": {}}), LogView.from_records(events))
    assert kinds(found) == [("unknown-to-daemon", "l1"), ("metadata-lost", "l1")]  # no record: the labels went with it
    assert found[1].evidence == ("dockerd's records", "event log", "backend")
    assert "forced rm" in found[1].daemon and "only from the plugin's List" in found[0].daemon
    kept = dataclasses.replace(listed, records={"l1": VolumeRecord("l1", "cv", {"k": "v"}, {})})  # a plain rm: dockerd kept its record
    assert audit("cv", kept, BackendView({"l1": {}}), LogView.from_records(events)) == []
    unknown = dataclasses.replace(listed, records=None)  # dockerd's records not readable: nothing can be said
    assert audit("cv", unknown, BackendView({"l1": {}}), LogView.from_records(events)) == []


def test_with_dockerds_records_a_purged_volume_adopted_again_by_a_create_is_consistent_and_by_a_lookup_is_not() -> None:
    events = [rec("Create", "v1"), rec("Get", "v1", status=500, err="x", forwarded=False), rec("Get", "v1", found=True)]
    backend = BackendView({"v1": {}})
    by_create = DaemonView((DaemonVolume("v1", "cv"),), records={"v1": VolumeRecord("v1", "cv", {}, {})})  # `volume create` writes {}
    assert audit("cv", by_create, backend, LogView.from_records(events)) == []
    by_inspect = DaemonView((DaemonVolume("v1", "cv"),), records={"v1": VolumeRecord("v1", "cv", None, None)})  # a lookup writes null
    found = audit("cv", by_inspect, backend, LogView.from_records(events))
    assert kinds(found) == [("metadata-lost", "v1")] and found[0].evidence == ("event log", "dockerd's records", "backend")


def test_with_dockerds_records_they_decide_what_dockerd_holds_whatever_it_lists() -> None:
    backend = BackendView({"kept": {}, "shadow": {}})
    records = {"gone": VolumeRecord("gone", "cv", {}, {}), "shadow": VolumeRecord("shadow", "local", {}, {})}
    daemon = DaemonView((DaemonVolume("kept", "cv"), DaemonVolume("shadow", "local")), records=records)
    found = audit("cv", daemon, backend, LogView.from_records([rec("Create", "gone"), rec("Create", "kept")]))
    # "kept" was created through dockerd, which has no record of it now: it dropped it on its own.
    assert kinds(found) == [("stale-in-daemon", "gone"), ("unknown-to-daemon", "kept"), ("metadata-lost", "kept"), ("shadowed", "shadow")]
    # Without a log: the same stores, the same kinds, but nothing says "kept" was ever known.
    assert kinds(audit("cv", daemon, backend)) == [("stale-in-daemon", "gone"), ("unknown-to-daemon", "kept"), ("shadowed", "shadow")]


def test_with_dockerds_records_options_are_checked_against_the_creates() -> None:
    events = [rec("Create", "v1", opts={"size": "1"})]
    daemon = DaemonView((DaemonVolume("v1", "cv"),), records={"v1": VolumeRecord("v1", "cv", {}, {"size": "2"})})
    assert kinds(audit("cv", daemon, BackendView({"v1": {}}), LogView.from_records(events))) == [("metadata-lost", "v1")]


def test_with_dockerds_records_a_volume_purged_by_a_failed_lookup_lost_its_metadata_a_removed_one_did_not() -> None:
    backend, daemon = BackendView({"v1": {}}), DaemonView(records={})
    purged = [rec("Create", "v1"), rec("Get", "v1", status=500, err="x", forwarded=False)]
    assert kinds(audit("cv", daemon, backend, LogView.from_records(purged))) == [("unknown-to-daemon", "v1"), ("metadata-lost", "v1")]
    dropped = [rec("Create", "v1"), rec("Remove", "v1", forwarded=False)]  # told it is gone
    assert kinds(audit("cv", daemon, backend, LogView.from_records(dropped))) == [("unknown-to-daemon", "v1")]
