"""Valid requests the mutations start from: generated ones for every command,
plus the seed frames in a corpus directory.

A seed is kept as the AoE part of a frame (from the Ver/Flags byte on), so
the same corpus serves any lab: the Ethernet addresses, shelf, slot and tag
are filled in for each case. Corpus files (see corpora/README.md):

* ``*.hex``: hex digits, white space ignored, ``#`` starts a comment; a
  whole Ethernet frame (EtherType 0x88A2 at bytes 12-13) or the AoE part;
* ``*.bin``: the same, as raw bytes.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Iterable, List, Sequence

from aoeconform.errors import UsageError
from aoeconform.wire import AtaArg, ConfigArg, Directive, Frame, Header, MacMaskArg, ReserveArg
from aoeconform.wire.constants import (
    AFLAG_E,
    AFLAG_W,
    ATA_CHECK_POWER_MODE,
    ATA_FLUSH_CACHE,
    ATA_FLUSH_CACHE_EXT,
    ATA_IDENTIFY_DEVICE,
    ATA_READ_SECTORS,
    ATA_READ_SECTORS_EXT,
    ATA_WRITE_SECTORS,
    ATA_WRITE_SECTORS_EXT,
    CCMD_FORCE_SET,
    CCMD_READ,
    CCMD_SET,
    CCMD_TEST,
    CCMD_TEST_PREFIX,
    CMD_ATA,
    CMD_MAC_MASK,
    CMD_QUERY_CONFIG,
    CMD_RESERVE_RELEASE,
    DCMD_ADD,
    DCMD_DELETE,
    ETH_HEADER_LEN,
    ETH_P_AOE,
    IDENTIFY_DEVICE_BITS,
    LBA_MODE_BITS,
    MCMD_EDIT,
    MCMD_READ,
    RCMD_FORCE_SET,
    RCMD_READ,
    RCMD_SET,
    SECTOR_SIZE,
)

COMMAND_CHOICES = {
    "ata": CMD_ATA,
    "config": CMD_QUERY_CONFIG,
    "mask": CMD_MAC_MASK,
    "reserve": CMD_RESERVE_RELEASE,
}

#: stands for the host's own MAC in generated seeds; replaced per case
HOST_MAC_PLACEHOLDER = b"\x02\x00\x00\x00\xfe\xed"
_PLACEHOLDER_ETH = b"\xff" * 6 + b"\x00" * 6 + ETH_P_AOE.to_bytes(2, "big")


@dataclass(frozen=True)
class Seed:
    name: str
    #: the frame from byte 14 on (Ver/Flags first)
    aoe: bytes

    @property
    def command(self) -> int:
        return self.aoe[5] if len(self.aoe) > 5 else -1

    def frame_bytes(self, dst: bytes, src: bytes) -> bytes:
        return dst + src + ETH_P_AOE.to_bytes(2, "big") + self.aoe


def _seed(name: str, command: int, arg) -> Seed:
    raw = Frame(Header(command=command), arg).encode()
    return Seed(name, raw[ETH_HEADER_LEN:])


def _lba28(lba: int) -> int:
    return lba | (LBA_MODE_BITS << 24)


def generated_seeds() -> List[Seed]:
    """One or more valid requests for every command, in a fixed order."""
    sector = bytes(range(256)) * 2
    seeds = [
        _seed("ata-identify", CMD_ATA, AtaArg(sector_count=1, cmd_status=ATA_IDENTIFY_DEVICE, lba=IDENTIFY_DEVICE_BITS << 24)),
        _seed("ata-read28", CMD_ATA, AtaArg(sector_count=1, cmd_status=ATA_READ_SECTORS, lba=_lba28(0))),
        _seed("ata-read48", CMD_ATA, AtaArg(aflags=AFLAG_E, sector_count=1, cmd_status=ATA_READ_SECTORS_EXT, lba=8)),
        _seed("ata-read48-2", CMD_ATA, AtaArg(aflags=AFLAG_E, sector_count=2, cmd_status=ATA_READ_SECTORS_EXT, lba=16)),
        _seed("ata-write28", CMD_ATA, AtaArg(aflags=AFLAG_W, sector_count=1, cmd_status=ATA_WRITE_SECTORS, lba=_lba28(0), data=sector)),
        _seed("ata-write48", CMD_ATA, AtaArg(aflags=AFLAG_E | AFLAG_W, sector_count=1, cmd_status=ATA_WRITE_SECTORS_EXT, lba=0, data=sector)),
        _seed("ata-check-power", CMD_ATA, AtaArg(sector_count=0, cmd_status=ATA_CHECK_POWER_MODE)),
        _seed("ata-flush", CMD_ATA, AtaArg(cmd_status=ATA_FLUSH_CACHE)),
        _seed("ata-flush-ext", CMD_ATA, AtaArg(aflags=AFLAG_E, cmd_status=ATA_FLUSH_CACHE_EXT)),
        _seed("config-read", CMD_QUERY_CONFIG, ConfigArg(ccmd=CCMD_READ)),
        _seed("config-test", CMD_QUERY_CONFIG, ConfigArg(ccmd=CCMD_TEST, config=b"")),
        _seed("config-prefix", CMD_QUERY_CONFIG, ConfigArg(ccmd=CCMD_TEST_PREFIX, config=b"")),
        _seed("config-set", CMD_QUERY_CONFIG, ConfigArg(ccmd=CCMD_SET, config=b"aoeconform-fuzz")),
        _seed("config-force-set", CMD_QUERY_CONFIG, ConfigArg(ccmd=CCMD_FORCE_SET, config=b"aoeconform-fuzz")),
        _seed("mask-read", CMD_MAC_MASK, MacMaskArg(mcmd=MCMD_READ)),
        _seed("mask-edit", CMD_MAC_MASK, MacMaskArg(mcmd=MCMD_EDIT, directives=[Directive(DCMD_ADD, HOST_MAC_PLACEHOLDER), Directive(DCMD_DELETE, HOST_MAC_PLACEHOLDER)])),
        # a list that stays: then frames from the second MAC must go unanswered (rule 51)
        _seed("mask-add-host", CMD_MAC_MASK, MacMaskArg(mcmd=MCMD_EDIT, directives=[Directive(DCMD_ADD, HOST_MAC_PLACEHOLDER)])),
        _seed("reserve-read", CMD_RESERVE_RELEASE, ReserveArg(rcmd=RCMD_READ)),
        _seed("reserve-set-release", CMD_RESERVE_RELEASE, ReserveArg(rcmd=RCMD_SET, macs=[])),
        # a reservation that stays: then the second MAC's reads and writes get Error 6 (rule 57)
        _seed("reserve-set-host", CMD_RESERVE_RELEASE, ReserveArg(rcmd=RCMD_SET, macs=[HOST_MAC_PLACEHOLDER])),
        _seed("reserve-force-host", CMD_RESERVE_RELEASE, ReserveArg(rcmd=RCMD_FORCE_SET, macs=[HOST_MAC_PLACEHOLDER])),
    ]
    assert all(len(s.aoe) <= 10 + 12 + SECTOR_SIZE for s in seeds)
    return seeds


_COMMENT = re.compile(r"#[^\n]*")


def parse_seed_file(name: str, raw: bytes, is_hex: bool) -> Seed:
    if is_hex:
        text = _COMMENT.sub("", raw.decode("ascii", "replace"))
        digits = "".join(text.split())
        try:
            raw = bytes.fromhex(digits)
        except ValueError:
            raise UsageError(f"corpus file {name}: not hex digits; write the frame as hex, # starts a comment") from None
    if len(raw) >= ETH_HEADER_LEN and raw[12:14] == ETH_P_AOE.to_bytes(2, "big"):
        raw = raw[ETH_HEADER_LEN:]
    if len(raw) < 10:
        raise UsageError(f"corpus file {name}: {len(raw)} bytes is shorter than the AoE header (10 bytes after the Ethernet header)")
    return Seed(os.path.basename(name), bytes(raw))


def load_corpus(directory: str) -> List[Seed]:
    """Every *.hex and *.bin file in ``directory``, sorted by name (so the
    case sequence does not depend on the file system's order)."""
    if not os.path.isdir(directory):
        raise UsageError(f"--corpus {directory}: no such directory")
    seeds = []
    for entry in sorted(os.listdir(directory)):
        path = os.path.join(directory, entry)
        if not os.path.isfile(path) or not entry.endswith((".hex", ".bin")):
            continue
        with open(path, "rb") as f:
            seeds.append(parse_seed_file(entry, f.read(), entry.endswith(".hex")))
    return seeds


def default_corpus_dir() -> str:
    """corpora/ at the top of the source tree when the package runs from one,
    else ``aoeconform/corpora`` inside an installed package (a wheel build
    copies it there, see setup.py)."""
    package_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    checkout = os.path.join(os.path.dirname(package_dir), "corpora")
    return checkout if os.path.isdir(checkout) else os.path.join(package_dir, "corpora")


def select_seeds(seeds: Iterable[Seed], commands: Sequence[int]) -> List[Seed]:
    chosen = [s for s in seeds if s.command in commands]
    if not chosen:
        raise UsageError("no seed frames for the chosen --command; add seeds to the corpus or choose another command")
    return chosen
