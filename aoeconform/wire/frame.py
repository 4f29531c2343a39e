"""A whole AoE frame: header, the command's argument, and any bytes after it.

``Frame.decode`` is strict: a frame too short for its fixed fields, or whose
length fields claim more than is there, raises ``DecodeError``. Building is
permissive: every field takes any value that fits its width, so fuzzers and
malformed-header cases can say what the spec forbids.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Type, Union

from .ata import AtaArg
from .config import ConfigArg
from .constants import (
    AOE_HEADER_LEN,
    CCMD_NAMES,
    CMD_ATA,
    CMD_MAC_MASK,
    CMD_QUERY_CONFIG,
    CMD_RESERVE_RELEASE,
    COMMAND_NAMES,
    ETH_MIN_FRAME,
    ETH_P_AOE,
)
from .errors import DecodeError
from .header import Header, mac_to_str
from .macmask import MacMaskArg
from .reserve import ReserveArg


@dataclass
class RawArg:
    """The argument of an unknown or vendor command, kept as bytes."""

    data: bytes = b""

    def encode(self) -> bytes:
        return self.data

    @classmethod
    def decode(cls, frame: bytes) -> tuple["RawArg", int]:
        return cls(bytes(frame[AOE_HEADER_LEN:])), len(frame)


Arg = Union[AtaArg, ConfigArg, MacMaskArg, ReserveArg, RawArg]

ARG_TYPES: Dict[int, Type[Arg]] = {
    CMD_ATA: AtaArg,
    CMD_QUERY_CONFIG: ConfigArg,
    CMD_MAC_MASK: MacMaskArg,
    CMD_RESERVE_RELEASE: ReserveArg,
}


@dataclass
class Frame:
    header: Header = field(default_factory=Header)
    arg: Arg = field(default_factory=RawArg)
    #: bytes after what the length fields account for (padding, or garbage)
    trailing: bytes = b""

    def encode(self, pad: bool = False) -> bytes:
        raw = self.header.encode() + self.arg.encode() + self.trailing
        if pad and len(raw) < ETH_MIN_FRAME:
            raw += bytes(ETH_MIN_FRAME - len(raw))
        return raw

    @classmethod
    def decode(cls, raw: bytes) -> "Frame":
        header = Header.decode(raw)
        if header.ethertype != ETH_P_AOE:
            raise DecodeError("ethertype", 12, f"0x{header.ethertype:04x} is not AoE (0x{ETH_P_AOE:04x})")
        arg_type: Type[Arg] = ARG_TYPES.get(header.command, RawArg)
        arg, end = arg_type.decode(raw)
        return cls(header, arg, bytes(raw[end:]))

    def describe(self) -> str:
        """One line for logs and reports."""
        h = self.header
        kind = "rsp" if h.response else "req"
        name = COMMAND_NAMES.get(h.command, f"cmd {h.command}")
        text = (
            f"{mac_to_str(h.src)} > {mac_to_str(h.dst)} AoE v{h.ver} {kind} {name} "
            f"{h.shelf}.{h.slot} tag 0x{h.tag:08x} flags 0x{h.flags:x}"
        )
        if h.error_flag:
            text += f" error {h.error}"
        a = self.arg
        if isinstance(a, AtaArg):
            text += (
                f" aflags 0x{a.aflags:02x} feat/err 0x{a.err_feature:02x} scnt {a.sector_count}"
                f" cmd/status 0x{a.cmd_status:02x} lba {a.lba} data {len(a.data)}"
            )
        elif isinstance(a, ConfigArg):
            text += (
                f" bufcnt {a.bufcnt} fw 0x{a.firmware:04x} scnt {a.sector_count}"
                f" ccmd {CCMD_NAMES.get(a.ccmd, a.ccmd)} config {a.config[:32]!r}"
            )
        elif isinstance(a, MacMaskArg):
            text += f" mcmd {a.mcmd} merror {a.merror} dir_count {a.dir_count}"
        elif isinstance(a, ReserveArg):
            text += f" rcmd {a.rcmd} nmacs {a.nmacs}"
        else:
            text += f" arg {len(a.data)} bytes"
        return text
