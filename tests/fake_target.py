"""A tiny AoE target for initiator tests (not the reference target).

It answers Query Config and the ATA commands the initiator uses, from an
in-memory disk, and can be told to misbehave: fail an LBA with an ATA or
AoE error, or stay silent.
"""

from __future__ import annotations

import struct
import threading
from typing import Dict, List

from aoeconform.target.host import HandlerThread
from aoeconform.wire import IdentifyData
from aoeconform.wire.constants import (
    ATA_ERROR_ABRT,
    ATA_ERROR_IDNF,
    ATA_STATUS_ERROR,
    ATA_STATUS_OK,
    CMD_ATA,
    CMD_QUERY_CONFIG,
    ERR_BAD_ARGUMENT,
    ETH_P_AOE,
    FLAG_ERROR,
    FLAG_RESPONSE,
    SECTOR_SIZE,
)

_ETHER = struct.Struct("!6s6sH")
_EXT_OPCODES = (0x24, 0x34)


def _pad(frame: bytes) -> bytes:
    return frame if len(frame) >= 60 else frame + bytes(60 - len(frame))


class FakeTarget:
    def __init__(self, mac: bytes, shelf: int = 1, slot: int = 2, sectors: int = 16384, bufcnt: int = 16,
                 mtu: int = 1500, lba48: bool = True):
        self.mac = mac
        self.shelf = shelf
        self.slot = slot
        self.sectors = sectors
        self.bufcnt = bufcnt
        self.mtu = mtu
        self.max_sectors = (mtu - 36) // SECTOR_SIZE
        self.disk = bytearray(sectors * SECTOR_SIZE)
        self.identify = IdentifyData.build(sectors, model="fake target", serial="1.2", firmware="T1", lba48=lba48).encode()
        self.silent = False
        self.ata_fail_lba: Dict[int, int] = {}  # lba -> ATA error register value
        self.aoe_fail_lba: Dict[int, int] = {}  # lba -> AoE error code
        self.requests: List[int] = []  # tags seen, in order
        self.lock = threading.Lock()

    def handle(self, raw: bytes) -> List[bytes]:
        if self.silent or len(raw) < 24:
            return []
        dst, src, etype = _ETHER.unpack_from(raw, 0)
        if etype != ETH_P_AOE or raw[14] & FLAG_RESPONSE:
            return []
        shelf, slot, cmd = struct.unpack_from("!HBB", raw, 16)
        if shelf not in (self.shelf, 0xFFFF) or slot not in (self.slot, 0xFF):
            return []
        head = src + self.mac + raw[12:14] + bytes([0x10 | FLAG_RESPONSE, 0]) + struct.pack("!HBB", self.shelf, self.slot, cmd) + raw[20:24]
        if cmd == CMD_QUERY_CONFIG:
            arg = struct.pack("!HHBBH", self.bufcnt, 0x4019, self.max_sectors, 0x10, 0)
            return [_pad(head + arg)]
        if cmd != CMD_ATA or len(raw) < 36:
            return []
        self.requests.append(struct.unpack_from("!I", raw, 20)[0])
        aflags, feat, scnt, opcode = raw[24:28]
        lba = int.from_bytes(raw[28:34], "little")
        if opcode not in _EXT_OPCODES:
            lba &= 0x0FFFFFFF

        def reply(status=ATA_STATUS_OK, err=0, data=b"", left=0):
            ata = bytes((aflags, err, left, status)) + raw[28:36]
            return [_pad(head + ata + data)]

        if lba in self.aoe_fail_lba and opcode in (0x20, 0x24, 0x30, 0x34):
            errhead = head[:14] + bytes([0x10 | FLAG_RESPONSE | FLAG_ERROR, self.aoe_fail_lba[lba]]) + head[16:]
            return [_pad(errhead + raw[24:36])]
        if lba in self.ata_fail_lba and opcode in (0x20, 0x24, 0x30, 0x34):
            return reply(ATA_STATUS_ERROR, self.ata_fail_lba[lba], left=scnt)
        if opcode in (0x20, 0x24, 0x30, 0x34):
            if scnt > self.max_sectors:
                errhead = head[:14] + bytes([0x10 | FLAG_RESPONSE | FLAG_ERROR, ERR_BAD_ARGUMENT]) + head[16:]
                return [_pad(errhead + raw[24:36])]
            if lba + scnt > self.sectors:
                return reply(ATA_STATUS_ERROR, ATA_ERROR_IDNF, left=scnt)
            start, end = lba * SECTOR_SIZE, (lba + scnt) * SECTOR_SIZE
            if opcode in (0x20, 0x24):
                return reply(data=bytes(self.disk[start:end]))
            payload = raw[36:36 + (end - start)]
            if len(payload) < end - start:
                return reply(ATA_STATUS_ERROR, ATA_ERROR_ABRT, left=scnt)
            self.disk[start:end] = payload
            return reply()
        if opcode == 0xEC:
            return reply(data=self.identify)
        if opcode in (0xE7, 0xEA):
            return reply()
        return reply(ATA_STATUS_ERROR, ATA_ERROR_ABRT)


def TargetThread(target: FakeTarget, transport) -> HandlerThread:
    """Serves a FakeTarget on a transport in a background thread (``with TargetThread(target, transport):``)."""
    return HandlerThread(lambda frame, burst: target.handle(frame), transport, name="fake-target")
