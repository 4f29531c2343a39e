"""Building a request frame from a ``send`` mapping.

Every field has a default taken from the discovered target: destination its
MAC, shelf and slot its own, Ver 1, a fresh tag, source the harness MAC.
A field set in the suite is used as written, however wrong, because cases
test what targets do with wrong frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Optional

from aoeconform.wire import AtaArg, ConfigArg, Directive, Frame, Header, MacMaskArg, RawArg, ReserveArg
from aoeconform.wire.constants import (
    ATA_READ_SECTORS,
    ATA_WRITE_SECTORS,
    ATA_WRITE_SECTORS_EXT,
    CMD_ATA,
    CMD_MAC_MASK,
    CMD_QUERY_CONFIG,
    CMD_RESERVE_RELEASE,
    COMMAND_BYTE,
    ETH_MIN_FRAME,
    FLAG_ERROR,
    FLAG_RESPONSE,
    LBA28_MAX_SECTORS,
    frame_tag,
)
from aoeconform.wire.frame import Arg

from .expect import Env
from .values import ValueError_, byte_value, integer, mac_value

COMMANDS = {"ata": CMD_ATA, "config": CMD_QUERY_CONFIG, "mask": CMD_MAC_MASK, "reserve": CMD_RESERVE_RELEASE}
WRITE_OPCODES = (ATA_WRITE_SECTORS, ATA_WRITE_SECTORS_EXT)
READ_OPCODES = (ATA_READ_SECTORS, 0x24)
TAG_MASK = 0xFFFFFFFF


@dataclass
class Built:
    raw: bytes
    tag: int
    #: ATA READ/WRITE: the LBA the opcode addresses and the sector count
    lba: int = 0
    sectors: int = 0
    opcode: Optional[int] = None
    write_data: Optional[bytes] = None

    @property
    def is_write(self) -> bool:
        return self.opcode in WRITE_OPCODES

    @property
    def is_read(self) -> bool:
        return self.opcode in READ_OPCODES


def _ints(section: Mapping, names, env: Env, prefix: str) -> dict:
    out = {}
    for name in names:
        if name in section:
            out[name] = integer(section[name], env.variables, f"{prefix}.{name}")
    return out


def command_of(spec: Mapping, env: Env) -> int:
    command = spec.get("command")
    if command is None:
        for name, number in COMMANDS.items():
            if name in spec:
                return number
        return CMD_ATA
    if isinstance(command, str) and command in COMMANDS:
        return COMMANDS[command]
    return integer(command, env.variables, "command")


def build(spec: Mapping, env: Env, defaults: Mapping, new_tag: Callable[[], int]) -> Built:
    """``defaults``: dst, src, shelf, slot (bytes/ints) of the target and harness."""
    v = env.variables
    if "raw" in spec:
        raw = byte_value(spec["raw"], v, seed=env.seed, what="raw")
        return Built(raw, frame_tag(raw))
    command = command_of(spec, env)
    hspec = spec.get("header") or {}
    header = Header(
        dst=mac_value(hspec.get("dst", "target"), env.roles, v, "header.dst"),
        src=mac_value(hspec.get("src", "mac"), env.roles, v, "header.src"),
        shelf=defaults["shelf"],
        slot=defaults["slot"],
        command=command,
    )
    for name, value in _ints(hspec, ("ver", "flags", "error", "shelf", "slot", "command", "ethertype"), env, "header").items():
        setattr(header, name, value)
    if hspec.get("response"):
        header.flags |= FLAG_RESPONSE
    if hspec.get("error_flag"):
        header.flags |= FLAG_ERROR
    tag_spec = hspec.get("tag", "auto")
    header.tag = new_tag() if tag_spec == "auto" else integer(tag_spec, v, "header.tag") & TAG_MASK
    built = Built(b"", header.tag)

    arg: Arg
    if "arg" in spec:
        arg = RawArg(byte_value(spec["arg"], v, seed=env.seed, what="arg"))
    elif command == CMD_ATA:
        a = spec.get("ata") or {}
        fields = _ints(a, ("aflags", "err_feature", "sector_count", "cmd_status", "lba", "reserved"), env, "ata")
        arg = AtaArg(**fields)
        opcode = arg.cmd_status
        # which sectors the opcode addresses: 28-bit opcodes ignore lba3's high nibble (rule 26)
        lba = arg.lba & LBA28_MAX_SECTORS if opcode in (ATA_READ_SECTORS, ATA_WRITE_SECTORS) else arg.lba
        if "data" in a:
            arg.data = byte_value(a["data"], v, seed=env.seed, lba=lba, what="ata.data", default_sectors=arg.sector_count)
        built.opcode, built.lba, built.sectors = opcode, lba, arg.sector_count
        if built.is_write:
            built.write_data = arg.data
    elif command == CMD_QUERY_CONFIG:
        c = spec.get("config") or {}
        arg = ConfigArg(**_ints(c, ("bufcnt", "firmware", "sector_count", "ccmd", "version", "config_length"), env, "config"))
        if "config" in c:
            arg.config = byte_value(c["config"], v, seed=env.seed, what="config.config")
    elif command == CMD_MAC_MASK:
        m = spec.get("mask") or {}
        arg = MacMaskArg(**_ints(m, ("reserved", "mcmd", "merror", "dir_count"), env, "mask"))
        for i, d in enumerate(m.get("directives") or []):
            arg.directives.append(Directive(
                dcmd=integer(d.get("dcmd", 0), v, f"mask.directives[{i}].dcmd"),
                mac=mac_value(d["mac"], env.roles, v, f"mask.directives[{i}].mac"),
                reserved=integer(d.get("reserved", 0), v, f"mask.directives[{i}].reserved"),
            ))
    elif command == CMD_RESERVE_RELEASE:
        r = spec.get("reserve") or {}
        arg = ReserveArg(**_ints(r, ("rcmd", "nmacs"), env, "reserve"))
        arg.macs = [mac_value(m, env.roles, v, f"reserve.macs[{i}]") for i, m in enumerate(r.get("macs") or [])]
    else:
        arg = RawArg(b"")
    frame = Frame(header, arg, byte_value(spec.get("trailing"), v, seed=env.seed, what="trailing"))
    raw = frame.encode()
    truncate = spec.get("truncate")
    if truncate is not None:
        n = integer(truncate, v, "truncate")
        if n < 0:
            raise ValueError_(f"truncate: {n} is negative")
        raw = raw[:n]
    if spec.get("pad", truncate is None) and len(raw) < ETH_MIN_FRAME:
        raw += bytes(ETH_MIN_FRAME - len(raw))
    built.raw = raw
    return built


def changes_state(raw: bytes) -> set[str]:
    """Which parts of target state this request may change (restored afterwards)."""
    if len(raw) <= COMMAND_BYTE:
        return set()
    command = raw[COMMAND_BYTE]
    if command == CMD_QUERY_CONFIG and (len(raw) < 30 or raw[29] & 0xF not in (0, 1, 2)):
        return {"config"}
    if command == CMD_MAC_MASK and (len(raw) < 26 or raw[25] != 0):
        return {"mask"}
    if command == CMD_RESERVE_RELEASE and (len(raw) < 25 or raw[24] != 0):
        return {"reserve"}
    return set()
