"""Event-log lines: built by hand for speed, so checked against the json module on generated records."""

from __future__ import annotations

import json

import jsonschema
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from chaosvol.core.events import BackendOutcome, CallRecord, EventLogError, Seen, header_line, parse_event_log
from chaosvol.core.protocol import PluginReply
from chaosvol.faults import FAULTS
from chaosvol.faults.corrupt import Corrupt
from chaosvol.faults.crash import Crash
from chaosvol.faults.delay import Delay
from chaosvol.faults.drop import Drop
from chaosvol.faults.error import Error
from chaosvol.faults.ghost import Ghost
from chaosvol.faults.hang import Hang
from chaosvol.faults.hold import Hold
from chaosvol.tools.schema import events_schema

TEXT = st.text(max_size=12)  # any unicode: quotes, backslashes, control characters, surrogates' neighbours
NAMES = st.one_of(st.none(), TEXT)
BODIES = st.sampled_from([
    b'{"Err":""}\n',
    b'{"Err":"boom \\"quoted\\" \\u00e9"}\n',
    b'{"Volume":{"Name":"v"},"Err":""}\n',
    b'{"Volume":null,"Err":"no such volume"}\n',
    b"",
    b"not json",
    b"\xff\xfe",
])
ACTIONS = st.sampled_from([
    Drop(), Delay(0.312734, 0.0, "after"), Error("disk \"on\" fire é", "after", 200),
    Ghost(("a", "b\\c")), Hang(130.0), Hang("never"), Hold(None, "after"), Corrupt(None, ""), Crash(0.0, 5.0),
])
REPLIES = st.builds(PluginReply, st.sampled_from([200, 404, 500]), BODIES, st.sampled_from([None, "application/json"]))
BACKENDS = st.one_of(st.none(), st.builds(BackendOutcome, REPLIES), st.builds(BackendOutcome, st.none(), TEXT))
RECORDS = st.builds(
    CallRecord,
    started_at=st.floats(min_value=0, max_value=4e9),
    seq=st.integers(0, 2**40),
    conn=st.integers(0, 2**20),
    operation=st.one_of(st.none(), st.sampled_from(["Get", "Create", "List"]), TEXT),
    volume=NAMES,
    mount_id=NAMES,
    rule=NAMES,
    action=NAMES,
    forwarded=st.booleans(),
    backend=BACKENDS,
    reply=st.one_of(st.none(), REPLIES),
    elapsed=st.one_of(st.floats(min_value=0, max_value=1e7), st.sampled_from([0.0, 1e-9, 0.1234565, 123456789.0])),
    retry=st.booleans(),
    outcome=st.sampled_from(["answered", "hung", "reset", "client-gone", "cut", "refused", "crashed"]),
    opts=st.one_of(st.none(), st.dictionaries(TEXT, TEXT, max_size=3)),
    held=st.one_of(st.none(), st.sampled_from(["released", "timeout", "cancelled"])),
    rule_index=st.one_of(st.none(), st.integers(0, 1000)),
    actions=st.lists(ACTIONS, max_size=3).map(tuple),
    volume_pattern=NAMES,
    retry_of=st.one_of(st.none(), st.integers(0, 2**40)),
    retry_link=NAMES,
)


@given(RECORDS)
def test_a_line_is_exactly_what_the_json_module_writes_for_the_record(record: CallRecord) -> None:
    line = record.to_line()
    assert line == json.dumps(record.to_json(), separators=(",", ":"), ensure_ascii=False) + "\n"
    assert json.loads(line) == record.to_json()


EVENTS_SCHEMA = events_schema()
EVENTS_VALIDATOR = jsonschema.Draft202012Validator(EVENTS_SCHEMA)


def test_the_events_schema_is_a_valid_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(EVENTS_SCHEMA)


@given(RECORDS)
def test_every_call_line_the_log_writes_is_valid_under_the_events_schema(record: CallRecord) -> None:
    assume(record.rule is None or record.actions)  # a rule has one action at least
    line = json.loads(record.to_line())
    errors = list(EVENTS_VALIDATOR.iter_errors(line))
    assert not errors, [error.message for error in errors]


def test_header_and_load_lines_are_valid_and_a_line_of_another_program_is_not() -> None:
    for kind in ("header", "load"):
        line = header_line(kind, version="0.1.0", seed=7, profile_source="profiles/flaky.yaml", profile_digest="ab" * 32, rules=7,
                           started_at=1_795_000_000.5, name="chaosvol", socket="/run/docker/plugins/chaosvol.sock", backend="builtin:/x")
        assert EVENTS_VALIDATOR.is_valid(json.loads(line)), line
    assert not EVENTS_VALIDATOR.is_valid({"level": "info", "msg": "hello"})
    assert not EVENTS_VALIDATOR.is_valid({"kind": "header", "schema": 3})


def test_the_reader_reads_what_the_writer_writes_and_names_what_is_wrong_by_file_and_line() -> None:
    header = header_line("header", version="0.1.0", seed=7, profile_source="p.yaml", profile_digest=None, rules=1, started_at=1.0)
    record = CallRecord(2.0, 1, 1, "Remove", "v1", None, "drop-removes", "drop", False, None, PluginReply.ok(), 0.001,
                        rule_index=0, actions=(FAULTS["drop"](),))
    log = parse_event_log([header, record.to_line()], "e.jsonl")
    assert (log.schema, log.runs, log.headers[0].seed, log.headers[0].profile_source) == (2, 1, 7, "p.yaml")
    (event,) = log.events
    assert (event.op, event.volume, event.rule, event.rule_index, event.reply) == ("Remove", "v1", "drop-removes", 0, Seen(200, None, bytes=11))
    assert event.decision is not None and [(a.word, dict(a.options)) for a in event.decision] == [("drop", {})]
    for lines, says in [
        ([header, "not json\n"], "e.jsonl:2: not JSON"),
        ([header, "[1, 2]\n"], "e.jsonl:2: not an event-log line: a JSON list"),
        (['{"level": "info", "msg": "hi"}\n'], "e.jsonl:1: not a chaosvol event: it has no seq and op"),
        ([header.replace('"schema":2', '"schema":3')], "e.jsonl:1: written by chaosvol 0.1.0 in event schema 3; this chaosvol reads schemas 1 to 2"),
        ([header, record.to_line()[:40]], "e.jsonl:2: the last line is cut short"),
        ([record.to_line().replace('"seq":1', '"seq":"one"')], "e.jsonl:1: seq: expected an integer, found \"one\""),
        ([record.to_line().replace('"actions":[{"drop":{}}]', '"actions":"drop"')], "e.jsonl:1: decision: expected an object with a list of actions"),
    ]:
        with pytest.raises(EventLogError) as raised:
            parse_event_log(lines, "e.jsonl")
        assert str(raised.value).startswith(says), str(raised.value)
    assert parse_event_log([header, record.to_line()[:40]], "e.jsonl", partial_tail=True).events == ()


def test_a_schema_1_log_still_reads_and_its_runs_are_told_apart_by_seq() -> None:
    old = [
        ('{"t":"2026-11-23T07:30:00.100000Z","seq":1,"conn":1,"op":"Create","volume":"v1","mount_id":null,"rule":null,"action":null,'
         '"forwarded":true,"backend":{"status":200,"err":null},"reply":{"status":200,"err":null},"ms":0.4,"retry":false,'
         '"outcome":"answered","injected":false,"opts":{},"held":null}\n'),
        ('{"t":"2026-11-23T07:30:00.200000Z","seq":2,"conn":1,"op":"Remove","volume":"v1","mount_id":null,"rule":"drop-removes",'
         '"action":"drop","forwarded":false,"backend":null,"reply":{"status":200,"err":null},"ms":0.1,"retry":false,'
         '"outcome":"answered","injected":true,"opts":null,"held":null}\n'),
    ]
    log = parse_event_log(old + old, "old.jsonl")  # appended by two runs
    assert (log.schema, log.runs) == (1, 2)
    assert [(e.run, e.seq, e.decision) for e in log.events] == [(0, 1, None), (0, 2, None), (1, 1, None), (1, 2, None)]


def test_the_readmes_event_log_example_is_valid_and_reads() -> None:
    import re
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    block = re.search(r"## Event log\n.*?```json\n(.*?)```", readme, re.DOTALL)
    assert block is not None
    text, decoder, lines = block.group(1), json.JSONDecoder(), []
    position = 0
    while text[position:].strip():
        value, end = decoder.raw_decode(text, position + len(text[position:]) - len(text[position:].lstrip()))
        assert EVENTS_VALIDATOR.is_valid(value), [e.message for e in EVENTS_VALIDATOR.iter_errors(value)]
        lines.append(json.dumps(value) + "\n")
        position = end
    log = parse_event_log(lines, "README.md")
    assert log.schema == 2 and len(log.events) == 1 and log.events[0].decision is not None
