"""dockerd's volume records, read from metadata.db files a real dockerd 20.10 wrote
(tests/fixtures: three volumes; then eighty more, which spreads the bucket over branch pages)."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaosvol.tools.boltdb import BoltError, volume_records

FIXTURES = Path(__file__).parents[1] / "fixtures"


def test_the_records_a_real_dockerd_wrote_are_read_with_their_labels_and_options() -> None:
    records = volume_records((FIXTURES / "dockerd-20.10-metadata-small.db").read_bytes())
    assert sorted(records) == ["byrun", "labelled", "plain-local"]
    labelled = records["labelled"]
    assert (labelled.driver.startswith("cvfixture"), labelled.labels, labelled.options) == (True, {"team": "demo"}, {"size": "1G"})
    assert (records["plain-local"].driver, records["plain-local"].labels) == ("local", {})
    assert (records["byrun"].labels, records["byrun"].options) == (None, None)  # made by `docker run`: null, as the API shows


def test_a_bucket_spread_over_several_pages_is_read_whole() -> None:
    records = volume_records((FIXTURES / "dockerd-20.10-metadata-many.db").read_bytes())
    many = sorted(name for name in records if name.startswith("many-"))
    assert len(many) == 80 and many[0] == "many-000-" + "x" * 40 and many[-1] == "many-079-" + "x" * 40
    assert {"byrun", "labelled", "plain-local"} <= set(records)


def test_a_file_that_is_not_bbolt_is_refused() -> None:
    with pytest.raises(BoltError, match="no valid bbolt meta page"):
        volume_records(b"\0" * 8192)
    broken = bytearray((FIXTURES / "dockerd-20.10-metadata-small.db").read_bytes())
    for meta in (0, 4096):  # both meta pages: a changed byte fails their checksums
        broken[meta + 16 + 56 - 1] ^= 0xFF  # the last byte of txid
    with pytest.raises(BoltError):
        volume_records(bytes(broken))
