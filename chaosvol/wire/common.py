"""What both of the wire's paths (h11 and the fast path) share: limits, states, reason phrases."""

from __future__ import annotations

import enum
import http
from typing import Final

# dockerd's largest request is a Create with its options: a few hundred bytes. 1 MiB leaves room
# for any real client and stops a broken one from making us buffer without limit.
MAX_REQUEST_BODY: Final = 1024 * 1024
# h11's own default for one incomplete event (the request line and headers).
MAX_HEADER_BYTES: Final = 16 * 1024
# A List of 10,000 volumes is about 1.5 MB; a backend answering more than this is broken.
MAX_REPLY_BODY: Final = 64 * 1024 * 1024

REASONS: Final = {int(status): status.phrase.encode("ascii") for status in http.HTTPStatus}


class WireState(enum.Enum):
    NEED_DATA = enum.auto()  # feed more bytes with receive_data()
    CLOSED = enum.auto()  # the peer closed cleanly between messages
