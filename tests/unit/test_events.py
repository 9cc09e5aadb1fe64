"""Event-log lines: built by hand for speed, so checked against the json module on generated records."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from chaosvol.events import BackendOutcome, CallRecord
from chaosvol.faults import FAULTS
from chaosvol.protocol import PluginReply

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
    FAULTS["drop"](), FAULTS["delay"](0.312734, 0.0, "after"), FAULTS["error"]("disk \"on\" fire é", "after", 200),
    FAULTS["ghost"](("a", "b\\c")), FAULTS["hang"](130.0), FAULTS["hang"]("never"), FAULTS["hold"](None, "after"),
    FAULTS["corrupt"](None, ""), FAULTS["crash"](0.0, 5.0),
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
)


@given(RECORDS)
def test_a_line_is_exactly_what_the_json_module_writes_for_the_record(record: CallRecord) -> None:
    line = record.to_line()
    assert line == json.dumps(record.to_json(), separators=(",", ":"), ensure_ascii=False) + "\n"
    assert json.loads(line) == record.to_json()
