"""The reference target and Debian's vblade, same requests, side by side.

Where §10 and vblade agree, both must give the same observation. Where they
differ, DIFFERENCES says what each does and why ours follows §10; the test
checks that both still behave as recorded, so a change on either side shows
up here. Needs root and vblade (skipped with a reason otherwise).
"""

from __future__ import annotations

import time

import pytest

from aoeconform.lab import Lab
from aoeconform.target.drivers import FrameBuilder, VethDriver
from conftest import need_root, unique_lab_name

SECTOR = 512


def observe(replies):
    """What a conformance check looks at: silence, or the AoE and ATA outcome."""
    if not replies:
        return "silent"
    r = replies[0]
    out = {"E": bool(r[14] & 0x04), "error": r[15] if r[14] & 0x04 else 0, "ver": r[14] >> 4, "count": len(replies)}
    if r[19] == 0 and len(r) >= 36 and not r[14] & 0x04:
        out.update(status=r[27], ata_err=r[25], scnt=r[26], data=len(r) - 36 if len(r) > 60 else 0)
    if r[19] == 1 and len(r) >= 32:
        out.update(bufcnt=int.from_bytes(r[24:26], "big"), sectors=r[28], ccmd=r[29] & 0xF)
    if r[19] == 2 and len(r) >= 28:
        out.update(mcmd=r[25], merror=r[26], dir_count=r[27])
    if r[19] == 3 and len(r) >= 26:
        out.update(rcmd=r[24], nmacs=r[25])
    return out


#: name: request (built for either target). Both must observe the same.
AGREE = {
    "config read": lambda b: b.config(0),
    "config read by broadcast": lambda b: b.config(0, shelf=0xFFFF, slot=0xFF, dst=b"\xff" * 6),
    "config test mismatch is silent": lambda b: b.config(1, b"nope"),
    "config unknown ccmd": lambda b: b.config(9),
    "read 1 sector": lambda b: b.ata(0x24, 0, 1),
    "read 2 sectors lba28": lambda b: b.ata(0x20, 0xE0000010, 2),
    "write 1 sector": lambda b: b.ata(0x34, 4096, 1, data=b"\x5a" * SECTOR),
    "read past the end": lambda b: b.ata(0x24, (64 << 20) // SECTOR, 1),
    "sector count too large": lambda b: b.ata(0x24, 0, 200),
    "short write payload": lambda b: b.ata(0x34, 4096, 2, data=b"\x5a" * 600),
    "unknown opcode": lambda b: b.ata(0x99, 0, 1),
    "SMART is unsupported": lambda b: b.ata(0xB0, 0, 1),
    "check power mode scnt 0": lambda b: b.ata(0xE5, 0, 0),
    "identify": lambda b: b.ata(0xEC, 0xA0 << 24, 1),
    "unknown command": lambda b: b.header(9) + bytes(36),
    "vendor command": lambda b: b.header(0xF0) + bytes(36),
    "other shelf": lambda b: b.config(0, shelf=7),
    "other slot": lambda b: b.config(0, slot=9),
    "R flag set": lambda b: b.config(0, flags=0x08),
    "mask read": lambda b: b.mask(0),
    "mask unknown mcmd": lambda b: b.mask(5),
    "reserve read": lambda b: b.reserve(0),
    "reserve unknown rcmd": lambda b: b.reserve(7),
}

#: name: (request, what vblade does, what we do, why)
DIFFERENCES = {
    "version 2": (lambda b: b.config(0, ver=2), lambda o: o != "silent" and not o["E"] and o["ver"] == 2,
                  lambda o: o["E"] and o["error"] == 5 and o["ver"] == 1,
                  "rules 7 and 12: vblade never checks Ver and echoes it; we answer Error 5 with Ver 1"),
    "error byte echoed": (lambda b: b.config(0, error=0x55), lambda o: True, lambda o: not o["E"],
                          "rule 8: vblade echoes the request's Error byte with E clear; ours is 0 (checked on raw bytes below)"),
    "flush cache": (lambda b: b.ata(0xE7, 0, 0), lambda o: o["status"] == 0x00, lambda o: o["status"] == 0x40,
                    "rule 31: vblade answers FLUSH CACHE with status 0 (DRDY clear); we flush and say 0x40"),
    "flush cache ext": (lambda b: b.ata(0xEA, 0, 0), lambda o: (o["status"], o["ata_err"]) == (0x41, 0x04),
                        lambda o: o["status"] == 0x40, "rule 31: vblade does not know 0xEA (ABRT); we flush"),
    "truncated ATA argument": (lambda b: b.ata(0x24, 0, 1, pad=False)[:27], lambda o: o == "silent",
                               lambda o: o["E"] and o["error"] == 2, "rule 15 allows both; we say Error 2"),
    "check power mode scnt 1": (lambda b: b.ata(0xE5, 0, 1), lambda o: o == "silent",
                                lambda o: o["scnt"] == 0xFF and o["status"] == 0x40,
                                "rule 30: vblade computes a negative reply length for scnt 1-254 and sends nothing"),
    "identify scnt 0": (lambda b: b.ata(0xEC, 0, 0), lambda o: o["E"] and o["error"] == 2,
                        lambda o: o["status"] == 0x40 and o["data"] == 512,
                        "ATA ignores the count for IDENTIFY; vblade insists on 1"),
}

#: raw-byte differences: name: (request, vblade check, ours check, why)
RAW_DIFFERENCES = {
    "padding of short replies": (lambda b: b.ata(0x24, (64 << 20) // SECTOR, 1), lambda r: len(r) == 36, lambda r: len(r) == 60,
                                 "rule 16: vblade relies on the driver to pad, veth does not; we pad to 60"),
    "error byte with E clear": (lambda b: b.config(0, error=0x55), lambda r: r[15] == 0x55, lambda r: r[15] == 0,
                                "rule 8: vblade echoes it; we send 0"),
    "firmware version": (lambda b: b.config(0), lambda r: r[26:28] == b"\x40\x19", lambda r: r[26:28] == b"\x00\x01",
                         "not a rule: each target names its own firmware"),
}


class Peer(FrameBuilder):
    def __init__(self, transport, target_mac):
        super().__init__(target_mac, transport.mac)
        self.transport = transport

    def exchange(self, frame, wait=0.5):
        self.transport.send(frame)
        replies, deadline = [], time.monotonic() + wait
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return replies
            r = self.transport.recv(remaining)
            if r is not None and len(r) >= 24 and r[14] & 0x08 and r[20:24] == frame[20:24]:
                replies.append(r)
                deadline = min(deadline, time.monotonic() + 0.03)


@pytest.fixture(scope="module")
def peers(vblade_lab, tmp_path_factory):
    need_root()
    labs = {}
    ours = VethDriver(str(tmp_path_factory.mktemp("ours")), lambda mtu: Lab(unique_lab_name(), mtu=mtu).up(), labs)
    ours.start(mtu=vblade_lab.mtu, image_bytes=64 << 20)
    transport = vblade_lab.transport()
    try:
        yield Peer(transport, vblade_lab.target_mac), Peer(ours.transport, ours.target_mac)
    finally:
        transport.close()
        ours.stop()
        for lab in labs.values():
            lab.down()


@pytest.mark.vblade
@pytest.mark.parametrize("name", sorted(AGREE))
def test_agree_with_vblade(peers, name):
    vblade, ours = peers
    build = AGREE[name]
    theirs, mine = observe(vblade.exchange(build(vblade))), observe(ours.exchange(build(ours)))
    assert mine == theirs


@pytest.mark.vblade
@pytest.mark.parametrize("name", sorted(DIFFERENCES))
def test_recorded_differences(peers, name):
    vblade, ours = peers
    build, vblade_check, ours_check, why = DIFFERENCES[name]
    assert vblade_check(observe(vblade.exchange(build(vblade)))), f"vblade changed: {why}"
    assert ours_check(observe(ours.exchange(build(ours)))), f"ours changed: {why}"


@pytest.mark.vblade
@pytest.mark.parametrize("name", sorted(RAW_DIFFERENCES))
def test_recorded_raw_differences(peers, name):
    vblade, ours = peers
    build, vblade_check, ours_check, why = RAW_DIFFERENCES[name]
    theirs, mine = vblade.exchange(build(vblade)), ours.exchange(build(ours))
    assert theirs and vblade_check(theirs[0]), f"vblade changed: {why}"
    assert mine and ours_check(mine[0]), f"ours changed: {why}"
