"""Issue ATA Command argument (§3.1): frame bytes 24-35, then data."""

from __future__ import annotations

import pytest

from aoeconform.wire import AtaArg, DecodeError, Frame, Header
from aoeconform.wire.constants import AFLAG_A, AFLAG_D, AFLAG_E, AFLAG_W, AFLAGS_MBZ

HEADER = bytes.fromhex("56aa00000002" "020000000001" "88a2" "10" "00" "0001" "02" "00" "00000010")
REPLY_HEADER = bytes.fromhex("020000000001" "56aa00000002" "88a2" "18" "00" "0001" "02" "00" "00000010")

# IDENTIFY as Linux sends it: aflags 0, feature 0, scnt 1, cmd 0xec, lba3 0xa0
IDENTIFY_ARG = bytes.fromhex("00" "00" "01" "ec" "000000a00000" "0000")


def test_identify_request():
    frame = Frame.decode(HEADER + IDENTIFY_ARG)
    a = frame.arg
    assert isinstance(a, AtaArg)
    assert (a.aflags, a.err_feature, a.sector_count, a.cmd_status, a.reserved, a.data) == (0, 0, 1, 0xEC, 0, b"")
    assert a.lba == 0xA0 << 24
    assert Frame(Header.decode(HEADER), AtaArg(sector_count=1, cmd_status=0xEC, lba=0xA0000000)).encode() == HEADER + IDENTIFY_ARG


def test_lba_is_little_endian_48_bits():
    arg = bytes.fromhex("40" "00" "02" "24" "060504030201" "0000")
    a = Frame.decode(HEADER + arg).arg
    assert a.lba == 0x010203040506
    assert a.encode() == arg


def test_lba_encode_keeps_48_bits():
    assert AtaArg(lba=(1 << 48) | 0x0102).encode() == bytes.fromhex("00000000" "020100000000" "0000")


@pytest.mark.parametrize(
    "aflags, extended, write, asynchronous",
    [(0x00, False, False, False), (0x40, True, False, False), (0x01, False, True, False), (0x03, False, True, True), (0x53, True, True, True)],
)
def test_aflags_bits(aflags, extended, write, asynchronous):
    a = Frame.decode(HEADER + bytes([aflags]) + bytes.fromhex("00" "01" "34" "000000000000" "0000")).arg
    assert (a.extended, a.write, a.asynchronous) == (extended, write, asynchronous)


def test_aflag_constants_are_the_spec_bits():
    assert (AFLAG_E, AFLAG_D, AFLAG_A, AFLAG_W) == (0x40, 0x10, 0x02, 0x01)
    assert AFLAGS_MBZ == 0xFF & ~(0x40 | 0x10 | 0x02 | 0x01)


def test_read_reply_data_runs_to_the_end_of_the_frame():
    data = bytes(range(256)) * 4
    raw = REPLY_HEADER + bytes.fromhex("40" "00" "00" "40" "000000000000" "0000") + data
    frame = Frame.decode(raw)
    assert frame.header.response
    assert (frame.arg.cmd_status, frame.arg.sector_count) == (0x40, 0)
    assert frame.arg.data == data and frame.trailing == b""
    assert frame.encode() == raw


def test_padding_of_a_short_reply_stays_in_data():
    # vblade's write reply is 60 bytes; its tail is whatever was in the buffer
    tail = bytes.fromhex("0102030405060708090a0b0c0d0e0f101112131415161718")
    raw = REPLY_HEADER + bytes.fromhex("41" "00" "00" "40" "000000000000" "0000") + tail
    assert len(raw) == 60
    frame = Frame.decode(raw)
    assert frame.arg.data == tail
    assert frame.encode() == raw


def test_mbz_bits_reserved_bytes_and_any_values_are_built_as_given():
    arg = AtaArg(aflags=0xFF, err_feature=0xFF, sector_count=0xFF, cmd_status=0xFF, lba=(1 << 48) - 1, reserved=0xBEEF, data=b"\x00\x01")
    raw = arg.encode()
    assert raw == bytes.fromhex("ff" "ff" "ff" "ff" "ffffffffffff" "beef" "0001")
    assert Frame.decode(HEADER + raw).arg == arg


def test_write_with_wrong_payload_length_is_built_as_given():
    # sector count says 2 sectors (1024 bytes) but only 3 bytes follow
    arg = AtaArg(aflags=AFLAG_E | AFLAG_W, sector_count=2, cmd_status=0x34, data=b"abc")
    raw = HEADER + arg.encode()
    assert raw[24:] == bytes.fromhex("41" "00" "02" "34" "000000000000" "0000" "616263")
    assert Frame.decode(raw).arg.data == b"abc"


@pytest.mark.parametrize(
    "length, field, offset",
    [(24, "aflags", 24), (25, "err_feature", 25), (26, "sector_count", 26), (27, "cmd_status", 27),
     (28, "lba", 28), (33, "lba", 28), (34, "reserved", 34), (35, "reserved", 34)],
)
def test_truncated_argument_names_field_and_offset(length, field, offset):
    raw = (HEADER + IDENTIFY_ARG)[:length]
    with pytest.raises(DecodeError) as info:
        Frame.decode(raw)
    assert (info.value.field, info.value.offset) == (field, offset)
    assert "ATA argument" in str(info.value) and "needs 36" in str(info.value)


def test_header_fields_accept_version_and_flags_the_spec_forbids():
    header = Header.decode(HEADER)
    header.ver, header.flags, header.error = 3, 0x3, 9
    raw = Frame(header, AtaArg(cmd_status=0xEC, sector_count=1)).encode()
    assert raw[14:16] == bytes.fromhex("33" "09")
    assert Frame.decode(raw).header == header
