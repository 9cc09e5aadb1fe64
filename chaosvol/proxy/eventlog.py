"""The event-log writer: one flushed JSON line per CallRecord, never blocking a call.

Calls hand records over with `record()`, which never waits: a bounded list takes them and a
writer task writes and flushes, in one write, every record of the calls that ended since its last
write. If the list is full (the disk cannot keep up) or a write fails (disk full), records are
counted as lost and the loss is logged once per burst: calls keep flowing either way.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Final, TextIO

import trio

from chaosvol.core.events import CallRecord
from chaosvol.core.protocol import LARGE_BODY

log = logging.getLogger(__name__)

# Room for a burst of 10,000 calls finishing at once; a guess, large enough for dockerd's bursts.
QUEUE_SIZE: Final = 16_384
# How many of the last calls `chaosvol ctl events` can show without an event log file, and how
# many reply bytes they may keep alive (records keep their replies until shown: a few Lists of
# 10,000 volumes weigh more than thousands of small calls).
RECENT_EVENTS: Final = 10_000
RECENT_BYTES: Final = 32 * 1024 * 1024


class EventLog:
    def __init__(self, stream: TextIO, *, close_stream: bool) -> None:
        self._stream = stream
        self._close_stream = close_stream
        # Records not written yet, and the writer task while it waits for some: cheaper per call
        # than a memory channel, whose receive also yields once more before each batch.
        self._pending: list[CallRecord | str] = []
        self._writer: trio.lowlevel.Task | None = None
        self._closed = False
        self.written = 0
        self.lost = 0
        self._reported_loss = 0

    @classmethod
    def open(cls, target: str) -> EventLog:
        """`-` for stdout, else a file opened for appending (a replayed run keeps its history).

        Raises:
            OSError: the file cannot be opened.
        """
        import sys

        if target == "-":
            return cls(sys.stdout, close_stream=False)
        return cls(open(target, "a", encoding="utf-8"), close_stream=True)

    def write_line(self, line: str) -> None:
        """A line that is not a call's (the run's header), in its place among the records."""
        if not self._closed:
            self._pending.append(line)
            if self._writer is not None:
                trio.lowlevel.reschedule(self._writer)
                self._writer = None

    def record(self, record: CallRecord) -> None:
        if self._closed or len(self._pending) >= QUEUE_SIZE:
            self.lost += 1
            return
        # A large record becomes its line at once: a slow disk never keeps large replies queued.
        self._pending.append(record.to_line() if record.retained_bytes > LARGE_BODY else record)
        if self._writer is not None:
            trio.lowlevel.reschedule(self._writer)
            self._writer = None

    async def run(self) -> None:
        """Write records until `close()`; then write what is left and return."""
        while True:
            if self._pending:
                # Every record of the calls that ended since the last write, in one write.
                batch, self._pending = self._pending, []
                self._write(batch)
            elif self._closed:
                break
            else:
                await self._wait_for_records()
        self._report_loss()
        if self._close_stream:
            try:
                self._stream.close()
            except OSError as exc:  # what was still buffered cannot be written either
                log.error("event log: closing: %s", exc)

    async def _wait_for_records(self) -> None:
        self._writer = trio.lowlevel.current_task()

        def abort(_: object) -> trio.lowlevel.Abort:
            self._writer = None
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    def _write(self, batch: list[CallRecord | str]) -> None:
        try:
            self._stream.write("".join(record if isinstance(record, str) else record.to_line() for record in batch))
            self._stream.flush()
            self.written += len(batch)
        except (OSError, ValueError) as exc:  # ENOSPC, EIO; ValueError: the stream was closed
            self.lost += len(batch)
            if self._reported_loss == 0 or self.lost - self._reported_loss >= 1000:
                log.error("event log: %s; %d record(s) lost so far, calls go on", exc, self.lost)
                self._reported_loss = self.lost
            return
        self._report_loss()

    def _report_loss(self) -> None:
        if self.lost > self._reported_loss:
            log.error("event log: %d record(s) lost (the log could not keep up or was not writable)", self.lost)
            self._reported_loss = self.lost

    def close(self) -> None:
        """No more records; `run()` drains the queue and returns."""
        self._closed = True
        if self._writer is not None:
            trio.lowlevel.reschedule(self._writer)
            self._writer = None


class RecentEvents:
    """The last calls' records, kept in memory for `chaosvol ctl events` and the pytest plugin.

    Appending is a deque append (and, only while someone follows, one Event set): cheap enough
    for every call. Followers wait for records newer than the last sequence number they saw.
    """

    def __init__(self, size: int = RECENT_EVENTS, max_bytes: int = RECENT_BYTES) -> None:
        self._records: deque[CallRecord] = deque()
        self._size = size
        self._max_bytes = max_bytes
        self._bytes = 0
        self._added: trio.Event | None = None

    def add(self, record: CallRecord) -> None:
        records = self._records
        records.append(record)
        self._bytes += record.retained_bytes
        while len(records) > self._size or (self._bytes > self._max_bytes and len(records) > 1):
            self._bytes -= records.popleft().retained_bytes
        if self._added is not None:
            self._added.set()
            self._added = None

    def after(self, seq: int, limit: int | None = None) -> list[CallRecord]:
        """Records with a sequence number above `seq`, oldest first (at most `limit`, the oldest)."""
        found: list[CallRecord] = []
        for record in reversed(self._records):
            if record.seq <= seq:
                break
            found.append(record)
        found.reverse()
        return found[:limit] if limit is not None else found

    @property
    def last_seq(self) -> int:
        return self._records[-1].seq if self._records else 0

    async def wait_after(self, seq: int, timeout: float, limit: int | None = None) -> list[CallRecord]:
        """Like `after`, but waits up to `timeout` seconds for at least one record."""
        with trio.move_on_after(timeout):
            while True:
                found = self.after(seq, limit)
                if found:
                    return found
                if self._added is None:
                    self._added = trio.Event()
                await self._added.wait()
        return []
