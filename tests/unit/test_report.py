"""The report summary: counts, injected apart from real failures, latencies."""

from chaosvol.core.events import CallEvent
from chaosvol.tools.report import render_html, summarize


def event(seq: int, op: str, ms: float, **fields: object) -> CallEvent:
    base = {"t": f"2026-11-23T10:00:00.{seq:06d}Z", "seq": seq, "conn": 1, "op": op, "volume": "v1", "rule": None,
            "action": None, "forwarded": True, "backend": {"status": 200, "err": None},
            "reply": {"status": 200, "err": None}, "ms": ms, "retry": False, "outcome": "answered", "injected": False}
    base.update(fields)
    return CallEvent.from_json(base)


RECORDS = [
    event(1, "Create", 1.0),
    event(2, "Remove", 0.5, rule="drop-removes", action="drop", injected=True, forwarded=False, backend=None),
    event(3, "Get", 2.0, backend={"error": "backend realvol unavailable: refused"}, reply={"status": 502, "err": "x"}),
    event(4, "Remove", 0.0, retry=True, outcome="hung", reply=None),
]


def test_summary_counts_and_tells_injected_from_real_failures() -> None:
    summary = summarize(RECORDS)
    assert (summary.calls, summary.injected, summary.backend_failures, summary.retries) == (4, 1, 1, 1)
    assert summary.by_operation == {"Create": 1, "Remove": 2, "Get": 1}
    assert summary.fired_by_rule == {"drop-removes (drop)": 1}
    text = summary.to_text()
    assert "4 calls, 1 with an injected fault, 1 real backend failures" in text
    assert "drop-removes (drop)" in text and "hung 1" in text


def test_the_html_is_self_contained_and_carries_every_call() -> None:
    page = render_html(RECORDS + [event(5, "Get", 1.0, volume="</script><b>x")], "run")
    assert "<script src" not in page and "http" not in page.replace("http-equiv", "")
    assert page.count('"seq":') == 5
    assert "</script><b>" not in page  # a volume name cannot break out of the data block


def test_error_answers_from_the_backend_count_as_real_failures() -> None:
    records = [
        event(1, "Remove", 1.0, backend={"status": 500, "err": "remove v1: device or resource busy"}, reply={"status": 500, "err": "busy"}),
        event(2, "Get", 1.0, backend={"status": 200, "err": "no such volume"}, reply={"status": 200, "err": "no such volume"}),
        event(3, "Get", 1.0, backend={"error": "backend realvol unavailable: refused"}, reply={"status": 502, "err": "x"}),
        event(4, "Create", 1.0),
        event(5, "Remove", 1.0, rule="fail-after", action="error", injected=True, reply={"status": 500, "err": "chaosvol: injected: x"}),
    ]
    summary = summarize(records)
    assert (summary.backend_failures, summary.backend_unreachable) == (3, 1)
    assert summary.to_text().startswith("5 calls, 1 with an injected fault, 3 real backend failures (1 without an answer, 2 answered with an error)\n")


def test_the_operation_table_stays_aligned_with_an_unknown_endpoint_row() -> None:
    records = [event(1, "Create", 1.0), event(2, "/VolumeDriver.Snapshot", 0.0, outcome="refused", forwarded=False, backend=None)]
    lines = summarize(records).to_text().splitlines()
    table = lines[lines.index("") + 1:][:3]
    assert table[0].startswith("operation") and {len(line) for line in table} == {len(table[0])}, table
    assert table[1].index("1") == table[2].index("1") == table[0].index("calls") + len("calls") - 1


def test_the_summary_and_the_page_say_what_each_fault_did_with_its_resolved_parameters() -> None:
    decision = {"actions": [{"delay": {"duration": 0.312734, "jitter": 0.0, "when": "before"}},
                            {"error": {"message": "chaosvol: injected: Get failed", "when": "after", "status": 500}}], "volume": "v*"}
    records = [
        event(1, "Get", 320.0, rule="slow-then-fail", action="delay+error", rule_index=2, injected=True, decision=decision),
        event(2, "Remove", 0.1, rule="drop-removes", action="drop", injected=True, forwarded=False, backend=None),  # schema 1: no decision
        event(3, "List", 0.5, rule="hold-lists", action="hold", injected=True, held="timeout",
              decision={"actions": [{"hold": {"timeout": 2.0, "when": "after"}}], "volume": None}),
    ]
    text = summarize(records).to_text()
    assert ("  seq 1 Get v1: slow-then-fail: delay: {duration: 312.734ms, jitter: 0s, when: before}; "
            'error: {message: "chaosvol: injected: Get failed", when: after, status: 500}') in text
    assert "  seq 2 Remove v1: drop-removes: drop (options not recorded: an event log of schema 1)" in text
    assert "  seq 3 List v1: hold-lists: hold: {timeout: 2s, when: after}, held until timeout" in text
    page = render_html(records, "run")
    assert '"done":"delay: {duration: 312.734ms, jitter: 0s, when: before}; error:' in page
