"""The requests a session sends on its own behalf, built with the codec.

Liveness probes, IDENTIFY, the reads that take a snapshot of target state
and the edits that put it back, and single-sector reads and writes. Each
returns a ``Frame`` (the caller sets the tag and encodes, padded) addressed
to the target from this host's MAC, or from ``src`` when given (a second
initiator). Pure: no I/O.
"""

from __future__ import annotations

from typing import Iterable, Optional, Sequence

from aoeconform.wire import AtaArg, ConfigArg, Directive, Frame, Header, MacMaskArg, ReserveArg
from aoeconform.wire.constants import (
    AFLAG_E,
    AFLAG_W,
    ATA_IDENTIFY_DEVICE,
    ATA_READ_SECTORS_EXT,
    ATA_WRITE_SECTORS_EXT,
    CCMD_FORCE_SET,
    CCMD_READ,
    CMD_ATA,
    CMD_MAC_MASK,
    CMD_QUERY_CONFIG,
    CMD_RESERVE_RELEASE,
    IDENTIFY_DEVICE_BITS,
    MCMD_EDIT,
    MCMD_READ,
    RCMD_FORCE_SET,
    RCMD_READ,
)

from .facts import TargetFacts


def header(facts: TargetFacts, command: int, tag: int = 0, src: Optional[bytes] = None) -> Header:
    return Header(dst=facts.mac, src=src or facts.host_mac, shelf=facts.shelf, slot=facts.slot, command=command, tag=tag)


def config_read(facts: TargetFacts, tag: int = 0, src: Optional[bytes] = None) -> Frame:
    """The liveness probe: a Query Config read must be answered (§10 rule 36)."""
    return Frame(header(facts, CMD_QUERY_CONFIG, tag, src), ConfigArg(ccmd=CCMD_READ))


def config_force_set(facts: TargetFacts, config: bytes, tag: int = 0, src: Optional[bytes] = None) -> Frame:
    return Frame(header(facts, CMD_QUERY_CONFIG, tag, src), ConfigArg(ccmd=CCMD_FORCE_SET, config=config))


def identify(facts: TargetFacts, tag: int = 0, src: Optional[bytes] = None) -> Frame:
    """IDENTIFY DEVICE as Linux's ``aoecmd_ata_id`` sends it: one sector, lba3 0xA0."""
    return Frame(header(facts, CMD_ATA, tag, src), AtaArg(sector_count=1, cmd_status=ATA_IDENTIFY_DEVICE, lba=IDENTIFY_DEVICE_BITS << 24))


def ata_command(facts: TargetFacts, opcode: int, tag: int = 0, *, aflags: int = 0, sector_count: int = 0, lba: int = 0) -> Frame:
    """A non-data ATA command (CHECK POWER MODE, FLUSH CACHE, a READ)."""
    return Frame(header(facts, CMD_ATA, tag), AtaArg(aflags=aflags, sector_count=sector_count, cmd_status=opcode, lba=lba))


def read_sector(facts: TargetFacts, lba: int, tag: int = 0) -> Frame:
    """READ SECTORS EXT of one sector."""
    return Frame(header(facts, CMD_ATA, tag), AtaArg(aflags=AFLAG_E, sector_count=1, cmd_status=ATA_READ_SECTORS_EXT, lba=lba))


def write_sector(facts: TargetFacts, lba: int, data: bytes, tag: int = 0) -> Frame:
    """WRITE SECTORS EXT of one sector."""
    return Frame(header(facts, CMD_ATA, tag),
                 AtaArg(aflags=AFLAG_E | AFLAG_W, sector_count=1, cmd_status=ATA_WRITE_SECTORS_EXT, lba=lba, data=data))


def mask_read(facts: TargetFacts, tag: int = 0, src: Optional[bytes] = None) -> Frame:
    return Frame(header(facts, CMD_MAC_MASK, tag, src), MacMaskArg(mcmd=MCMD_READ))


def mask_edit(facts: TargetFacts, directives: Iterable[Directive], tag: int = 0, src: Optional[bytes] = None) -> Frame:
    return Frame(header(facts, CMD_MAC_MASK, tag, src), MacMaskArg(mcmd=MCMD_EDIT, directives=list(directives)))


def reserve_read(facts: TargetFacts, tag: int = 0, src: Optional[bytes] = None) -> Frame:
    return Frame(header(facts, CMD_RESERVE_RELEASE, tag, src), ReserveArg(rcmd=RCMD_READ))


def reserve_force_set(facts: TargetFacts, macs: Sequence[bytes], tag: int = 0, src: Optional[bytes] = None) -> Frame:
    return Frame(header(facts, CMD_RESERVE_RELEASE, tag, src), ReserveArg(rcmd=RCMD_FORCE_SET, macs=list(macs)))
