"""The AoE wire format as scapy layers, for pcaps and interactive use.

scapy ships ``scapy.contrib.aoe``, but it cannot serve as a reference
(reference §9): its flag bits are mirrored, Dir Count and NMacs are two
bytes wide instead of one, ATA data is sized from the sector count, and a
stacked Query Config argument is serialised twice. These layers are our own,
written from the field tables in reference §2-§6; field names are those of
the codec (``aoeconform.wire``) so the two can be compared field by field.

Like the codec, every field takes any value its width allows, length fields
included: leave ``config_length``, ``dir_count`` or ``nmacs`` as ``None``
and scapy fills in the true count; set them and the lie is sent as given.

``scapy.contrib.aoe`` is never imported here. If some other code loads it,
scapy's generic ``Ether(raw)`` dissection picks whichever AoE layer was bound
first; ``to_scapy`` does not depend on that and always returns these layers.
"""

from __future__ import annotations

import sys
from typing import Iterator, Optional, TextIO, Tuple

from scapy.fields import (
    BitEnumField,
    BitField,
    ByteEnumField,
    ByteField,
    Field,
    FieldLenField,
    FieldListField,
    FlagsField,
    MACField,
    PacketListField,
    ShortField,
    StrField,
    StrLenField,
    XByteField,
    XIntField,
    XShortField,
)
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Padding, Raw, bind_layers
from scapy.utils import RawPcapReader

from .ata import AtaArg
from .config import ConfigArg
from .constants import (
    AOE_VERSION,
    CCMD_NAMES,
    CMD_ATA,
    CMD_MAC_MASK,
    CMD_QUERY_CONFIG,
    CMD_RESERVE_RELEASE,
    COMMAND_NAMES,
    ERROR_NAMES,
    ETH_HEADER_LEN,
    ETH_P_AOE,
    FLAG_ERROR,
    FLAG_RESPONSE,
)
from .frame import Arg, Frame, RawArg
from .header import Header, mac_from_str, mac_to_str
from .macmask import Directive, MacMaskArg
from .reserve import ReserveArg

LBA_MASK = (1 << 48) - 1

# FlagsField names run from the least significant bit upwards.
# Ver/Flags low nibble (§2.3): bits 1-0 MBZ, bit 2 E, bit 3 R.
_HEADER_FLAG_NAMES = ["MBZ0", "MBZ1", "E", "R"]
# AFlags (§3.1): W=0x01, A=0x02, D=0x10, E=0x40; the rest must be zero.
_AFLAG_NAMES = ["W", "A", "MBZ2", "MBZ3", "D", "MBZ5", "E", "MBZ7"]

_MCMD_NAMES = {0: "read", 1: "edit"}
_MERROR_NAMES = {0: "none", 1: "unspecified", 2: "bad dcmd", 3: "list full"}
_DCMD_NAMES = {0: "none", 1: "add", 2: "delete"}
_RCMD_NAMES = {0: "read", 1: "set", 2: "force set"}


class LBA48Field(Field):
    """The ATA argument's 48-bit LBA: six bytes, least significant first (§3.1)."""

    def __init__(self, name: str, default: int) -> None:
        Field.__init__(self, name, default, "6s")

    def i2m(self, pkt, x):
        return ((x or 0) & LBA_MASK).to_bytes(6, "little")

    def m2i(self, pkt, x):
        return int.from_bytes(x, "little")

    def any2i(self, pkt, x):
        if isinstance(x, (bytes, bytearray)):
            return self.m2i(pkt, bytes(x))
        return x

    def i2repr(self, pkt, x):
        return "0x%012x" % (x or 0)


class AoE(Packet):
    """Common AoE header (§2), frame bytes 14-23."""

    name = "AoE"
    fields_desc = [
        BitField("ver", AOE_VERSION, 4),
        FlagsField("flags", 0, 4, _HEADER_FLAG_NAMES),
        ByteEnumField("error", 0, ERROR_NAMES),
        XShortField("shelf", 0),
        XByteField("slot", 0),
        ByteEnumField("cmd", 0, COMMAND_NAMES),
        XIntField("tag", 0),
    ]

    def mysummary(self):
        kind = "rsp" if int(self.flags) & FLAG_RESPONSE else "req"
        text = f"AoE v{self.ver} {kind} %AoE.cmd% {self.shelf}.{self.slot} tag 0x{self.tag:08x}"
        if int(self.flags) & FLAG_ERROR:
            text += f" error {self.error}"
        return self.sprintf(text)


class AoEATA(Packet):
    """Issue ATA Command argument (§3.1). Every byte after it is ``data``: only
    the request's sector count says how much is meaningful, so padding stays here."""

    name = "AoE ATA"
    fields_desc = [
        FlagsField("aflags", 0, 8, _AFLAG_NAMES),
        XByteField("err_feature", 0),
        ByteField("sector_count", 0),
        XByteField("cmd_status", 0),
        LBA48Field("lba", 0),
        XShortField("reserved", 0),
        StrField("data", b""),
    ]

    def mysummary(self):
        return self.sprintf(
            f"ATA aflags %AoEATA.aflags% cmd/status 0x{self.cmd_status:02x} "
            f"scnt {self.sector_count} lba {self.lba} data {len(self.data or b'')}"
        )


class AoEConfig(Packet):
    """Query Config Information argument (§3.2) and its config string."""

    name = "AoE Query Config"
    fields_desc = [
        ShortField("bufcnt", 0),
        XShortField("firmware", 0),
        ByteField("sector_count", 0),
        BitField("version", AOE_VERSION, 4),
        BitEnumField("ccmd", 0, 4, CCMD_NAMES),
        FieldLenField("config_length", None, length_of="config", fmt="!H"),
        StrLenField("config", b"", length_from=lambda pkt: pkt.config_length),
    ]

    def extract_padding(self, s):
        return b"", s

    def mysummary(self):
        return self.sprintf(f"Config %AoEConfig.ccmd% bufcnt {self.bufcnt} scnt {self.sector_count} config %AoEConfig.config%")


class AoEMaskDirective(Packet):
    """One 8-byte Mac Mask directive (§3.3)."""

    name = "AoE Mac Mask directive"
    fields_desc = [
        XByteField("reserved", 0),
        ByteEnumField("dcmd", 0, _DCMD_NAMES),
        MACField("mac", "00:00:00:00:00:00"),
    ]

    def extract_padding(self, s):
        return b"", s


class _DirectiveListField(PacketListField):
    """Dir Count directives, except in a reply with MError set: there Dir Count
    is the failing directive's index (§3.3) and only the whole directives
    present are read, as the codec does."""

    def getfield(self, pkt, s):
        count = pkt.dir_count or 0
        aoe = pkt.underlayer
        if count * 8 > len(s) and pkt.merror and aoe is not None and int(aoe.flags) & FLAG_RESPONSE:
            count = len(s) // 8
        directives = []
        for _ in range(count):
            if not s:
                break
            directives.append(AoEMaskDirective(s[:8]))
            s = s[8:]
        return s, directives


class AoEMacMask(Packet):
    """Mac Mask List argument (§3.3): Dir Count is one byte."""

    name = "AoE Mac Mask List"
    fields_desc = [
        XByteField("reserved", 0),
        ByteEnumField("mcmd", 0, _MCMD_NAMES),
        ByteEnumField("merror", 0, _MERROR_NAMES),
        FieldLenField("dir_count", None, count_of="directives", fmt="B"),
        _DirectiveListField("directives", [], AoEMaskDirective, count_from=lambda pkt: pkt.dir_count),
    ]

    def extract_padding(self, s):
        return b"", s

    def mysummary(self):
        return self.sprintf(f"MacMask %AoEMacMask.mcmd% merror {self.merror} dir_count {len(self.directives)}")


class AoEReserve(Packet):
    """Reserve/Release argument (§3.4): NMacs is one byte."""

    name = "AoE Reserve/Release"
    fields_desc = [
        ByteEnumField("rcmd", 0, _RCMD_NAMES),
        FieldLenField("nmacs", None, count_of="macs", fmt="B"),
        FieldListField("macs", [], MACField("mac", "00:00:00:00:00:00"), count_from=lambda pkt: pkt.nmacs, max_count=256),
    ]

    def extract_padding(self, s):
        return b"", s

    def mysummary(self):
        return self.sprintf(f"Reserve %AoEReserve.rcmd% nmacs {len(self.macs)}")


bind_layers(Ether, AoE, type=ETH_P_AOE)
bind_layers(AoE, AoEATA, cmd=CMD_ATA)
bind_layers(AoE, AoEConfig, cmd=CMD_QUERY_CONFIG)
bind_layers(AoE, AoEMacMask, cmd=CMD_MAC_MASK)
bind_layers(AoE, AoEReserve, cmd=CMD_RESERVE_RELEASE)

ARG_LAYERS = (AoEATA, AoEConfig, AoEMacMask, AoEReserve)


# --- bytes and codec frames to and from scapy ---------------------------------


def to_scapy(raw: bytes) -> Packet:
    """Dissect one Ethernet frame with these layers.

    The AoE layer is attached explicitly rather than through ``Ether``'s
    bindings, so the result is the same whether or not another AoE layer
    (such as ``scapy.contrib.aoe``) has been loaded. ``bytes()`` of the
    result gives ``raw`` back."""
    raw = bytes(raw)
    if len(raw) <= ETH_HEADER_LEN or int.from_bytes(raw[12:14], "big") != ETH_P_AOE:
        return Ether(raw)
    ether = Ether(raw[:ETH_HEADER_LEN])
    return ether / AoE(raw[ETH_HEADER_LEN:])


def from_frame(frame: Frame) -> Packet:
    """Build the scapy packet for a codec ``Frame`` field by field (not from its bytes)."""
    h = frame.header
    pkt = Ether(dst=mac_to_str(h.dst), src=mac_to_str(h.src), type=h.ethertype) / AoE(
        ver=h.ver, flags=h.flags, error=h.error, shelf=h.shelf, slot=h.slot, cmd=h.command, tag=h.tag
    )
    a = frame.arg
    if isinstance(a, AtaArg):
        pkt /= AoEATA(
            aflags=a.aflags,
            err_feature=a.err_feature,
            sector_count=a.sector_count,
            cmd_status=a.cmd_status,
            lba=a.lba,
            reserved=a.reserved,
            data=a.data,
        )
    elif isinstance(a, ConfigArg):
        pkt /= AoEConfig(
            bufcnt=a.bufcnt,
            firmware=a.firmware,
            sector_count=a.sector_count,
            version=a.version,
            ccmd=a.ccmd,
            config_length=a.config_length,
            config=a.config,
        )
    elif isinstance(a, MacMaskArg):
        pkt /= AoEMacMask(
            reserved=a.reserved,
            mcmd=a.mcmd,
            merror=a.merror,
            dir_count=a.dir_count,
            directives=[AoEMaskDirective(reserved=d.reserved, dcmd=d.dcmd, mac=mac_to_str(d.mac)) for d in a.directives],
        )
    elif isinstance(a, ReserveArg):
        pkt /= AoEReserve(rcmd=a.rcmd, nmacs=a.nmacs, macs=[mac_to_str(m) for m in a.macs])
    elif a.data:
        pkt /= Raw(load=a.data)
    if frame.trailing:
        pkt /= Padding(load=frame.trailing)
    return pkt


def _mac(value) -> bytes:
    return mac_from_str(value) if isinstance(value, str) else bytes(value or bytes(6))


def to_frame(pkt: Packet) -> Frame:
    """The codec ``Frame`` for a scapy packet, read field by field (not via its bytes).

    Length fields left as ``None`` in scapy stay ``None`` (meaning "the true
    count") in the codec."""
    ether = pkt[Ether]
    aoe = pkt[AoE]
    header = Header(
        dst=_mac(ether.dst),
        src=_mac(ether.src),
        shelf=aoe.shelf,
        slot=aoe.slot,
        command=aoe.cmd,
        tag=aoe.tag,
        ver=aoe.ver,
        flags=int(aoe.flags),
        error=aoe.error,
        ethertype=ether.type,
    )
    layer = aoe.payload
    arg: Arg
    if isinstance(layer, AoEATA):
        arg = AtaArg(
            int(layer.aflags), layer.err_feature, layer.sector_count, layer.cmd_status, layer.lba, layer.reserved, bytes(layer.data or b"")
        )
    elif isinstance(layer, AoEConfig):
        arg = ConfigArg(
            layer.bufcnt, layer.firmware, layer.sector_count, layer.ccmd, layer.version, bytes(layer.config or b""), layer.config_length
        )
    elif isinstance(layer, AoEMacMask):
        directives = [Directive(d.dcmd, _mac(d.mac), d.reserved) for d in layer.directives]
        arg = MacMaskArg(layer.mcmd, layer.merror, directives, layer.dir_count, layer.reserved)
    elif isinstance(layer, AoEReserve):
        arg = ReserveArg(layer.rcmd, [_mac(m) for m in layer.macs], layer.nmacs)
    else:
        # unknown or vendor command: the codec keeps everything after the header
        return Frame(header, RawArg(bytes(layer)), b"")
    trailing = bytes(layer.payload)
    return Frame(header, arg, trailing)


# --- pcap files -----------------------------------------------------------------


def read_pcap(path: str) -> Iterator[Tuple[float, Packet]]:
    """(timestamp in seconds, packet) for every frame of a pcap file.

    Frames are dissected with ``to_scapy``, so AoE frames come back with
    these layers whatever other AoE layer scapy has loaded."""
    with RawPcapReader(path) as reader:
        for raw, meta in reader:
            sec = getattr(meta, "sec", None)
            if sec is None:  # pcapng metadata carries a single timestamp
                stamp = ((getattr(meta, "tshigh", 0) << 32) | getattr(meta, "tslow", 0)) / float(getattr(meta, "tsresol", 1_000_000))
            else:
                usec = getattr(meta, "usec", 0)
                stamp = sec + usec / 1_000_000
            yield stamp, to_scapy(raw)


def summarize(pkt: Packet) -> str:
    """One line: addresses, then each AoE layer's summary."""
    ether = pkt[Ether] if Ether in pkt else pkt
    if AoE not in pkt:
        return pkt.summary()
    parts = [f"{ether.src} > {ether.dst}", pkt[AoE].mysummary()]
    for layer_type in ARG_LAYERS:
        if layer_type in pkt:
            parts.append(pkt[layer_type].mysummary())
    return " ".join(parts)


def print_pcap(path: str, out: Optional[TextIO] = None, count: Optional[int] = None) -> int:
    """Print one line per frame of a pcap file; returns the number printed."""
    out = out or sys.stdout
    printed = 0
    first: Optional[float] = None
    for stamp, pkt in read_pcap(path):
        if count is not None and printed >= count:
            break
        first = stamp if first is None else first
        print(f"{stamp - first:10.6f} {summarize(pkt)}", file=out)
        printed += 1
    return printed


__all__ = [
    "AoE",
    "AoEATA",
    "AoEConfig",
    "AoEMacMask",
    "AoEMaskDirective",
    "AoEReserve",
    "LBA48Field",
    "to_scapy",
    "from_frame",
    "to_frame",
    "read_pcap",
    "summarize",
    "print_pcap",
]
