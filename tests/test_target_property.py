"""Arbitrary frames thrown at the target logic: it never raises, never
sends a frame beyond the MTU or under 60 bytes, and still answers a Query
Config afterwards. The default run tries a few hundred frames; the slow
test (-m slow) 100,000."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aoeconform.target.image import MemoryImage
from aoeconform.target.logic import Target

TARGET_MAC = bytes.fromhex("02aaaaaaaa02")
HOST = bytes.fromhex("020000000001")
MTU = 1500


def fresh_target(quirks=()):
    return Target(MemoryImage(1 << 20), shelf=1, slot=2, mac=TARGET_MAC, mtu=MTU, quirks=quirks)


# Frames that mostly reach the target (right EtherType, its address or the
# wildcards), with any flags, command, argument and length.
header = st.builds(
    lambda dst, src, verflags, error, shelf, slot, command, tag: dst + src + b"\x88\xa2" + struct.pack("!BBHBBI", verflags, error, shelf, slot, command, tag),
    st.sampled_from([TARGET_MAC, b"\xff" * 6, HOST]),
    st.sampled_from([HOST, bytes.fromhex("020000000002"), TARGET_MAC]),
    st.one_of(st.just(0x10), st.integers(0, 255)),
    st.integers(0, 255),
    st.sampled_from([1, 0xFFFF, 2, 0]),
    st.sampled_from([2, 0xFF, 3]),
    st.one_of(st.integers(0, 3), st.integers(0, 255)),
    st.integers(0, 0xFFFFFFFF),
)
ata_arg = st.builds(
    lambda aflags, scnt, opcode, lba, rest: struct.pack("!BBBB", aflags, 0, scnt, opcode) + lba.to_bytes(6, "little") + rest,
    st.integers(0, 255),
    st.one_of(st.integers(0, 3), st.integers(0, 255)),
    st.sampled_from([0x20, 0x24, 0x30, 0x34, 0xEC, 0xE5, 0xE7, 0xEA, 0xB0]) | st.integers(0, 255),
    st.one_of(st.integers(0, 2100), st.integers(0, (1 << 48) - 1)),
    st.binary(max_size=1100),
)
frames = st.one_of(
    st.binary(max_size=120),
    st.tuples(header, st.binary(max_size=1200)).map(lambda p: p[0] + p[1]),
    st.tuples(header, ata_arg).map(lambda p: p[0][:19] + b"\x00" + p[0][20:] + p[1]),
)


def check(target, frame_list):
    for frame in frame_list:
        for reply in target.handle(frame):
            assert 60 <= len(reply) <= MTU + 14
            assert reply[14] & 0x08 and reply[6:12] == TARGET_MAC
    # still alive: a Query Config from a MAC that any mask list lets through
    allowed = target.mask[0] if target.mask else HOST
    probe = TARGET_MAC + allowed + b"\x88\xa2" + struct.pack("!BBHBBI", 0x10, 0, 1, 2, 1, 99) + bytes(36)
    replies = target.handle(probe)
    assert len(replies) == 1 and replies[0][19] == 1 and replies[0][20:24] == struct.pack("!I", 99)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(frames, min_size=1, max_size=8))
def test_arbitrary_frames_never_break_the_target(frame_list):
    check(fresh_target(), frame_list)


@pytest.mark.slow
@settings(max_examples=100_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(frames, min_size=1, max_size=8))
def test_arbitrary_frames_never_break_the_target_long(frame_list):
    check(fresh_target(), frame_list)
