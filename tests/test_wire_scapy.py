"""The scapy layers (aoeconform.wire.scapy_layer): spec bit positions, one-byte
counts, each argument encoded once, and independence from scapy.contrib.aoe."""

from __future__ import annotations

import io
import subprocess
import sys

from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

from aoeconform.wire import Frame
from aoeconform.wire.scapy_layer import (
    AoE,
    AoEATA,
    AoEConfig,
    AoEMacMask,
    AoEMaskDirective,
    AoEReserve,
    print_pcap,
    read_pcap,
    summarize,
    to_frame,
    to_scapy,
)

ETH = dict(dst="56:aa:00:00:00:02", src="02:00:00:00:00:01")
ETH_HEX = "56aa00000002" "020000000001" "88a2"


def test_header_flag_bits_are_the_specs():
    assert bytes(Ether(**ETH) / AoE(flags="R", cmd=9))[14] == 0x18
    assert bytes(Ether(**ETH) / AoE(flags="E", cmd=9))[14] == 0x14
    assert bytes(Ether(**ETH) / AoE(flags="R+E", cmd=9))[14] == 0x1C
    assert bytes(Ether(**ETH) / AoE(ver=2, flags=0x3, cmd=9))[14] == 0x23


def test_aflag_bits_are_the_specs():
    for name, bit in (("E", 0x40), ("D", 0x10), ("A", 0x02), ("W", 0x01)):
        assert bytes(AoEATA(aflags=name))[0] == bit


def test_ata_frame_bytes_and_little_endian_lba():
    pkt = Ether(**ETH) / AoE(shelf=1, slot=2, tag=0x10) / AoEATA(aflags="E", sector_count=2, cmd_status=0x24, lba=0x010203040506)
    assert bytes(pkt) == bytes.fromhex(ETH_HEX + "10" "00" "0001" "02" "00" "00000010" "40" "00" "02" "24" "060504030201" "0000")


def test_config_argument_is_encoded_once():
    pkt = Ether(**ETH) / AoE(shelf=0xFFFF, slot=0xFF, tag=1) / AoEConfig(config=b"ab")
    assert bytes(pkt) == bytes.fromhex(ETH_HEX + "10" "00" "ffff" "ff" "01" "00000001" "0000" "0000" "00" "10" "0002" "6162")


def test_length_fields_can_lie():
    assert bytes(AoEConfig(config_length=9, config=b"ab"))[6:] == bytes.fromhex("0009" "6162")
    assert bytes(AoEMacMask(dir_count=7))[3] == 7
    assert bytes(AoEReserve(nmacs=3, macs=["02:00:00:00:00:01"])) == bytes.fromhex("00" "03" "020000000001")


def test_dir_count_and_nmacs_are_one_byte_and_reach_255():
    mask = AoEMacMask(mcmd=1, directives=[AoEMaskDirective(dcmd=1, mac="02:00:00:00:00:01")] * 255)
    raw = bytes(mask)
    assert raw[:4] == bytes.fromhex("00" "01" "00" "ff") and len(raw) == 4 + 8 * 255
    reserve = AoEReserve(rcmd=1, macs=["02:00:00:00:00:01"] * 255)
    raw = bytes(reserve)
    assert raw[:2] == bytes.fromhex("01" "ff") and len(raw) == 2 + 6 * 255
    frame_raw = bytes(Ether(**ETH) / AoE() / reserve)
    assert len(to_scapy(frame_raw)[AoEReserve].macs) == 255


def test_dissection_keeps_padding_apart_from_the_argument():
    raw = bytes.fromhex(ETH_HEX + "18" "00" "0001" "02" "01" "00000001" "0010" "4019" "02" "10" "0000") + bytes(28)
    pkt = to_scapy(raw)
    assert pkt[AoEConfig].bufcnt == 16 and pkt[AoEConfig].firmware == 0x4019 and pkt[AoEConfig].config == b""
    assert bytes(pkt) == raw
    assert to_frame(pkt) == Frame.decode(raw)


def test_failed_mask_edit_reply_reads_like_the_codec():
    raw = bytes.fromhex(ETH_HEX + "18" "00" "0001" "02" "02" "00000001" "00" "01" "03" "02")
    pkt = to_scapy(raw)
    assert pkt[AoEMacMask].dir_count == 2 and pkt[AoEMacMask].directives == []
    assert to_frame(pkt) == Frame.decode(raw)


def test_summarize_is_one_line():
    raw = bytes.fromhex(ETH_HEX + "18" "00" "0001" "02" "00" "00000010" "40" "00" "00" "40" "000000000000" "0000") + bytes(512)
    text = summarize(to_scapy(raw))
    assert "\n" not in text
    assert text.startswith("02:00:00:00:00:01 > 56:aa:00:00:00:02 AoE v1 rsp ATA 1.2 tag 0x00000010")
    assert "data 512" in text


def test_pcap_reading_and_printing(tmp_path):
    frames = [
        bytes.fromhex("ffffffffffff" "020000000001" "88a2" "10" "00" "ffff" "ff" "01" "80000001" "0000" "0000" "00" "10" "0000"),
        bytes.fromhex(ETH_HEX + "18" "00" "0001" "02" "03" "80000002" "00" "01" "020000000001"),
        bytes.fromhex("ffffffffffff" "020000000001" "0800") + bytes(46),
    ]
    path = str(tmp_path / "aoe.pcap")
    wrpcap(path, [Ether(f) for f in frames])
    packets = [pkt for _, pkt in read_pcap(path)]
    assert [bytes(p) for p in packets] == frames
    assert AoEConfig in packets[0] and AoEReserve in packets[1] and AoE not in packets[2]
    out = io.StringIO()
    assert print_pcap(path, out) == 3
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and "Query Config" in lines[0] and "Reserve" in lines[1]


def test_independent_of_scapy_contrib_aoe():
    """Loaded after scapy's own (broken) AoE layer, ours still dissect and build."""
    program = """
import scapy.contrib.aoe
from scapy.layers.l2 import Ether
from aoeconform.wire.scapy_layer import AoE, AoEConfig, to_scapy
raw = bytes.fromhex("ffffffffffff02000000000188a21800ffffff01000000010010401902100003616263")
pkt = to_scapy(raw)
assert type(pkt.payload) is AoE, type(pkt.payload)
assert pkt[AoEConfig].config == b"abc" and pkt[AoE].flags == 0x8
assert bytes(pkt) == raw
built = Ether(dst="ff:ff:ff:ff:ff:ff", src="02:00:00:00:00:01") / AoE(flags="R", shelf=0xFFFF, slot=0xFF, tag=1) / AoEConfig(bufcnt=16, firmware=0x4019, sector_count=2, config=b"abc")
assert bytes(built) == raw, bytes(built).hex()
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
