"""Linking dockerd's empty-body retries to the calls chaosvol cut (pure: the clock is a float)."""

from __future__ import annotations

from chaosvol.core.protocol import Operation
from chaosvol.core.retries import RetryLink, RetryTracker
from tests.support.builders import create, empty_retry, list_, mount, remove


def test_a_retry_after_a_cut_is_linked_to_the_call_with_its_volume_and_mount_id() -> None:
    tracker = RetryTracker()
    tracker.cut(4, mount("v1"), now=10.0)
    link = tracker.retry(empty_retry(Operation.MOUNT), now=11.0)
    assert (link.retry_of, link.volume, link.mount_id, link.reason) == (4, "v1", mount("v1").mount_id, None)


def test_a_chain_of_cut_retries_stays_linked_to_the_first_attempt_until_one_is_answered() -> None:
    tracker = RetryTracker()
    tracker.cut(1, create("c1"), now=0.0)
    first = tracker.retry(empty_retry(Operation.CREATE), now=1.0)
    tracker.cut(2, empty_retry(Operation.CREATE), now=1.0, link=first)  # cut again
    second = tracker.retry(empty_retry(Operation.CREATE), now=3.0)
    assert first.retry_of == second.retry_of == 1 and second.volume == "c1"
    tracker.answered(second)
    assert tracker.retry(empty_retry(Operation.CREATE), now=7.0).retry_of is None


def test_two_cuts_of_one_operation_at_once_make_a_retry_ambiguous_and_other_operations_do_not() -> None:
    tracker = RetryTracker()
    tracker.cut(3, remove("a"), now=0.0)
    tracker.cut(5, remove("b"), now=0.2)
    tracker.cut(6, create("c"), now=0.3)
    ambiguous = tracker.retry(empty_retry(Operation.REMOVE), now=1.0)
    assert ambiguous == RetryLink(None, reason="ambiguous: Remove calls 3, 5 were all cut and may each be retried")
    assert tracker.retry(empty_retry(Operation.CREATE), now=1.3).retry_of == 6


def test_a_retry_long_after_the_window_or_of_a_call_never_cut_is_not_linked() -> None:
    tracker = RetryTracker()
    tracker.cut(1, remove("v"), now=0.0)
    late = tracker.retry(empty_retry(Operation.REMOVE), now=21.0)
    assert late.retry_of is None and late.reason is not None and "no Remove was cut in the last 20s" in late.reason
    tracker.cut(2, list_(), now=30.0)  # List has no body to lose: never awaited
    assert tracker.retry(empty_retry(Operation.GET), now=30.5).retry_of is None


def test_cuts_nobody_retries_are_forgotten_after_the_window() -> None:
    tracker = RetryTracker()
    for second in range(1000):  # a client that never retries (Podman), a reset every second
        tracker.cut(second, remove(f"v{second}"), now=float(second))
    assert len(tracker._cut) <= 22
