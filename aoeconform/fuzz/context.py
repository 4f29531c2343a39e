"""What the fuzzer knows about the target it is pointed at, and the write policy.

Both are plain data: the case generator reads them to choose boundary
values (the last sector, the advertised sector count) and to keep every
request inside what the user allowed (no writes unless ``--allow-write``,
and then only inside the LBA window).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from aoeconform.errors import UsageError
from aoeconform.wire.constants import ETH_HEADER_LEN, LEGACY_SECTOR_COUNT

#: sectors in the default write window when --allow-write names none
DEFAULT_WINDOW_SECTORS = 64


def second_mac(host_mac: bytes) -> bytes:
    """The second initiator's MAC: a spoofed source on the host's own link,
    the same one the suites use (scenario.endpoint.spoofed_mac)."""
    from aoeconform.scenario.endpoint import spoofed_mac

    return spoofed_mac(host_mac)


@dataclass(frozen=True)
class TargetInfo:
    """The target under test: its address, its link, and what its config reply said."""

    mac: bytes
    shelf: int
    slot: int
    host_mac: bytes
    mtu: int = 1500
    bufcnt: int = 16
    #: Sector Count from the config reply; 0 means 2 (§3.2)
    sector_count: int = 2
    #: from IDENTIFY; None when unknown
    capacity: Optional[int] = None
    #: a second initiator's source MAC (Mac Mask and reservation cases speak
    #: from it); empty when the link cannot bring its replies back
    second_mac: bytes = b""

    @classmethod
    def from_discovery(cls, record, transport) -> "TargetInfo":
        """From a discovery record (initiator.discovery) and the transport that reaches it."""
        return cls(mac=record.mac, shelf=record.shelf, slot=record.slot, host_mac=transport.mac, mtu=transport.mtu,
                   bufcnt=record.bufcnt or 1, sector_count=record.sector_count, capacity=record.capacity_sectors,
                   second_mac=second_mac(transport.mac))

    @property
    def max_sectors(self) -> int:
        return self.sector_count or LEGACY_SECTOR_COUNT

    @property
    def max_frame(self) -> int:
        """Largest frame the link carries (no FCS)."""
        return self.mtu + ETH_HEADER_LEN

    @property
    def address(self) -> str:
        return f"{self.shelf}.{self.slot}"


@dataclass(frozen=True)
class WritePolicy:
    """Writes are off by default: write opcodes are turned into reads.

    With ``allow_write`` the standard write opcodes (0x30, 0x34) may be
    sent, but only with an LBA and sector count that keep the whole I/O
    inside [start, start + count) under every reading of the LBA bytes
    (28-bit, 48-bit, E flag or opcode)."""

    allow_write: bool = False
    start: int = 0
    count: int = 0

    @property
    def end(self) -> int:
        return self.start + self.count

    @classmethod
    def for_target(cls, allow_write: bool, window: Optional[str], capacity: Optional[int]) -> "WritePolicy":
        """``window`` is 'START:COUNT' in sectors; without it, 64 sectors in the
        middle of the disk (which needs the capacity from IDENTIFY)."""
        if not allow_write:
            return cls()
        if window:
            start_text, sep, count_text = window.partition(":")
            try:
                start, count = int(start_text, 0), int(count_text, 0)
            except ValueError:
                raise UsageError(f"--lba-window {window!r}: write it as START:COUNT in sectors, e.g. 4096:64") from None
            if not sep or start < 0 or count < 1:
                raise UsageError(f"--lba-window {window!r}: write it as START:COUNT in sectors, e.g. 4096:64")
        else:
            if not capacity:
                raise UsageError("--allow-write needs --lba-window START:COUNT: the target's capacity is unknown")
            count = min(DEFAULT_WINDOW_SECTORS, max(1, capacity // 4))
            start = capacity // 2
        if capacity is not None and start + count > capacity:
            raise UsageError(f"--lba-window {start}:{count} runs past the end of the disk ({capacity} sectors)")
        # 28-bit commands see only lba0-lba2 and the low nibble of lba3
        if start + count > 0x0FFFFFFF:
            raise UsageError(f"--lba-window {start}:{count}: keep the window below sector 0x0FFFFFFF so 28- and 48-bit readings agree")
        return cls(True, start, count)
