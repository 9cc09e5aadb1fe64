"""The event-log writer: batches, a full queue, closing."""

from __future__ import annotations

import io
import json

import trio
import trio.testing

from chaosvol.core.events import CallRecord
from chaosvol.core.protocol import PluginReply
from chaosvol.proxy import eventlog
from chaosvol.proxy.eventlog import EventLog


def record(seq: int) -> CallRecord:
    return CallRecord(1795420800.0 + seq, seq, 1, "Get", f"v{seq}", None, None, None, True, None, PluginReply.ok(), 0.001)


class CountingWrites(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


async def test_the_records_of_calls_that_end_together_go_out_in_one_write_in_order(nursery: trio.Nursery) -> None:
    stream = CountingWrites()
    events = EventLog(stream, close_stream=False)
    nursery.start_soon(events.run)
    await trio.testing.wait_all_tasks_blocked()
    for seq in range(1, 6):
        events.record(record(seq))
    await trio.testing.wait_all_tasks_blocked()
    events.record(record(6))
    await trio.testing.wait_all_tasks_blocked()
    assert [json.loads(line)["seq"] for line in stream.getvalue().splitlines()] == [1, 2, 3, 4, 5, 6]
    assert stream.writes == 2 and events.written == 6


async def test_a_full_queue_loses_records_not_calls_and_close_writes_what_is_left() -> None:
    stream = io.StringIO()
    events = EventLog(stream, close_stream=False)
    for seq in range(1, eventlog.QUEUE_SIZE + 3):  # no writer yet: the queue fills up
        events.record(record(seq))
    assert events.lost == 2
    events.close()
    events.record(record(0))  # after close: counted, not written
    await events.run()  # drains and returns
    assert len(stream.getvalue().splitlines()) == eventlog.QUEUE_SIZE and events.lost == 3
