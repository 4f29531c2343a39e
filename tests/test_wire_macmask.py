"""Mac Mask List argument (§3.3): reserved, MCmd, MError, Dir Count (1 byte), then 8-byte directives."""

from __future__ import annotations

import pytest

from aoeconform.wire import DecodeError, Directive, Frame, Header, MacMaskArg

HEADER = bytes.fromhex("56aa00000002" "020000000001" "88a2" "10" "00" "0001" "02" "02" "00000003")
MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("02000000000b")


def test_read_request():
    raw = HEADER + bytes.fromhex("00" "00" "00" "00")
    frame = Frame.decode(raw)
    assert frame.arg == MacMaskArg(mcmd=0, merror=0, directives=[], dir_count=0, reserved=0)
    assert Frame(Header.decode(HEADER), MacMaskArg()).encode() == raw


def test_edit_with_two_directives():
    raw = HEADER + bytes.fromhex("00" "01" "00" "02" "00" "01" "020000000001" "00" "02" "02000000000b")
    a = Frame.decode(raw).arg
    assert (a.mcmd, a.merror, a.dir_count) == (1, 0, 2)
    assert a.directives == [Directive(dcmd=1, mac=MAC_A), Directive(dcmd=2, mac=MAC_B)]
    assert MacMaskArg(mcmd=1, directives=a.directives).encode() == raw[24:]


def test_dir_count_is_one_byte():
    arg = MacMaskArg(mcmd=0, directives=[Directive(0, MAC_A)] * 255)
    raw = arg.encode()
    assert raw[:4] == bytes.fromhex("00" "00" "00" "ff") and len(raw) == 4 + 255 * 8


def test_failed_edit_reply_shape():
    # MError 3 (list full) at directive 1; E flag is not set for MError
    raw = HEADER[:14] + bytes.fromhex("18" "00") + HEADER[16:] + bytes.fromhex("00" "01" "03" "01")
    frame = Frame.decode(raw)
    assert not frame.header.error_flag
    # Dir Count is the index of the failing directive here, not a count of what follows
    assert (frame.arg.merror, frame.arg.dir_count, frame.arg.directives) == (3, 1, [])
    assert frame.encode() == raw


def test_failed_edit_reply_padded_or_echoing_directives():
    reply = HEADER[:14] + bytes.fromhex("18" "00") + HEADER[16:]
    # ggaoed echoes the request's three directives, Dir Count 2 = the failing one
    echoed = reply + bytes.fromhex("00" "01" "02" "02") + (bytes.fromhex("0001") + MAC_A) * 2 + bytes.fromhex("0009") + MAC_B
    frame = Frame.decode(echoed)
    assert frame.arg.directives == [Directive(1, MAC_A)] * 2 and frame.trailing == bytes.fromhex("0009") + MAC_B
    # a padded vblade reply: Dir Count 5 but only 4 whole "directives" of padding and 4 odd bytes
    padded = reply + bytes.fromhex("00" "01" "03" "05") + bytes(36)
    frame = Frame.decode(padded)
    assert len(frame.arg.directives) == 4 and frame.trailing == bytes(4)
    assert frame.encode() == padded


def test_merror_in_a_request_does_not_excuse_a_lying_dir_count():
    with pytest.raises(DecodeError) as info:
        Frame.decode(HEADER + bytes.fromhex("00" "01" "03" "01"))
    assert (info.value.field, info.value.offset) == ("dir_count", 27)


@pytest.mark.parametrize("count, present", [(1, 0), (1, 7), (2, 8), (0xFF, 32)])
def test_dir_count_beyond_the_frame_is_a_decode_error(count, present):
    raw = HEADER + bytes([0, 0, 0, count]) + b"\x01" * present
    with pytest.raises(DecodeError) as info:
        Frame.decode(raw)
    assert (info.value.field, info.value.offset) == ("dir_count", 27)
    assert f"claims {count} directives" in str(info.value)


def test_bytes_after_the_directives_are_trailing():
    raw = HEADER + bytes.fromhex("00" "00" "00" "01" "00" "00" "020000000001" "aaaa")
    frame = Frame.decode(raw)
    assert frame.arg.directives == [Directive(0, MAC_A)] and frame.trailing == bytes.fromhex("aaaa")
    assert frame.encode() == raw


def test_building_a_dir_count_that_lies_and_nonzero_reserved_bytes():
    arg = MacMaskArg(mcmd=9, merror=7, directives=[Directive(dcmd=5, mac=MAC_B, reserved=0xEE)], dir_count=4, reserved=0xDD)
    assert arg.encode() == bytes.fromhex("dd" "09" "07" "04" "ee" "05" "02000000000b")
    fewer = MacMaskArg(directives=[Directive(1, MAC_A), Directive(1, MAC_B)], dir_count=1)
    frame = Frame.decode(HEADER + fewer.encode())
    assert frame.arg.directives == [Directive(1, MAC_A)]
    assert frame.trailing == bytes.fromhex("0001") + MAC_B


@pytest.mark.parametrize("length, field, offset", [(24, "reserved", 24), (25, "mcmd", 25), (26, "merror", 26), (27, "dir_count", 27)])
def test_truncated_argument_names_field_and_offset(length, field, offset):
    with pytest.raises(DecodeError) as info:
        Frame.decode((HEADER + bytes(4))[:length])
    assert (info.value.field, info.value.offset) == (field, offset)
    assert "Mac Mask argument" in str(info.value)
