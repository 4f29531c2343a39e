"""A bare pipelined AoE initiator for benchmarks: no codec, no retransmission
logic beyond a stall guard, the same loop for every target it is pointed at.

``depth`` requests are kept outstanding; each reply (matched by tag) frees
its slot, which is refilled at once with the next LBA. Frames are built once
per slot and only their tag and LBA bytes change.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import time
from dataclasses import dataclass

SECTOR = 512
_TAG_LBA = struct.Struct("!I")


@dataclass
class LoopResult:
    frames: int
    seconds: float
    payload_bytes: int
    stalls: int

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0

    @property
    def megabytes_per_second(self) -> float:
        return self.payload_bytes / self.seconds / 1e6 if self.seconds else 0.0


def _request(dst: bytes, src: bytes, shelf: int, slot: int, write: bool, sectors: int) -> bytearray:
    header = dst + src + b"\x88\xa2" + struct.pack("!BBHBBI", 0x10, 0, shelf, slot, 0, 0)
    opcode = 0x34 if write else 0x24
    arg = struct.pack("!BBBB", 0x41 if write else 0x40, 0, sectors, opcode) + bytes(8)
    frame = bytearray(header + arg + (os.urandom(sectors * SECTOR) if write else b""))
    if len(frame) < 60:
        frame += bytes(60 - len(frame))
    return frame


def run_loop(transport, dst: bytes, shelf: int, slot: int, *, write: bool, depth: int, seconds: float,
             sectors: int = 17, span_sectors: int = 1 << 17, stall_timeout: float = 0.25) -> LoopResult:
    """Drive one target for ``seconds``; ``transport`` is a RawTransport on the host side."""
    sock = socket.socket(fileno=os.dup(transport.fileno()))
    sock.setblocking(False)
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    frames = [_request(dst, transport.mac, shelf, slot, write, sectors) for _ in range(depth)]
    tag_base = (os.getpid() & 0x7FFF) << 16
    lba_limit = max(1, span_sectors - sectors)
    send, recv = sock.send, sock.recv
    next_lba = 0
    seq = 0
    outstanding: dict[int, int] = {}  # tag -> slot

    def issue(slot_index: int) -> None:
        nonlocal next_lba, seq
        seq = (seq + 1) & 0xFFFF
        tag = tag_base | seq
        frame = frames[slot_index]
        frame[20:24] = _TAG_LBA.pack(tag)
        frame[28:32] = next_lba.to_bytes(4, "little")
        next_lba = (next_lba + sectors) % lba_limit
        outstanding[tag] = slot_index
        try:
            send(frame)
        except BlockingIOError:
            select.select([], [sock], [], 1.0)
            send(frame)

    done = stalls = 0
    try:
        # drain anything stale first
        while True:
            try:
                recv(65536)
            except BlockingIOError:
                break
        start = time.perf_counter()
        end = start + seconds
        for i in range(depth):
            issue(i)
        while True:
            try:
                reply = recv(65536)
            except BlockingIOError:
                if not poller.poll(stall_timeout * 1000):
                    # a lost frame: resend every outstanding slot with a new tag
                    stalls += 1
                    slots = list(outstanding.values())
                    outstanding.clear()
                    for s in slots:
                        issue(s)
                    if time.perf_counter() >= end:
                        break
                continue
            if len(reply) < 24 or not reply[14] & 0x08:
                continue
            slot_index = outstanding.pop(_TAG_LBA.unpack_from(reply, 20)[0], None)
            if slot_index is None:
                continue
            done += 1
            if done & 63 == 0 and time.perf_counter() >= end:
                break
            issue(slot_index)
        elapsed = time.perf_counter() - start
    finally:
        sock.close()
    return LoopResult(done, elapsed, done * sectors * SECTOR, stalls)
