"""Property tests: the codec round-trips every command, never fails with
anything but DecodeError, and agrees byte for byte with the scapy layers."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aoeconform.wire import (
    AtaArg,
    ConfigArg,
    DecodeError,
    Directive,
    Frame,
    Header,
    MacMaskArg,
    RawArg,
    ReserveArg,
)
from aoeconform.wire.constants import CMD_ATA, CMD_MAC_MASK, CMD_QUERY_CONFIG, CMD_RESERVE_RELEASE, ETH_P_AOE, FIXED_ARG_LEN
from aoeconform.wire.scapy_layer import (
    AoE,
    AoEATA,
    AoEConfig,
    AoEMacMask,
    AoEMaskDirective,
    AoEReserve,
    from_frame,
    to_frame,
    to_scapy,
)
from scapy.layers.l2 import Ether
from scapy.packet import Padding

PROFILE = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
nibble = st.integers(0, 0xF)
macs = st.binary(min_size=6, max_size=6)
blobs = st.binary(max_size=1200)


def headers(command):
    return st.builds(
        Header, dst=macs, src=macs, shelf=u16, slot=u8, command=command, tag=u32, ver=nibble, flags=nibble, error=u8,
    )


ata_args = st.builds(
    AtaArg, aflags=u8, err_feature=u8, sector_count=u8, cmd_status=u8, lba=st.integers(0, (1 << 48) - 1), reserved=u16, data=blobs,
)
config_args = st.builds(
    ConfigArg, bufcnt=u16, firmware=u16, sector_count=u8, ccmd=nibble, version=nibble, config=st.binary(max_size=1100),
)
directives = st.builds(Directive, dcmd=u8, mac=macs, reserved=u8)
mask_args = st.builds(MacMaskArg, mcmd=u8, merror=u8, directives=st.lists(directives, max_size=40), reserved=u8)
reserve_args = st.builds(ReserveArg, rcmd=u8, macs=st.lists(macs, max_size=40))


@st.composite
def frames(draw):
    """Any frame the codec can build: every command, any field values, padding or garbage after."""
    kind = draw(st.sampled_from(["ata", "config", "mask", "reserve", "raw"]))
    if kind == "ata":
        return Frame(draw(headers(st.just(CMD_ATA))), draw(ata_args))
    if kind == "raw":
        return Frame(draw(headers(st.integers(4, 0xFF))), RawArg(draw(blobs)))
    command, arg = {
        "config": (CMD_QUERY_CONFIG, config_args),
        "mask": (CMD_MAC_MASK, mask_args),
        "reserve": (CMD_RESERVE_RELEASE, reserve_args),
    }[kind]
    return Frame(draw(headers(st.just(command))), draw(arg), draw(st.binary(max_size=64)))


# --- codec round trips -----------------------------------------------------------


@PROFILE
@given(frames())
def test_bytes_decode_encode_is_identity(frame):
    raw = frame.encode()
    assert Frame.decode(raw).encode() == raw


@PROFILE
@given(frames())
def test_structure_encode_decode_is_stable(frame):
    once = Frame.decode(frame.encode())
    twice = Frame.decode(once.encode())
    assert twice == once
    assert once.encode() == frame.encode()
    assert once.header == frame.header


@PROFILE
@given(frames())
def test_decoded_fields_equal_built_fields(frame):
    decoded = Frame.decode(frame.encode())
    built, got = frame.arg, decoded.arg
    if isinstance(built, ConfigArg):
        assert (got.bufcnt, got.firmware, got.sector_count, got.ccmd, got.version, got.config) == (
            built.bufcnt, built.firmware, built.sector_count, built.ccmd, built.version, built.config)
        assert got.config_length == len(built.config)
    elif isinstance(built, MacMaskArg):
        assert got.directives == built.directives and got.dir_count == len(built.directives)
        assert (got.mcmd, got.merror, got.reserved) == (built.mcmd, built.merror, built.reserved)
    elif isinstance(built, ReserveArg):
        assert got.macs == built.macs and got.nmacs == len(built.macs) and got.rcmd == built.rcmd
    else:
        assert got == built
    assert decoded.trailing == frame.trailing


@PROFILE
@given(st.binary(min_size=0, max_size=120), st.sampled_from([0, 1, 2, 3, 4, 0xF0]))
def test_arbitrary_bytes_decode_or_raise_decode_error(body, command):
    """Whatever follows the Ethernet header, decode either succeeds and re-encodes
    the same bytes, or raises DecodeError naming a field inside the frame."""
    raw = bytes(12) + ETH_P_AOE.to_bytes(2, "big") + body
    if len(raw) > 19:
        raw = raw[:19] + bytes([command]) + raw[20:]
    try:
        frame = Frame.decode(raw)
    except DecodeError as exc:
        assert exc.field and 0 <= exc.offset <= len(raw)
        assert str(exc).startswith(f"{exc.field} at offset {exc.offset}")
        return
    assert frame.encode() == raw


@PROFILE
@given(frames())
def test_every_prefix_shorter_than_the_fixed_header_is_truncated(frame):
    raw = frame.encode()
    fixed = 24 + FIXED_ARG_LEN.get(frame.header.command, 0)
    for cut in range(fixed):
        with pytest.raises(DecodeError) as info:
            Frame.decode(raw[:cut])
        assert info.value.offset <= cut
        assert "ends inside" in info.value.detail


# --- codec against the scapy layers ------------------------------------------------


@PROFILE
@given(frames())
def test_scapy_builds_codec_frames_byte_for_byte(frame):
    raw = frame.encode()
    assert bytes(from_frame(frame)) == raw
    dissected = to_scapy(raw)
    assert bytes(dissected) == raw
    assert to_frame(dissected) == Frame.decode(raw)


@PROFILE
@given(st.binary(min_size=0, max_size=200), st.sampled_from([0, 1, 2, 3, 9]))
def test_scapy_and_codec_agree_on_arbitrary_bytes(body, command):
    raw = bytes.fromhex("ffffffffffff020000000001") + ETH_P_AOE.to_bytes(2, "big") + body
    if len(raw) > 19:
        raw = raw[:19] + bytes([command]) + raw[20:]
    try:
        frame = Frame.decode(raw)
    except DecodeError:
        return
    pkt = to_scapy(raw)
    assert bytes(pkt) == raw
    assert to_frame(pkt) == frame


def _scapy_mac(raw6: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw6)


@st.composite
def scapy_packets(draw):
    """Packets built with the scapy layers, length fields left for scapy to fill."""
    ether = Ether(dst=_scapy_mac(draw(macs)), src=_scapy_mac(draw(macs)))
    aoe_fields = dict(ver=draw(nibble), flags=draw(nibble), error=draw(u8), shelf=draw(u16), slot=draw(u8), tag=draw(u32))
    kind = draw(st.sampled_from(["ata", "config", "mask", "reserve"]))
    if kind == "ata":
        arg = AoEATA(aflags=draw(u8), err_feature=draw(u8), sector_count=draw(u8), cmd_status=draw(u8),
                     lba=draw(st.integers(0, (1 << 48) - 1)), reserved=draw(u16), data=draw(blobs))
    elif kind == "config":
        arg = AoEConfig(bufcnt=draw(u16), firmware=draw(u16), sector_count=draw(u8), version=draw(nibble),
                        ccmd=draw(nibble), config=draw(st.binary(max_size=1100)))
    elif kind == "mask":
        count = draw(st.integers(0, 30))
        arg = AoEMacMask(reserved=draw(u8), mcmd=draw(u8), merror=draw(u8), directives=[
            AoEMaskDirective(reserved=draw(u8), dcmd=draw(u8), mac=_scapy_mac(draw(macs))) for _ in range(count)])
    else:
        arg = AoEReserve(rcmd=draw(u8), macs=[_scapy_mac(m) for m in draw(st.lists(macs, max_size=30))])
    pkt = ether / AoE(**aoe_fields) / arg
    if kind != "ata":
        tail = draw(st.binary(max_size=40))
        if tail:
            pkt = pkt / Padding(load=tail)
    return pkt


@PROFILE
@given(scapy_packets())
def test_codec_decodes_scapy_built_frames(pkt):
    raw = bytes(pkt)
    frame = Frame.decode(raw)
    assert frame.encode() == raw
    # the codec, fed scapy's field values, writes the same bytes
    assert to_frame(pkt).encode() == raw
    # and reads back the values scapy was given
    aoe = pkt[AoE]
    h = frame.header
    assert (h.ver, h.flags, h.error, h.shelf, h.slot, h.tag) == (aoe.ver, int(aoe.flags), aoe.error, aoe.shelf, aoe.slot, aoe.tag)
    assert h.ethertype == ETH_P_AOE
    arg = frame.arg
    if AoEATA in pkt:
        layer = pkt[AoEATA]
        assert (arg.aflags, arg.err_feature, arg.sector_count, arg.cmd_status, arg.lba, arg.reserved, arg.data) == (
            int(layer.aflags), layer.err_feature, layer.sector_count, layer.cmd_status, layer.lba, layer.reserved, layer.data)
    elif AoEConfig in pkt:
        layer = pkt[AoEConfig]
        assert (arg.bufcnt, arg.firmware, arg.sector_count, arg.version, arg.ccmd, arg.config) == (
            layer.bufcnt, layer.firmware, layer.sector_count, layer.version, layer.ccmd, layer.config)
        assert arg.config_length == len(layer.config)
    elif AoEMacMask in pkt:
        layer = pkt[AoEMacMask]
        assert arg.dir_count == len(layer.directives)
        assert [(d.reserved, d.dcmd, d.mac.hex(":")) for d in arg.directives] == [
            (d.reserved, d.dcmd, d.mac) for d in layer.directives]
    else:
        layer = pkt[AoEReserve]
        assert arg.nmacs == len(layer.macs) and [m.hex(":") for m in arg.macs] == layer.macs
    if Padding in pkt:
        assert frame.trailing == pkt[Padding].load
