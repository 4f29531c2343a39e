"""Issue ATA Command argument (§3.1): frame bytes 24-35, then data.

The LBA's six bytes run least-significant first, unlike every other
multi-byte AoE field.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .constants import AFLAG_A, AFLAG_E, AFLAG_W, AOE_HEADER_LEN, ATA_ARG_LEN, ATA_HEADER_END
from .errors import truncated

# aflags, err/feature, sector count, cmd/status, lba (6 bytes LE), reserved (2)
ATA_ARG = struct.Struct("!BBBB6sH")
_FIELDS = [(24, "aflags"), (25, "err_feature"), (26, "sector_count"), (27, "cmd_status"), (28, "lba"), (34, "reserved")]


@dataclass
class AtaArg:
    aflags: int = 0
    err_feature: int = 0
    sector_count: int = 0
    cmd_status: int = 0
    lba: int = 0
    reserved: int = 0
    data: bytes = b""

    @property
    def extended(self) -> bool:
        return bool(self.aflags & AFLAG_E)

    @property
    def write(self) -> bool:
        return bool(self.aflags & AFLAG_W)

    @property
    def asynchronous(self) -> bool:
        return bool(self.aflags & AFLAG_A)

    def encode(self) -> bytes:
        return (
            ATA_ARG.pack(
                self.aflags,
                self.err_feature,
                self.sector_count,
                self.cmd_status,
                (self.lba & 0xFFFFFFFFFFFF).to_bytes(6, "little"),
                self.reserved,
            )
            + self.data
        )

    @classmethod
    def decode(cls, frame: bytes) -> tuple["AtaArg", int]:
        """Everything after the 12-byte argument is data: only the request's
        sector count says how much of it is meaningful (replies carry 0)."""
        if len(frame) < ATA_HEADER_END:
            raise truncated(_FIELDS, len(frame), "ATA argument", ATA_HEADER_END)
        aflags, err_feature, scnt, cmd_status, lba, reserved = ATA_ARG.unpack_from(frame, AOE_HEADER_LEN)
        arg = cls(aflags, err_feature, scnt, cmd_status, int.from_bytes(lba, "little"), reserved, bytes(frame[ATA_HEADER_END:]))
        return arg, len(frame)

    ARG_LEN = ATA_ARG_LEN
