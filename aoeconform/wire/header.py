"""The Ethernet and common AoE header (§2): frame bytes 0-23."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .constants import (
    AOE_HEADER_LEN,
    AOE_VERSION,
    ETH_P_AOE,
    FLAG_ERROR,
    FLAG_RESPONSE,
    FLAGS_MBZ,
)
from .errors import truncated

# dst, src, ethertype, ver/flags, error, major, minor, command, tag
HEADER = struct.Struct("!6s6sHBBHBBI")
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def mac_from_str(text: str) -> bytes:
    """'02:00:00:00:00:01' (or with '-') to 6 bytes; ValueError on anything else."""
    parts = text.replace("-", ":").split(":")
    if len(parts) != 6:
        raise ValueError(f"not a MAC address: {text!r}")
    # int(p, 16) alone would also take "0x1", "+1", "1_0" and " 1"
    if not all(1 <= len(p) <= 2 and all(c in _HEX_DIGITS for c in p) for p in parts):
        raise ValueError(f"not a MAC address: {text!r}")
    return bytes(int(p, 16) for p in parts)


def mac_to_str(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


@dataclass
class Header:
    """Every AoE frame starts with this. Any value may be set, spec-violating ones included.

    ``ver`` is the high nibble of byte 14; ``flags`` its low nibble
    (R = 0x8, E = 0x4, bits 1-0 must be zero). ``shelf`` is the spec's
    Major field and ``slot`` its Minor field.
    """

    dst: bytes = b"\xff" * 6
    src: bytes = b"\x00" * 6
    shelf: int = 0
    slot: int = 0
    command: int = 0
    tag: int = 0
    ver: int = AOE_VERSION
    flags: int = 0
    error: int = 0
    ethertype: int = ETH_P_AOE

    @property
    def response(self) -> bool:
        return bool(self.flags & FLAG_RESPONSE)

    @property
    def error_flag(self) -> bool:
        return bool(self.flags & FLAG_ERROR)

    @property
    def mbz(self) -> int:
        return self.flags & FLAGS_MBZ

    def encode(self) -> bytes:
        return HEADER.pack(
            self.dst,
            self.src,
            self.ethertype,
            ((self.ver & 0xF) << 4) | (self.flags & 0xF),
            self.error,
            self.shelf,
            self.slot,
            self.command,
            self.tag,
        )

    @classmethod
    def decode(cls, frame: bytes) -> "Header":
        if len(frame) < AOE_HEADER_LEN:
            raise truncated(_HEADER_FIELDS, len(frame), "AoE header", AOE_HEADER_LEN)
        dst, src, ethertype, verflags, error, shelf, slot, command, tag = HEADER.unpack_from(frame, 0)
        return cls(dst, src, shelf, slot, command, tag, verflags >> 4, verflags & 0xF, error, ethertype)


_HEADER_FIELDS = [
    (0, "dst"), (6, "src"), (12, "ethertype"), (14, "ver_flags"), (15, "error"),
    (16, "shelf"), (18, "slot"), (19, "command"), (20, "tag"),
]

