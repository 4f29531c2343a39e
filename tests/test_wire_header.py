"""Common AoE header (§2): frame bytes 0-23, written out byte by byte."""

from __future__ import annotations

import pytest

from aoeconform.wire import DecodeError, Frame, Header, RawArg, mac_from_str, mac_to_str

# dst ff.., src 02:00:00:00:00:01, type 88a2, ver 1 flags 0, error 0,
# shelf 0xffff, slot 0xff, command 1, tag 0x80000001
BROADCAST_QUERY_HEADER = bytes.fromhex(
    "ffffffffffff" "020000000001" "88a2" "10" "00" "ffff" "ff" "01" "80000001"
)


def test_decode_names_every_field():
    h = Header.decode(BROADCAST_QUERY_HEADER)
    assert h.dst == bytes.fromhex("ffffffffffff")
    assert h.src == bytes.fromhex("020000000001")
    assert h.ethertype == 0x88A2
    assert (h.ver, h.flags, h.error) == (1, 0, 0)
    assert (h.shelf, h.slot, h.command, h.tag) == (0xFFFF, 0xFF, 1, 0x80000001)
    assert not h.response and not h.error_flag and h.mbz == 0


def test_encode_is_the_written_bytes():
    h = Header(dst=b"\xff" * 6, src=bytes.fromhex("020000000001"), shelf=0xFFFF, slot=0xFF, command=1, tag=0x80000001)
    assert h.encode() == BROADCAST_QUERY_HEADER


def test_shelf_is_big_endian():
    raw = bytes.fromhex("ffffffffffff" "020000000001" "88a2" "10" "00" "0102" "03" "00" "0a0b0c0d")
    h = Header.decode(raw)
    assert (h.shelf, h.slot, h.tag) == (0x0102, 3, 0x0A0B0C0D)


@pytest.mark.parametrize(
    "byte14, ver, response, error_flag, mbz",
    [
        (0x10, 1, False, False, 0),
        (0x18, 1, True, False, 0),  # R = 0x08
        (0x1C, 1, True, True, 0),  # R and E = 0x04
        (0x14, 1, False, True, 0),
        (0x13, 1, False, False, 3),  # both MBZ bits
        (0x08, 0, True, False, 0),  # vblade's start-up advertisement has Ver 0
        (0x28, 2, True, False, 0),
        (0xFF, 15, True, True, 3),
    ],
)
def test_ver_and_flags_nibbles(byte14, ver, response, error_flag, mbz):
    raw = bytes.fromhex("ffffffffffff" "020000000001" "88a2") + bytes([byte14]) + bytes.fromhex("06" "0001" "02" "00" "00000000")
    h = Header.decode(raw)
    assert (h.ver, h.response, h.error_flag, h.mbz) == (ver, response, error_flag, mbz)
    assert h.error == 6
    assert h.encode() == raw


def test_build_any_value_including_forbidden_ones():
    h = Header(dst=bytes(6), src=bytes(6), ver=0xF, flags=0xF, error=0xFF, shelf=0xFFFF, slot=0xFF, command=0xFF, tag=0xFFFFFFFF, ethertype=0x0800)
    assert h.encode() == bytes.fromhex("000000000000" "000000000000" "0800" "ff" "ff" "ffff" "ff" "ff" "ffffffff")


@pytest.mark.parametrize(
    "length, field, offset",
    [
        (0, "dst", 0),
        (5, "dst", 0),
        (6, "src", 6),
        (11, "src", 6),
        (12, "ethertype", 12),
        (13, "ethertype", 12),
        (14, "ver_flags", 14),
        (15, "error", 15),
        (16, "shelf", 16),
        (17, "shelf", 16),
        (18, "slot", 18),
        (19, "command", 19),
        (20, "tag", 20),
        (23, "tag", 20),
    ],
)
def test_truncated_header_names_field_and_offset(length, field, offset):
    with pytest.raises(DecodeError) as info:
        Header.decode(BROADCAST_QUERY_HEADER[:length])
    assert (info.value.field, info.value.offset) == (field, offset)
    assert str(info.value).startswith(f"{field} at offset {offset}: frame of {length} bytes")


def test_other_ethertype_is_refused_by_frame_decode():
    raw = bytes.fromhex("ffffffffffff" "020000000001" "0800" "10" "00" "0001" "02" "01" "00000000" "0000000000000000")
    with pytest.raises(DecodeError) as info:
        Frame.decode(raw)
    assert (info.value.field, info.value.offset) == ("ethertype", 12)
    assert "0x0800" in str(info.value)


@pytest.mark.parametrize("command", [4, 0x42, 0xEF, 0xF0, 0xFF])
def test_unknown_and_vendor_commands_keep_their_argument_as_bytes(command):
    raw = bytes.fromhex("ffffffffffff" "020000000001" "88a2" "10" "00" "0001" "02") + bytes([command]) + bytes.fromhex("00000007" "deadbeef")
    frame = Frame.decode(raw)
    assert frame.arg == RawArg(bytes.fromhex("deadbeef"))
    assert frame.trailing == b""
    assert frame.encode() == raw


def test_header_only_frame_of_unknown_command_decodes():
    raw = bytes.fromhex("ffffffffffff" "020000000001" "88a2" "10" "00" "0001" "02" "09" "00000007")
    assert Frame.decode(raw).arg == RawArg(b"")


def test_encode_pads_to_60_bytes_only_when_asked():
    frame = Frame(Header(src=bytes.fromhex("020000000001"), command=9, tag=7), RawArg(b"\x01\x02"))
    raw = frame.encode()
    assert raw == bytes.fromhex("ffffffffffff" "020000000001" "88a2" "10" "00" "0000" "00" "09" "00000007" "0102")
    padded = frame.encode(pad=True)
    assert len(padded) == 60 and padded == raw + bytes(60 - 26)


def test_describe_is_one_line():
    text = Frame.decode(BROADCAST_QUERY_HEADER + bytes(8)).describe()
    assert "\n" not in text
    assert "02:00:00:00:00:01 > ff:ff:ff:ff:ff:ff" in text and "Query Config" in text and "65535.255" in text


def test_mac_text_conversions():
    assert mac_from_str("02:00:00:00:00:0a") == bytes.fromhex("02000000000a")
    assert mac_from_str("02-00-00-00-00-0A") == bytes.fromhex("02000000000a")
    assert mac_from_str("2:0:0:0:0:a") == bytes.fromhex("02000000000a")
    assert mac_to_str(bytes.fromhex("02000000000a")) == "02:00:00:00:00:0a"


@pytest.mark.parametrize("text", ["", "02:00:00:00:00", "02:00:00:00:00:00:00", "02:00:00:00:00:zz", "02:00:00:00:00:100",
                                  "0x2:0:0:0:0:1", "+2:0:0:0:0:1", "1_0:0:0:0:0:1", " 2:0:0:0:0:1", "02::00:00:00:00"])
def test_bad_mac_text_is_refused(text):
    with pytest.raises(ValueError, match="not a MAC address"):
        mac_from_str(text)
