"""Which rule a silence or a stop is charged to.

A failure is charged to the rule its failing step checks (notes §10). For
most anomalies the kind says which (a wrong Ver in a reply is rule 7). Two
kinds do not: no reply to a request that must be answered (``no-reply``)
and no answer to anything any more (``unresponsive``). There the failing
step is the request itself, and the rule at stake is the one that demands
an answer to it or that it be survived: the rule of what the request does
(a READ: 21, CCmd 5-15: 41, an unknown command: 13), or of the field that
makes it unusual (a wildcard address: 10, must-be-zero bits: 9).

From the wire alone a silence cannot say which of a request's features the
target choked on: ``owed_rule`` reads the request's features in the order
a target meets them (header, then argument) and names the first unusual
one. Once the shrinker has found the one field that makes the difference
(``signature.classify``), ``field_rule`` names that field's rule instead.
"""

from __future__ import annotations

from typing import Optional

from aoeconform.session.facts import TargetFacts
from aoeconform.wire.constants import (
    AFLAG_A,
    AFLAGS_MBZ,
    AOE_HEADER_LEN,
    AOE_VERSION,
    ATA_CHECK_POWER_MODE,
    ATA_FLUSH_CACHE,
    ATA_FLUSH_CACHE_EXT,
    ATA_IDENTIFY_DEVICE,
    ATA_READ_SECTORS,
    ATA_READ_SECTORS_EXT,
    ATA_WRITE_SECTORS,
    ATA_WRITE_SECTORS_EXT,
    CCMD_FORCE_SET,
    CCMD_READ,
    CCMD_SET,
    CCMD_TEST,
    CCMD_TEST_PREFIX,
    CMD_ATA,
    CMD_MAC_MASK,
    CMD_QUERY_CONFIG,
    CMD_RESERVE_RELEASE,
    CMD_VENDOR_MIN,
    CONFIG_STRING_MAX,
    FIXED_ARG_LEN,
    FLAG_RESPONSE,
    FLAGS_MBZ,
    MCMD_EDIT,
    MCMD_READ,
    RCMD_FORCE_SET,
    RCMD_READ,
    RCMD_SET,
    SECTOR_SIZE,
    SHELF_BROADCAST,
    SLOT_BROADCAST,
)

#: the rule of each ATA opcode's reply (21 READ, 22 WRITE, 28 IDENTIFY, 30 CHECK POWER, 31 FLUSH)
_OPCODE_RULES = {ATA_READ_SECTORS: 21, ATA_READ_SECTORS_EXT: 21, ATA_WRITE_SECTORS: 22, ATA_WRITE_SECTORS_EXT: 22,
                 ATA_IDENTIFY_DEVICE: 28, ATA_CHECK_POWER_MODE: 30, ATA_FLUSH_CACHE: 31, ATA_FLUSH_CACHE_EXT: 31}
#: CCmd 0-4: 36 read, 37 test, 38 prefix, 39 set, 40 force set; 5-15: 41
_CCMD_RULES = {CCMD_READ: 36, CCMD_TEST: 37, CCMD_TEST_PREFIX: 38, CCMD_SET: 39, CCMD_FORCE_SET: 40}
_RCMD_RULES = {RCMD_READ: 54, RCMD_SET: 55, RCMD_FORCE_SET: 56}
#: argument fields whose value alone names a rule (fields a target must ignore: 9)
_FIELD_RULES = {"ata-reserved": 34, "feature": 9, "buffer-count": 9, "firmware": 9, "max-sectors": 9,
                "config-length": 42, "config-string": 43, "mask-reserved": 9, "merror": 9, "mcmd": 50,
                "dir-count": 53, "directives": 48, "rcmd": 58, "nmacs": 58, "macs": 56}


def _ata_rule(frame: bytes, info: TargetFacts) -> int:
    if len(frame) < AOE_HEADER_LEN + FIXED_ARG_LEN[CMD_ATA]:
        return 15
    aflags, scnt, opcode = frame[24], frame[26], frame[27]
    if aflags & AFLAGS_MBZ:
        return 9
    rule = _OPCODE_RULES.get(opcode)
    if rule is None:
        return 29  # an opcode the target does not implement is owed ABRT
    if rule in (21, 22):
        if scnt == 0 or scnt > info.max_sectors:
            return 24
        if rule == 22 and len(frame) - AOE_HEADER_LEN - FIXED_ARG_LEN[CMD_ATA] < scnt * SECTOR_SIZE:
            return 23
        if int.from_bytes(frame[34:36], "big"):
            return 34
        lba = int.from_bytes(frame[28:34], "little")
        if info.capacity is not None and lba + scnt > info.capacity:
            return 25
        if rule == 22 and aflags & AFLAG_A:
            return 33
    return rule


def _ata_field_rule(field: str, trigger: bytes, info: TargetFacts) -> Optional[int]:
    """The rule of one ATA field's value in ``trigger`` (the rest of it may be cut short)."""
    aflags = trigger[24]
    scnt, opcode = (trigger[26], trigger[27]) if len(trigger) > 27 else (0, None)
    if field == "aflags":
        return 9 if aflags & AFLAGS_MBZ else 33 if aflags & AFLAG_A else None
    if field == "sector-count":
        return 24
    if field == "ata-command":
        return None if opcode is None else _OPCODE_RULES.get(opcode, 29)
    if field == "data":
        return 23 if len(trigger) - AOE_HEADER_LEN - FIXED_ARG_LEN[CMD_ATA] < scnt * SECTOR_SIZE else 16
    # the LBA: past the end, else its arithmetic (28-bit or 48-bit)
    lba = int.from_bytes(trigger[28:34], "little") if len(trigger) >= 34 else 0
    if info.capacity is not None and lba + max(scnt, 1) > info.capacity:
        return 25
    return 27 if opcode in (ATA_READ_SECTORS_EXT, ATA_WRITE_SECTORS_EXT) else 26


def _config_rule(frame: bytes) -> int:
    if len(frame) < AOE_HEADER_LEN + FIXED_ARG_LEN[CMD_QUERY_CONFIG]:
        return 15
    ccmd = frame[29] & 0xF
    if ccmd in _CCMD_RULES and int.from_bytes(frame[30:32], "big") > CONFIG_STRING_MAX:
        return 42
    return _CCMD_RULES.get(ccmd, 41)


def _mask_rule(frame: bytes) -> int:
    if len(frame) < AOE_HEADER_LEN + FIXED_ARG_LEN[CMD_MAC_MASK]:
        return 15
    if frame[24]:
        return 9  # the reserved byte
    mcmd = frame[25]
    if mcmd == MCMD_READ:
        return 47
    if mcmd == MCMD_EDIT:
        return 53 if AOE_HEADER_LEN + 4 + 8 * frame[27] > len(frame) else 48
    return 50


def _reserve_rule(frame: bytes) -> int:
    if len(frame) < AOE_HEADER_LEN + FIXED_ARG_LEN[CMD_RESERVE_RELEASE]:
        return 15
    rule = _RCMD_RULES.get(frame[24])
    if rule is None or AOE_HEADER_LEN + 2 + 6 * frame[25] > len(frame):
        return 58
    return rule


def owed_rule(frame: bytes, info: TargetFacts) -> int:
    """The rule whose step demands an answer to ``frame``: its first unusual
    feature in the order a target reads them, else the rule of its command."""
    if len(frame) < AOE_HEADER_LEN:
        return 15
    if frame[14] & FLAG_RESPONSE:
        return 2
    if frame[14] >> 4 != AOE_VERSION:
        return 12
    if frame[14] & FLAGS_MBZ:
        return 9
    shelf, slot = int.from_bytes(frame[16:18], "big"), frame[18]
    if (shelf, slot) != (info.shelf, info.slot) and shelf in (info.shelf, SHELF_BROADCAST) and slot in (info.slot, SLOT_BROADCAST):
        return 10  # a wildcard address the target must answer
    if frame[20:24] == b"\0\0\0\0":
        return 4  # a tag of 0 is a tag like any other, returned bit-exactly
    return command_rule(frame, info)


def command_rule(frame: bytes, info: TargetFacts) -> int:
    """The rule of what ``frame``'s command and argument ask for, its header aside."""
    if len(frame) < AOE_HEADER_LEN:
        return 15
    command = frame[19]
    if command >= CMD_VENDOR_MIN:
        return 14
    if command == CMD_ATA:
        return _ata_rule(frame, info)
    if command == CMD_QUERY_CONFIG:
        return _config_rule(frame)
    if command == CMD_MAC_MASK:
        return _mask_rule(frame)
    if command == CMD_RESERVE_RELEASE:
        return _reserve_rule(frame)
    return 13


def field_rule(command: str, field: str, trigger: bytes, info: TargetFacts) -> Optional[int]:
    """The rule of the field a shrunk trigger was classified by (``signature.classify``);
    None when the field does not single one out ("none", several fields)."""
    if field == "command":
        return 14 if command == "vendor" else 13
    if field == "length":
        if command == "any" or command not in ("ata", "config", "mask", "reserve"):
            return 15 if len(trigger) < AOE_HEADER_LEN + 2 else None
        fixed = FIXED_ARG_LEN.get(trigger[19]) if len(trigger) >= 20 else None
        return 15 if fixed is not None and len(trigger) < AOE_HEADER_LEN + fixed else 16
    header = {"ver": 12, "error": 8, "address": 10, "tag": 4}
    if field in header:
        return header[field]
    if field == "flags":
        return 2 if len(trigger) > 14 and trigger[14] & FLAG_RESPONSE else 9
    if command == "ata" and len(trigger) > 24 and field in ("aflags", "sector-count", "ata-command", "lba", "data"):
        return _ata_field_rule(field, trigger, info)
    if field == "ccmd":
        if len(trigger) > 29 and trigger[29] & 0xF in _CCMD_RULES and trigger[29] >> 4 != AOE_VERSION:
            return 35  # the version nibble shares the byte (aoetools send 0)
        return _config_rule(trigger)
    return _FIELD_RULES.get(field)
