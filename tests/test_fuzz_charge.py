"""A failure is charged to the rule its failing step checks (notes §10): the
fuzzer's first finding against a quirk names one of the rules the quirk breaks."""

from __future__ import annotations

import pytest

from aoeconform.fuzz.charge import command_rule, field_rule, owed_rule
from aoeconform.fuzz.selftest import fuzz_quirk
from aoeconform.session.facts import TargetFacts
from aoeconform.target.quirks import QUIRKS

#: quirks whose first finding came out under a neighbouring rule, and a few whose never did;
#: each is found within a second or two in memory
FAST = [
    "async-write-applied-late",  # 33, was 22: an A=1 write found over a later write
    "mask-duplicate-entries",    # 48, was 47: the edit's result, not its Dir Count
    "config-ccmd-silent",        # 41, was 13: no reply to CCmd 5-15
    "tag-zero-silent",           # 4, was 13: no reply to tag 0
    "oversize-scnt-accepted",    # 24, was 13: no reply to a sector count over the maximum
    "wildcard-silent",           # 10, was 52: no reply to a wildcard address
    "lengths-from-frame",        # 16, was 49: directives read past Dir Count
    "mbz-crash",                 # 9, was 15: a stop charged to the frame that caused it
    "reserve-rcmd-crash",        # 58, was 15
    "ver-unchecked",
    "config-set-overwrites",
]


@pytest.mark.parametrize("quirk", FAST)
def test_first_finding_names_a_rule_the_quirk_breaks(quirk):
    result = fuzz_quirk(quirk, seconds=30)
    assert result.found, result
    assert result.rule in QUIRKS[quirk].rules, f"{quirk}: {result.kind} charged to rule {result.rule}, the quirk breaks {QUIRKS[quirk].rules}"


INFO = TargetFacts(mac=b"\x02\xaa\xaa\xaa\xaa\x02", host_mac=b"\x02\0\0\0\0\x01", shelf=1, slot=2, capacity=16384, sector_count=2)


def _request(command: int, arg: bytes, *, tag: bytes = b"\0\1\0\1", shelf: int = 1, slot: int = 2, verflags: int = 0x10) -> bytes:
    return INFO.mac + INFO.host_mac + b"\x88\xa2" + bytes([verflags, 0]) + shelf.to_bytes(2, "big") + bytes([slot, command]) + tag + arg


def test_a_silence_is_charged_to_what_the_request_asks():
    read = bytes([0x40, 0, 1, 0x24]) + (100).to_bytes(6, "little") + bytes(2)
    assert owed_rule(_request(0, read), INFO) == 21
    assert owed_rule(_request(0, read, tag=bytes(4)), INFO) == 4
    assert owed_rule(_request(0, read, shelf=0xFFFF), INFO) == 10
    assert owed_rule(_request(0, bytes([0x40, 0, 9, 0x24]) + bytes(8)), INFO) == 24  # over the maximum of 2
    assert owed_rule(_request(0, bytes([0x40, 0, 1, 0xB0]) + bytes(8)), INFO) == 29
    assert owed_rule(_request(1, bytes(5) + bytes([0x17, 0, 0])), INFO) == 41  # CCmd 7 (version nibble 1)
    assert owed_rule(_request(1, bytes(5) + bytes([0x00, 0, 0])), INFO) == 36  # aoetools send nibble 0: ordinary
    assert owed_rule(_request(9, b""), INFO) == 13
    assert owed_rule(_request(3, bytes([7, 0])), INFO) == 58


def test_a_stop_is_charged_to_the_field_that_causes_it():
    truncated_mbz = _request(0, bytes([0x88]), tag=bytes(4), verflags=0)
    assert field_rule("ata", "aflags", truncated_mbz, INFO) == 9
    assert field_rule("any", "ver", truncated_mbz, INFO) == 12
    assert field_rule("undefined", "command", _request(9, b""), INFO) == 13
    assert field_rule("ata", "tag+ata-command", truncated_mbz, INFO) is None
    # no one field: what the request asks for, its zeroed header aside
    edit = _request(2, bytes([0, 1, 0, 2]) + bytes([0, 1]) + INFO.host_mac + bytes([0, 2]) + INFO.host_mac, tag=bytes(4))
    assert command_rule(edit, INFO) == 48
