"""Query Config Information argument (§3.2): frame bytes 24-31, then the config string."""

from __future__ import annotations

import pytest

from aoeconform.wire import ConfigArg, DecodeError, Frame, Header

QUERY_HEADER = bytes.fromhex("ffffffffffff" "020000000001" "88a2" "10" "00" "ffff" "ff" "01" "80000001")
REPLY_HEADER = bytes.fromhex("020000000001" "56aa00000002" "88a2" "18" "00" "0001" "02" "01" "80000001")


def test_broadcast_query_read():
    raw = QUERY_HEADER + bytes.fromhex("0000" "0000" "00" "10" "0000")
    frame = Frame.decode(raw)
    assert frame.arg == ConfigArg(0, 0, 0, ccmd=0, version=1, config=b"", config_length=0)
    assert Frame(Header.decode(QUERY_HEADER), ConfigArg()).encode() == raw


def test_vblade_reply():
    # bufcnt 16, firmware 0x4019, 2 sectors (MTU 1500), version 1 / ccmd 0, no string (32-byte runt on veth)
    raw = REPLY_HEADER + bytes.fromhex("0010" "4019" "02" "10" "0000")
    a = Frame.decode(raw).arg
    assert (a.bufcnt, a.firmware, a.sector_count, a.version, a.ccmd, a.config) == (16, 0x4019, 2, 1, 0, b"")


def test_config_string_and_padding_after_it():
    raw = REPLY_HEADER + bytes.fromhex("0010" "4019" "11" "13" "0005" "68656c6c6f" "000000")
    frame = Frame.decode(raw)
    assert (frame.arg.ccmd, frame.arg.sector_count, frame.arg.config, frame.arg.config_length) == (3, 17, b"hello", 5)
    assert frame.trailing == bytes(3)
    assert frame.encode() == raw


def test_string_is_binary_and_may_hold_nul():
    raw = REPLY_HEADER + bytes.fromhex("0001" "0001" "02" "14" "0004" "00ff0080")
    assert Frame.decode(raw).arg.config == bytes.fromhex("00ff0080")


def test_version_nibble_may_be_missing():
    # aoetools send byte 29 with only the CCmd
    a = Frame.decode(QUERY_HEADER + bytes.fromhex("0000" "0000" "00" "02" "0000")).arg
    assert (a.version, a.ccmd) == (0, 2)


@pytest.mark.parametrize("claimed, present", [(5, 3), (1, 0), (0xFFFF, 10), (1025, 1024)])
def test_length_beyond_the_frame_is_a_decode_error(claimed, present):
    raw = REPLY_HEADER + bytes.fromhex("0010" "4019" "02" "10") + claimed.to_bytes(2, "big") + b"x" * present
    with pytest.raises(DecodeError) as info:
        Frame.decode(raw)
    assert (info.value.field, info.value.offset) == ("config_length", 30)
    assert f"claims {claimed} bytes" in str(info.value) and f"only {present} follow" in str(info.value)


def test_building_a_length_that_lies():
    arg = ConfigArg(ccmd=4, config=b"abc", config_length=7)
    assert arg.encode() == bytes.fromhex("0000" "0000" "00" "14" "0007" "616263")
    short = ConfigArg(ccmd=4, config=b"abcdef", config_length=2)
    frame = Frame.decode(QUERY_HEADER + short.encode())
    # the string ends where the length says; the rest is trailing bytes
    assert frame.arg.config == b"ab" and frame.trailing == b"cdef"


def test_oversize_string_and_any_values_are_built_as_given():
    arg = ConfigArg(bufcnt=0xFFFF, firmware=0xFFFF, sector_count=0xFF, ccmd=0xF, version=0xF, config=b"A" * 1500)
    raw = QUERY_HEADER + arg.encode()
    assert raw[24:32] == bytes.fromhex("ffff" "ffff" "ff" "ff" "05dc")
    back = Frame.decode(raw).arg
    assert back.config == b"A" * 1500 and back.config_length == 1500


@pytest.mark.parametrize(
    "length, field, offset",
    [(24, "bufcnt", 24), (25, "bufcnt", 24), (26, "firmware", 26), (28, "sector_count", 28),
     (29, "aoe_ccmd", 29), (30, "config_length", 30), (31, "config_length", 30)],
)
def test_truncated_argument_names_field_and_offset(length, field, offset):
    raw = (QUERY_HEADER + bytes(8))[:length]
    with pytest.raises(DecodeError) as info:
        Frame.decode(raw)
    assert (info.value.field, info.value.offset) == (field, offset)
    assert "config argument" in str(info.value)
