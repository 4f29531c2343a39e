"""What is known about one target: one type for every runner.

Discovery fills in the address and the Query Config reply (§3.2) and, when
asked, IDENTIFY DEVICE; the scenario engine's start-up probe adds the Mac
Mask list, the reservation and the optional ATA commands; the blocking
initiator and the fuzzer read it. Plain data, no I/O.

A field the target has not told us keeps its default: ``capacity`` is None
until IDENTIFY answers, ``mask`` and ``reservation`` are None until the
target answers those reads (None: unsupported, or not asked).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

from aoeconform.wire import AtaArg, ConfigArg, Frame, IdentifyData, mac_to_str
from aoeconform.wire.constants import (
    ATA_STATUS_FAILURE_MASK,
    ERROR_NAMES,
    ETH_HEADER_LEN,
    LEGACY_SECTOR_COUNT,
    SECTOR_SIZE,
    sectors_per_frame as mtu_sectors_per_frame,
)
from aoeconform.wire.identify import IDENTIFY_LEN


def frame_sectors(mtu: int, sector_count: int) -> int:
    """Sectors per ATA frame as the Linux driver picks them (reference §7 "What Linux sends").

    The MTU limit, lowered to the target's config Sector Count; if that
    comes to 0 (Sector Count 0, or a tiny MTU) the driver uses 1024 bytes.
    """
    n = min(mtu_sectors_per_frame(mtu), sector_count)
    return n if n > 0 else LEGACY_SECTOR_COUNT


def spoofed_mac(mac: bytes) -> bytes:
    """A locally administered unicast MAC that differs from ``mac``: the second
    initiator, a spoofed source on the same link."""
    candidate = bytes([0x02, 0xAE, 0xC0]) + mac[3:5] + bytes([mac[5] ^ 0x5A])
    return candidate if candidate != mac else candidate[:5] + bytes([candidate[5] ^ 0xFF])


@dataclass
class TargetFacts:
    """One target (MAC, shelf, slot) as seen from this host's MAC on a link of ``mtu``."""

    mac: bytes
    shelf: int
    slot: int
    #: this host's MAC: the source of the requests, the destination of the replies
    host_mac: bytes = bytes(6)
    #: the link MTU (payload bytes after the Ethernet header)
    mtu: int = 1500
    # -- the Query Config reply (§3.2)
    bufcnt: int = 16
    #: raw Sector Count; 0 means 2 (see ``max_sectors``)
    sector_count: int = 2
    #: IDENTIFY's readable sectors; None until IDENTIFY has answered
    capacity: Optional[int] = None
    firmware: int = 0
    config: bytes = b""
    #: Ver of the config reply's header
    ver: int = 1
    # -- IDENTIFY DEVICE
    lba48: bool = False
    model: str = ""
    serial: str = ""
    firmware_rev: str = ""
    #: why IDENTIFY gave no usable answer, when it did not
    identify_error: Optional[str] = None
    # -- capabilities, as far as they are known
    #: the Mac Mask list read at the start; None when unsupported or not read
    mask: Optional[List[bytes]] = None
    #: the reservation read at the start; None when unsupported or not read
    reservation: Optional[List[bytes]] = None
    #: optional ATA commands: False when refused with ABRT (rules 30, 31), True otherwise
    check_power: bool = True
    flush: bool = True
    #: set when the target was taken at the asked address although its reply named another (lenient resolve)
    address_fault: Optional[str] = None
    #: a second initiator's source MAC, for the fuzzer's Mac Mask and reservation
    #: cases (a spoofed source on this host's link); empty when there is none
    second_mac: bytes = b""

    # -- derived ----------------------------------------------------------------

    @property
    def max_sectors(self) -> int:
        """Sectors per ATA command the target accepts; a Sector Count of 0 means 2 (§3.2)."""
        return self.sector_count or LEGACY_SECTOR_COUNT

    @property
    def sectors_per_frame(self) -> int:
        """Sectors per ATA frame the Linux driver would send to it on this link."""
        return frame_sectors(self.mtu, self.sector_count)

    @property
    def max_frame(self) -> int:
        """Largest frame the link carries (no FCS)."""
        return self.mtu + ETH_HEADER_LEN

    @property
    def address(self) -> str:
        return f"{self.shelf}.{self.slot}"

    @property
    def identified(self) -> bool:
        return self.capacity is not None

    @property
    def capacity_bytes(self) -> Optional[int]:
        return None if self.capacity is None else self.capacity * SECTOR_SIZE

    def describe(self) -> str:
        return f"{self.address} ({mac_to_str(self.mac)})"

    # -- filling in from replies --------------------------------------------------

    @classmethod
    def from_config(cls, frame: Frame, host_mac: bytes = bytes(6), mtu: int = 1500) -> "TargetFacts":
        """From a Query Config reply (its source, address and argument)."""
        h, a = frame.header, frame.arg
        assert isinstance(a, ConfigArg)
        return cls(mac=h.src, shelf=h.shelf, slot=h.slot, host_mac=host_mac, mtu=mtu, bufcnt=a.bufcnt,
                   sector_count=a.sector_count, firmware=a.firmware, config=a.config, ver=h.ver)

    def apply_identify(self, frame: Frame) -> Optional[str]:
        """Take capacity, LBA48, model, serial and firmware revision from an
        IDENTIFY reply; returns (and keeps in ``identify_error``) why the reply
        is unusable, or None."""
        h, a = frame.header, frame.arg
        if h.error_flag:
            reason = f"AoE error {h.error} ({ERROR_NAMES.get(h.error, 'unknown code')})"
        elif not isinstance(a, AtaArg):
            reason = f"reply is command {h.command}, not ATA"
        elif a.cmd_status & ATA_STATUS_FAILURE_MASK:
            reason = f"ATA status 0x{a.cmd_status:02x} error 0x{a.err_feature:02x}"
        elif len(a.data) < IDENTIFY_LEN:
            reason = f"reply carries {len(a.data)} data bytes, IDENTIFY needs {IDENTIFY_LEN}"
        else:
            self.apply_identify_data(IdentifyData.decode(a.data[:IDENTIFY_LEN]))
            return None
        self.identify_error = reason
        return reason

    def apply_identify_data(self, ident: IdentifyData) -> None:
        self.capacity = ident.capacity_sectors
        self.lba48 = ident.lba48
        self.model, self.serial, self.firmware_rev = ident.model, ident.serial, ident.firmware
        self.identify_error = None

    def as_dict(self) -> dict:
        """Plain JSON-ready values (MACs as text, the config string decoded leniently and in hex)."""
        return {
            "mac": mac_to_str(self.mac), "shelf": self.shelf, "slot": self.slot, "bufcnt": self.bufcnt,
            "firmware": self.firmware, "sector_count": self.sector_count, "max_sectors": self.max_sectors,
            "config": self.config.decode("utf-8", "backslashreplace"), "config_hex": self.config.hex(),
            # 0 when unknown, as the run manifest has always said; capacity_sectors keeps None
            "capacity": self.capacity or 0, "capacity_sectors": self.capacity, "capacity_bytes": self.capacity_bytes,
            "lba48": self.lba48, "identified": self.identified, "model": self.model, "serial": self.serial,
            "firmware_rev": self.firmware_rev, "identify_error": self.identify_error, "ver": self.ver,
            "mask": None if self.mask is None else [mac_to_str(m) for m in self.mask],
            "reservation": None if self.reservation is None else [mac_to_str(m) for m in self.reservation],
            "mtu": self.mtu, "check_power": self.check_power, "flush": self.flush, "address_fault": self.address_fault,
        }
