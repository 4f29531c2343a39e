"""Reserve/Release argument (§3.4): RCmd, NMacs, then NMacs six-byte MAC addresses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from .constants import AOE_HEADER_LEN, RESERVE_ARG_LEN
from .errors import DecodeError, truncated

_FIELDS = [(24, "rcmd"), (25, "nmacs")]


@dataclass
class ReserveArg:
    rcmd: int = 0
    macs: list[bytes] = field(default_factory=list)
    #: the NMacs field; None means len(macs)
    nmacs: Optional[int] = None

    def encode(self) -> bytes:
        count = len(self.macs) if self.nmacs is None else self.nmacs
        return bytes((self.rcmd, count)) + b"".join(self.macs)

    @classmethod
    def decode(cls, frame: bytes) -> tuple["ReserveArg", int]:
        start = AOE_HEADER_LEN + RESERVE_ARG_LEN
        if len(frame) < start:
            raise truncated(_FIELDS, len(frame), "Reserve/Release argument", start)
        rcmd, count = frame[AOE_HEADER_LEN], frame[AOE_HEADER_LEN + 1]
        end = start + 6 * count
        if end > len(frame):
            raise DecodeError("nmacs", 25, f"claims {count} MAC addresses ({6 * count} bytes) but only {len(frame) - start} bytes follow")
        macs = [bytes(frame[o:o + 6]) for o in range(start, end, 6)]
        return cls(rcmd, macs, count), end

    ARG_LEN = RESERVE_ARG_LEN
