"""Drive the reference target with raw frames, in memory or over a veth pair.

Tests and the self-check use these so that one test body runs against the
logic in this process (``MemoryDriver``) and against the target running as
a subprocess in a lab namespace (``VethDriver``). Requests are built byte
by byte here, not with the codec, so the tests check the codec's reading
of the protocol rather than borrow it.
"""

from __future__ import annotations

import os
import struct
import sys
import time
from typing import TYPE_CHECKING, Optional, Sequence

from aoeconform.wire.constants import (
    AOE_HEADER_LEN,
    CMD_QUERY_CONFIG,
    COMMAND_BYTE,
    FLAG_RESPONSE,
    SRC_BYTES,
    TAG_BYTES,
    VER_FLAGS_BYTE,
)

from .image import FileImage, MemoryImage

if TYPE_CHECKING:
    from aoeconform.transport.raw import RawTransport

    from .logic import Target

SHELF, SLOT = 1, 2
HOST_MAC = bytes.fromhex("020000000001")
OTHER_MACS = [bytes.fromhex(f"0200000000{i:02x}") for i in range(0x10, 0x20)]
BROADCAST = b"\xff" * 6
ETH_AOE = b"\x88\xa2"


def _is_announcement(frame: bytes) -> bool:
    """The unsolicited config reply a target sends at start-up: tag 0 (rule 46)."""
    return (len(frame) >= AOE_HEADER_LEN and frame[COMMAND_BYTE] == CMD_QUERY_CONFIG
            and bool(frame[VER_FLAGS_BYTE] & FLAG_RESPONSE) and frame[TAG_BYTES] == bytes(4))


class FrameBuilder:
    """Request frames for a target at ``target_mac``; padded to 60 bytes unless ``pad=False``."""

    def __init__(self, target_mac: bytes, src: bytes = HOST_MAC) -> None:
        self.target_mac = target_mac
        self.src = src
        self._tag = 0x100

    def next_tag(self) -> int:
        self._tag = (self._tag + 1) & 0x7FFFFFFF
        return self._tag

    def header(self, command, *, tag=None, shelf=SHELF, slot=SLOT, ver=1, flags=0, error=0, dst=None, src=None, ethertype=ETH_AOE) -> bytes:
        tag = self.next_tag() if tag is None else tag
        return (
            (self.target_mac if dst is None else dst)
            + (self.src if src is None else src)
            + ethertype
            + struct.pack("!BBHBBI", (ver << 4) | flags, error, shelf, slot, command, tag)
        )

    @staticmethod
    def pad(frame: bytes, pad: bool = True) -> bytes:
        return frame + bytes(60 - len(frame)) if pad and len(frame) < 60 else frame

    def ata(self, opcode, lba=0, scnt=1, *, aflags=None, data=b"", feature=0, reserved=0, pad=True, **h) -> bytes:
        if aflags is None:
            aflags = (0x40 if opcode in (0x24, 0x34, 0xEA) else 0) | (0x01 if opcode in (0x30, 0x34) else 0)
        arg = struct.pack("!BBBB", aflags, feature, scnt, opcode) + (lba & 0xFFFFFFFFFFFF).to_bytes(6, "little") + struct.pack("!H", reserved)
        return self.pad(self.header(0, **h) + arg + data, pad)

    def config(self, ccmd, string=b"", *, length=None, version=1, bufcnt=0, firmware=0, scnt=0, pad=True, **h) -> bytes:
        length = len(string) if length is None else length
        arg = struct.pack("!HHBBH", bufcnt, firmware, scnt, (version << 4) | ccmd, length)
        return self.pad(self.header(1, **h) + arg + string, pad)

    def mask(self, mcmd, directives: Sequence[tuple[int, bytes]] = (), *, count=None, merror=0, pad=True, **h) -> bytes:
        count = len(directives) if count is None else count
        body = b"".join(bytes((0, dcmd)) + mac for dcmd, mac in directives)
        return self.pad(self.header(2, **h) + bytes((0, mcmd, merror, count)) + body, pad)

    def reserve(self, rcmd, macs: Sequence[bytes] = (), *, nmacs=None, pad=True, **h) -> bytes:
        nmacs = len(macs) if nmacs is None else nmacs
        return self.pad(self.header(3, **h) + bytes((rcmd, nmacs)) + b"".join(macs), pad)


class Driver(FrameBuilder):
    """What every driver offers: start a target, exchange frames, look at the image."""

    kind = "abstract"
    silence_wait = 0.0

    def start(self, *, mtu=1500, image_bytes=8 << 20, readonly=False, config=b"", mask=(), quirks=(), bufcnt=16, sync=False):
        raise NotImplementedError

    def exchange(self, frame: bytes, expect: bool = True) -> list[bytes]:
        """Send one request; the replies carrying its tag (none when ``expect`` is False
        and the target stays silent)."""
        raise NotImplementedError

    def burst(self, frames: Sequence[bytes]) -> list[bytes]:
        raise NotImplementedError

    def read_image(self, offset: int, length: int) -> bytes:
        raise NotImplementedError

    def write_image(self, offset: int, data: bytes) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        pass


class MemoryDriver(Driver):
    """The logic in this process, on an image file in ``workdir``."""

    kind = "memory"

    def __init__(self, workdir: str) -> None:
        super().__init__(bytes.fromhex("02aaaaaaaa02"))
        self.workdir = workdir
        self.target: Optional[Target] = None
        self.announcements: list[bytes] = []

    def start(self, *, mtu=1500, image_bytes=8 << 20, readonly=False, config=b"", mask=(), quirks=(), bufcnt=16, sync=False, memory=False):
        from .logic import Target

        self.stop()
        image: MemoryImage | FileImage
        if memory:
            image = MemoryImage(image_bytes)
        else:
            path = os.path.join(self.workdir, "memory-driver.img")
            with open(path, "wb") as f:
                f.truncate(image_bytes)
            image = FileImage(path, sync=sync)
        self.image = image
        self.mtu = mtu
        self.capacity = image_bytes // 512
        self.target = Target(image, shelf=SHELF, slot=SLOT, mac=self.target_mac, mtu=mtu, bufcnt=bufcnt,
                             readonly=readonly, config=config, mask=mask, quirks=quirks)
        self.announcements = self.target.announce()
        return self

    def _started(self) -> Target:
        if self.target is None:
            raise RuntimeError("the memory driver is not started")
        return self.target

    def exchange(self, frame: bytes, expect: bool = True) -> list[bytes]:
        return self._started().handle(frame)

    def burst(self, frames: Sequence[bytes]) -> list[bytes]:
        replies = []
        target = self._started()
        for index, frame in enumerate(frames):
            replies.extend(target.handle(frame, index))
        return replies

    def read_image(self, offset: int, length: int) -> bytes:
        self._started().complete_pending()
        buf = bytearray(length)
        self.image.readinto(memoryview(buf), offset)
        return bytes(buf)

    def write_image(self, offset: int, data: bytes) -> None:
        self.image.write(data, offset)

    def stop(self) -> None:
        if self.target is not None:
            self.target.close()
            self.image.close()
            self.target = None


class VethDriver(Driver):
    """The target as a subprocess (``python -m aoeconform target``) in a lab namespace.

    ``labs`` maps an MTU to a ready ``aoeconform.lab.Lab``; ``lab_factory(mtu)``
    makes one when none is there yet."""

    kind = "veth"
    silence_wait = 0.25
    reply_wait = 3.0

    def __init__(self, workdir: str, lab_factory, labs: Optional[dict] = None) -> None:
        self.workdir = workdir
        self.lab_factory = lab_factory
        self.labs = {} if labs is None else labs
        self.process = None
        self.transport: Optional[RawTransport] = None
        self.announcements: list[bytes] = []
        super().__init__(b"\x00" * 6)

    def start(self, *, mtu=1500, image_bytes=8 << 20, readonly=False, config=b"", mask=(), quirks=(), bufcnt=16, sync=False, extra_args=()):
        from aoeconform.transport.raw import RawTransport

        self.stop()
        lab = self.labs.get(mtu)
        if lab is None:
            lab = self.labs[mtu] = self.lab_factory(mtu)
        self.lab = lab
        self.mtu = mtu
        self.capacity = image_bytes // 512
        self.image_path = os.path.join(self.workdir, "veth-driver.img")
        with open(self.image_path, "wb") as f:
            f.truncate(image_bytes)
        self.target_mac = lab.target_mac
        self.src = lab.host_mac
        argv = [sys.executable, "-m", "aoeconform", "target", self.image_path, "--iface", lab.target_if,
                "--shelf", str(SHELF), "--slot", str(SLOT), "--bufcnt", str(bufcnt)]
        if readonly:
            argv.append("--readonly")
        if sync:
            argv.append("--sync")
        if config:
            argv += ["--config", config.decode("utf-8", "surrogateescape")]
        if mask:
            argv += ["--mask", ",".join(":".join(f"{b:02x}" for b in m) for m in mask)]
        for q in quirks:
            argv += ["--quirk", q]
        argv += list(extra_args)
        # Listen before the target starts, to catch its announcement.
        self.transport = RawTransport(lab.host_if)
        self.process = process = lab.start_in_netns(argv, log_path=os.path.join(self.workdir, "veth-target.log"))
        self.announcements = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            frame = self.transport.recv(0.05)
            if frame is not None and _is_announcement(frame):
                self.announcements.append(frame)
                break
            if not process.alive():
                raise RuntimeError(f"target exited: {process.log_tail()}")
            if "no-advertisement" in quirks and time.monotonic() > deadline - 9:
                break
        if not self.announcements:
            # no announcement to wait for: wait until it answers instead
            probe_src = mask[0] if mask else self.src
            for _ in range(100):
                if self.exchange(self.config(0, src=probe_src), expect=True):
                    break
        # a second announcement copy (one per masked MAC) may still be queued
        end = time.monotonic() + 0.02
        while time.monotonic() < end:
            frame = self.transport.recv(0.01)
            if frame is not None and _is_announcement(frame):
                self.announcements.append(frame)
        return self

    def _started(self) -> RawTransport:
        if self.transport is None:
            raise RuntimeError("the veth driver is not started")
        return self.transport

    def _collect(self, tags: set, want: int, first_wait: float, grace: float) -> list[bytes]:
        transport = self._started()
        replies: list[bytes] = []
        deadline = time.monotonic() + first_wait
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return replies
            frame = transport.recv(remaining)
            if frame is None:
                return replies
            if len(frame) >= AOE_HEADER_LEN and frame[VER_FLAGS_BYTE] & FLAG_RESPONSE and frame[TAG_BYTES] in tags and frame[SRC_BYTES] != transport.mac:
                replies.append(frame)
                if len(replies) >= want:
                    deadline = min(deadline, time.monotonic() + grace)

    def exchange(self, frame: bytes, expect: bool = True) -> list[bytes]:
        self._started().send(frame)
        tag = frame[TAG_BYTES] if len(frame) >= AOE_HEADER_LEN else b""
        # tag-bit31-cleared and friends: accept the tag with bit 31 flipped off too
        tags = {tag, bytes([tag[0] & 0x7F]) + tag[1:]} if tag else set()
        if expect:
            return self._collect(tags, 1, self.reply_wait, 0.03)
        return self._collect(tags, 1, self.silence_wait, 0.0)

    def burst(self, frames: Sequence[bytes]) -> list[bytes]:
        tags = {f[TAG_BYTES] for f in frames}
        transport = self._started()
        for f in frames:
            transport.send(f)
        return self._collect(tags, len(frames), self.reply_wait, 0.05)

    def read_image(self, offset: int, length: int) -> bytes:
        with open(self.image_path, "rb") as f:
            f.seek(offset)
            data = f.read(length)
        return data + bytes(length - len(data))

    def write_image(self, offset: int, data: bytes) -> None:
        with open(self.image_path, "r+b") as f:
            f.seek(offset)
            f.write(data)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None
        if self.transport is not None:
            self.transport.close()
            self.transport = None
