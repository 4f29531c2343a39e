"""Mac Mask List argument (§3.3): reserved, MCmd, MError, Dir Count, then 8-byte directives."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Optional

from .constants import AOE_HEADER_LEN, DCMD_NO_DIRECTIVE, FLAG_RESPONSE, MASK_ARG_LEN, MASK_DIRECTIVE_LEN, VER_FLAGS_BYTE
from .errors import DecodeError, truncated

MASK_ARG = struct.Struct("!BBBB")
DIRECTIVE = struct.Struct("!BB6s")
_FIELDS = [(24, "reserved"), (25, "mcmd"), (26, "merror"), (27, "dir_count")]


def is_response(frame: bytes) -> bool:
    return bool(frame[VER_FLAGS_BYTE] & FLAG_RESPONSE)


@dataclass
class Directive:
    dcmd: int = DCMD_NO_DIRECTIVE
    mac: bytes = b"\x00" * 6
    reserved: int = 0

    def encode(self) -> bytes:
        return DIRECTIVE.pack(self.reserved, self.dcmd, self.mac)


@dataclass
class MacMaskArg:
    mcmd: int = 0
    merror: int = 0
    directives: list[Directive] = field(default_factory=list)
    #: the Dir Count field; None means len(directives). In a reply with
    #: MError set it is the failing directive's index, and decode keeps the
    #: directives actually present, so it may exceed len(directives).
    dir_count: Optional[int] = None
    reserved: int = 0

    def encode(self) -> bytes:
        count = len(self.directives) if self.dir_count is None else self.dir_count
        return MASK_ARG.pack(self.reserved, self.mcmd, self.merror, count) + b"".join(d.encode() for d in self.directives)

    @classmethod
    def decode(cls, frame: bytes) -> tuple["MacMaskArg", int]:
        start = AOE_HEADER_LEN + MASK_ARG_LEN
        if len(frame) < start:
            raise truncated(_FIELDS, len(frame), "Mac Mask argument", start)
        reserved, mcmd, merror, count = MASK_ARG.unpack_from(frame, AOE_HEADER_LEN)
        listed = count
        if start + count * MASK_DIRECTIVE_LEN > len(frame):
            if not (merror and is_response(frame)):
                raise DecodeError("dir_count", 27, f"claims {count} directives ({count * MASK_DIRECTIVE_LEN} bytes) but only {len(frame) - start} bytes follow")
            # In a reply with MError set, Dir Count is the index of the failing
            # directive (§3.3), not the number that follow: vblade sends none,
            # ggaoed echoes the request's. Take the whole directives present.
            listed = (len(frame) - start) // MASK_DIRECTIVE_LEN
        end = start + listed * MASK_DIRECTIVE_LEN
        directives = []
        for off in range(start, end, MASK_DIRECTIVE_LEN):
            r, dcmd, mac = DIRECTIVE.unpack_from(frame, off)
            directives.append(Directive(dcmd, mac, r))
        return cls(mcmd, merror, directives, count, reserved), end

    ARG_LEN = MASK_ARG_LEN
