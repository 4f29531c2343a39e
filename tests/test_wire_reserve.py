"""Reserve/Release argument (§3.4): RCmd, NMacs (1 byte), then NMacs MAC addresses."""

from __future__ import annotations

import pytest

from aoeconform.wire import DecodeError, Frame, Header, ReserveArg

HEADER = bytes.fromhex("56aa00000002" "020000000001" "88a2" "10" "00" "0001" "02" "03" "00000004")
MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("02000000000b")


def test_read_request_is_26_bytes():
    raw = HEADER + bytes.fromhex("00" "00")
    assert len(raw) == 26
    assert Frame.decode(raw).arg == ReserveArg(rcmd=0, macs=[], nmacs=0)
    assert Frame(Header.decode(HEADER), ReserveArg()).encode() == raw


def test_set_two_macs():
    raw = HEADER + bytes.fromhex("01" "02" "020000000001" "02000000000b")
    a = Frame.decode(raw).arg
    assert (a.rcmd, a.nmacs, a.macs) == (1, 2, [MAC_A, MAC_B])
    assert ReserveArg(rcmd=1, macs=[MAC_A, MAC_B]).encode() == raw[24:]


def test_padding_after_the_list_is_trailing():
    # tcpdump calls this invalid; the codec trusts NMacs and keeps the rest
    raw = HEADER + bytes.fromhex("02" "01" "02000000000b") + bytes(28)
    frame = Frame.decode(raw)
    assert frame.arg.macs == [MAC_B] and frame.trailing == bytes(28)
    assert len(frame.encode()) == 60 and frame.encode() == raw


@pytest.mark.parametrize("count, present", [(1, 0), (1, 5), (2, 6), (0xFF, 60)])
def test_nmacs_beyond_the_frame_is_a_decode_error(count, present):
    raw = HEADER + bytes([1, count]) + b"\x02" * present
    with pytest.raises(DecodeError) as info:
        Frame.decode(raw)
    assert (info.value.field, info.value.offset) == ("nmacs", 25)
    assert f"claims {count} MAC addresses" in str(info.value)


def test_building_nmacs_that_lie_and_unknown_rcmd():
    assert ReserveArg(rcmd=0xFE, macs=[MAC_A], nmacs=3).encode() == bytes.fromhex("fe" "03" "020000000001")
    frame = Frame.decode(HEADER + ReserveArg(rcmd=1, macs=[MAC_A, MAC_B], nmacs=0).encode())
    assert frame.arg.macs == [] and frame.trailing == MAC_A + MAC_B


def test_nmacs_is_one_byte():
    raw = ReserveArg(macs=[MAC_A] * 255).encode()
    assert raw[:2] == bytes.fromhex("00" "ff") and len(raw) == 2 + 255 * 6


@pytest.mark.parametrize("length, field, offset", [(24, "rcmd", 24), (25, "nmacs", 25)])
def test_truncated_argument_names_field_and_offset(length, field, offset):
    with pytest.raises(DecodeError) as info:
        Frame.decode((HEADER + bytes(2))[:length])
    assert (info.value.field, info.value.offset) == (field, offset)
    assert "Reserve/Release argument" in str(info.value)
