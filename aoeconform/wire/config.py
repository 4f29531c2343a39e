"""Query Config Information argument (§3.2): frame bytes 24-31, then the config string."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Optional

from .constants import AOE_HEADER_LEN, AOE_VERSION, CONFIG_ARG_LEN, CONFIG_HEADER_END
from .errors import DecodeError, truncated

# buffer count, firmware version, sector count, aoe version/ccmd, config string length
CONFIG_ARG = struct.Struct("!HHBBH")
_FIELDS = [(24, "bufcnt"), (26, "firmware"), (28, "sector_count"), (29, "aoe_ccmd"), (30, "config_length")]


@dataclass
class ConfigArg:
    bufcnt: int = 0
    firmware: int = 0
    sector_count: int = 0
    ccmd: int = 0
    #: high nibble of byte 29; targets should not insist on it in requests
    version: int = AOE_VERSION
    config: bytes = b""
    #: the Config String Length field; None means len(config)
    config_length: Optional[int] = None

    def encode(self) -> bytes:
        length = len(self.config) if self.config_length is None else self.config_length
        return (
            CONFIG_ARG.pack(
                self.bufcnt,
                self.firmware,
                self.sector_count,
                ((self.version & 0xF) << 4) | (self.ccmd & 0xF),
                length,
            )
            + self.config
        )

    @classmethod
    def decode(cls, frame: bytes) -> tuple["ConfigArg", int]:
        if len(frame) < CONFIG_HEADER_END:
            raise truncated(_FIELDS, len(frame), "config argument", CONFIG_HEADER_END)
        bufcnt, firmware, scnt, vc, length = CONFIG_ARG.unpack_from(frame, AOE_HEADER_LEN)
        end = CONFIG_HEADER_END + length
        if end > len(frame):
            raise DecodeError("config_length", 30, f"claims {length} bytes of config string but only {len(frame) - CONFIG_HEADER_END} follow")
        return cls(bufcnt, firmware, scnt, vc & 0xF, vc >> 4, bytes(frame[CONFIG_HEADER_END:end]), length), end

    ARG_LEN = CONFIG_ARG_LEN

