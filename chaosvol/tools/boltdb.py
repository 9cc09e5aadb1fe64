"""A read-only reader of bbolt files, for dockerd's own volume records (`<data-root>/volumes/metadata.db`).

dockerd keeps one record per volume it knows of: a key (the name) in the bucket `volumes`, whose
value is JSON (`Name`, `Driver`, `Labels`, `Options`). A volume it lists only because a plugin's
List returned it has no record: that is how the audit tells a re-adopted volume (its labels and
options gone) from one dockerd created. Pure: bytes in, records out; it never writes, and never
takes bbolt's lock (the daemon holds it while it runs).

The format (go.etcd.io/bbolt, page.go and db.go): the file is pages of `pageSize` bytes; pages 0
and 1 are meta pages, the valid one with the higher transaction id is current; each B+tree page
starts with a 16-byte header (id u64, flags u16, count u16, overflow u32), then `count` elements.
A branch element is (pos u32, ksize u32, pgid u64); a leaf element (flags u32, pos u32, ksize u32,
vsize u32); `pos` counts from the element itself. A leaf value flagged as a bucket starts with the
bucket's header (root pgid u64, sequence u64); root 0 means the bucket's one page is inline, right
after that header. Reading a file the daemon is writing is safe as far as bbolt's copy-on-write
makes it: pages of the current meta are never written in place.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final

MAGIC: Final = 0xED0CDAED
_BRANCH: Final = 0x01
_LEAF: Final = 0x02
_META: Final = 0x04
_BUCKET_LEAF: Final = 0x01
_PAGE_HEADER: Final = struct.Struct("<QHHI")
_META_BODY: Final = struct.Struct("<IIIIQQQQQQ")  # magic, version, page size, flags, root (pgid, seq), freelist, pgid, txid, checksum
_BRANCH_ELEMENT: Final = struct.Struct("<IIQ")
_LEAF_ELEMENT: Final = struct.Struct("<IIII")
_BUCKET: Final = struct.Struct("<QQ")


class BoltError(ValueError):
    """Not a bbolt file, or one this reader cannot make sense of."""


@dataclass(frozen=True, slots=True)
class VolumeRecord:
    """dockerd's record of one volume."""

    name: str
    driver: str
    labels: dict[str, str] | None = None
    options: dict[str, str] | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


def volume_records(data: bytes) -> dict[str, VolumeRecord]:
    """dockerd's volume records in a `metadata.db`'s bytes, by name.

    Raises:
        BoltError: not a bbolt file, or no valid meta page.
    """
    db = _Bolt(data)
    bucket = db.root_bucket(b"volumes")
    if bucket is None:
        return {}
    records = {}
    for key, value in bucket:
        try:
            decoded = json.loads(value)
        except ValueError as exc:
            raise BoltError(f"the record of {key!r} is not JSON") from exc
        if not isinstance(decoded, dict):
            raise BoltError(f"the record of {key!r} is not a JSON object")
        name = key.decode("utf-8", "replace")
        records[name] = VolumeRecord(
            name, str(decoded.get("Driver") or ""), _strings(decoded.get("Labels")), _strings(decoded.get("Options")), decoded
        )
    return records


def _strings(value: Any) -> dict[str, str] | None:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else None


class _Bolt:
    def __init__(self, data: bytes) -> None:
        self.data = data
        metas = [meta for meta in (self._meta(0), self._meta(1)) if meta is not None]
        if not metas:
            raise BoltError("no valid bbolt meta page (not a bbolt file, or a corrupt one)")
        self.page_size, self.root, _txid = max(metas, key=lambda meta: meta[2])  # the newest transaction's meta

    def _meta(self, index: int) -> tuple[int, int, int] | None:
        # The page size is not known before a meta page is read; page 1 sits at offset page_size.
        for page_size in ((4096,) if index == 0 else (4096, 16384, 65536, 8192, 2048, 1024)):
            offset = index * page_size + _PAGE_HEADER.size
            if len(self.data) < offset + _META_BODY.size:
                return None
            fields = _META_BODY.unpack_from(self.data, offset)
            magic, _version, size, _flags, root, _sequence, _freelist, _pgid, txid, checksum = fields
            if magic != MAGIC or (index == 1 and size != page_size):
                continue
            body = self.data[offset:offset + _META_BODY.size - 8]
            if _fnv64a(body) != checksum:
                return None
            return size, root, txid
        return None

    def _page(self, pgid: int) -> tuple[int, int, int]:
        """(offset of the page's elements, flags, count)."""
        start = pgid * self.page_size
        if start + _PAGE_HEADER.size > len(self.data):
            raise BoltError(f"page {pgid} lies past the end of the file")
        _id, flags, count, _overflow = _PAGE_HEADER.unpack_from(self.data, start)
        return start + _PAGE_HEADER.size, flags, count

    def _leaves(self, data: bytes, elements: int, flags: int, count: int) -> Iterator[tuple[int, bytes, bytes]]:
        """(flags, key, value) of every leaf under the page whose elements start at `elements` in
        `data` (the file, or an inline bucket's value)."""
        if flags & _LEAF:
            for index in range(count):
                at = elements + index * _LEAF_ELEMENT.size
                leaf_flags, pos, ksize, vsize = _LEAF_ELEMENT.unpack_from(data, at)
                key = data[at + pos:at + pos + ksize]
                yield leaf_flags, bytes(key), bytes(data[at + pos + ksize:at + pos + ksize + vsize])
        elif flags & _BRANCH:
            for index in range(count):
                at = elements + index * _BRANCH_ELEMENT.size
                _pos, _ksize, child = _BRANCH_ELEMENT.unpack_from(data, at)
                child_elements, child_flags, child_count = self._page(child)
                yield from self._leaves(self.data, child_elements, child_flags, child_count)
        else:
            raise BoltError(f"a page with flags {flags:#x} where a B+tree page was expected")

    def _bucket(self, value: bytes) -> Iterator[tuple[bytes, bytes]]:
        root, _sequence = _BUCKET.unpack_from(value, 0)
        if root == 0:  # inline: the bucket's one page follows its header
            _id, flags, count, _overflow = _PAGE_HEADER.unpack_from(value, _BUCKET.size)
            leaves = self._leaves(value, _BUCKET.size + _PAGE_HEADER.size, flags, count)
        else:
            leaves = self._leaves(self.data, *self._page(root))
        for leaf_flags, key, item in leaves:
            if not leaf_flags & _BUCKET_LEAF:
                yield key, item

    def root_bucket(self, name: bytes) -> Iterator[tuple[bytes, bytes]] | None:
        for leaf_flags, key, value in self._leaves(self.data, *self._page(self.root)):
            if key == name and leaf_flags & _BUCKET_LEAF:
                return self._bucket(value)
        return None


def _fnv64a(data: bytes) -> int:
    value = 0xCBF29CE484222325
    for byte in data:
        value ^= byte
        value = (value * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return value
