"""IDENTIFY DEVICE data: the 256 little-endian words an ATA device returns for opcode 0xEC.

Only the words an AoE initiator or a conformance check reads are named;
the rest are kept as they are, so decode and encode round-trip.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from .constants import ATA_HEADER_END, LBA28_MAX_SECTORS, SECTOR_SIZE
from .errors import DecodeError

IDENTIFY_LEN = SECTOR_SIZE
#: where the data starts in an ATA reply frame
IDENTIFY_FRAME_OFFSET = ATA_HEADER_END

# Word numbers (ATA/ATAPI-6)
W_SERIAL = 10  # words 10-19, 20 ASCII characters
W_FIRMWARE = 23  # words 23-26, 8 characters
W_MODEL = 27  # words 27-46, 40 characters
W_CAPABILITIES = 49  # bit 9: LBA supported
W_LBA28_CAPACITY = 60  # words 60-61
W_COMMAND_SET_SUPPORTED2 = 83  # bit 10: 48-bit address feature set supported
W_COMMAND_SET_ENABLED2 = 86  # bit 10: 48-bit address feature set enabled
W_LBA48_CAPACITY = 100  # words 100-103
LBA48_BIT = 1 << 10
CAPABILITY_LBA = 1 << 9


def _ata_string(words: list[int], start: int, count: int) -> str:
    # ATA strings store two characters per word, the first in the high byte
    raw = b"".join(struct.pack(">H", w) for w in words[start:start + count])
    return raw.decode("ascii", "replace").rstrip(" \x00")


def _set_ata_string(words: list[int], start: int, count: int, text: str) -> None:
    raw = text.encode("ascii", "replace")[: 2 * count].ljust(2 * count, b" ")
    for i in range(count):
        words[start + i] = (raw[2 * i] << 8) | raw[2 * i + 1]


@dataclass
class IdentifyData:
    words: list[int] = field(default_factory=lambda: [0] * 256)

    @classmethod
    def build(cls, capacity_sectors: int, model: str = "", serial: str = "", firmware: str = "", lba48: bool = True) -> "IdentifyData":
        data = cls()
        w = data.words
        w[W_CAPABILITIES] = CAPABILITY_LBA
        w[47] = 0x8000
        w[50] = 0x4000
        w[84] = w[87] = 0x4000  # word valid markers
        data.model, data.serial, data.firmware = model, serial, firmware
        data.lba28_capacity = min(capacity_sectors, LBA28_MAX_SECTORS)
        if lba48:
            w[W_COMMAND_SET_SUPPORTED2] = 0x4000 | LBA48_BIT
            w[W_COMMAND_SET_ENABLED2] = LBA48_BIT
            data.lba48_capacity = capacity_sectors
        else:
            w[W_COMMAND_SET_SUPPORTED2] = 0x4000
        return data

    @classmethod
    def decode(cls, data: bytes) -> "IdentifyData":
        if len(data) < IDENTIFY_LEN:
            # name the first word the data does not hold; offsets count from the frame start
            word = len(data) // 2
            raise DecodeError(
                f"identify word {word}", IDENTIFY_FRAME_OFFSET + 2 * word,
                f"IDENTIFY DEVICE data of {len(data)} bytes (needs {IDENTIFY_LEN})",
            )
        return cls(list(struct.unpack_from("<256H", data, 0)))

    def encode(self) -> bytes:
        return struct.pack("<256H", *self.words)

    model = property(lambda self: _ata_string(self.words, W_MODEL, 20), lambda self, v: _set_ata_string(self.words, W_MODEL, 20, v))
    serial = property(lambda self: _ata_string(self.words, W_SERIAL, 10), lambda self, v: _set_ata_string(self.words, W_SERIAL, 10, v))
    firmware = property(lambda self: _ata_string(self.words, W_FIRMWARE, 4), lambda self, v: _set_ata_string(self.words, W_FIRMWARE, 4, v))

    @property
    def lba28_capacity(self) -> int:
        return self.words[W_LBA28_CAPACITY] | (self.words[W_LBA28_CAPACITY + 1] << 16)

    @lba28_capacity.setter
    def lba28_capacity(self, sectors: int) -> None:
        self.words[W_LBA28_CAPACITY] = sectors & 0xFFFF
        self.words[W_LBA28_CAPACITY + 1] = (sectors >> 16) & 0xFFFF

    @property
    def lba48_capacity(self) -> int:
        return sum(self.words[W_LBA48_CAPACITY + i] << (16 * i) for i in range(4))

    @lba48_capacity.setter
    def lba48_capacity(self, sectors: int) -> None:
        for i in range(4):
            self.words[W_LBA48_CAPACITY + i] = (sectors >> (16 * i)) & 0xFFFF

    @property
    def lba48_supported(self) -> bool:
        return bool(self.words[W_COMMAND_SET_SUPPORTED2] & LBA48_BIT)

    @property
    def lba48_enabled(self) -> bool:
        return bool(self.words[W_COMMAND_SET_ENABLED2] & LBA48_BIT)

    @property
    def lba48(self) -> bool:
        """48-bit addressing as the Linux driver decides it: bit 10 of word 83 or of word 86."""
        return self.lba48_supported or self.lba48_enabled

    @property
    def capacity_sectors(self) -> int:
        """The addressable size: the 48-bit count when the device has the feature set."""
        if self.lba48 and self.lba48_capacity:
            return self.lba48_capacity
        return self.lba28_capacity
