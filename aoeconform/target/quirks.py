"""Named defects the reference target can be told to have (docs/quirks.md).

Each quirk breaks exactly one requirement of the protocol notes (§10), the
way real targets do, so that every conformance case can be shown to catch
the bug it is written for. The logic reads the set once, at construction,
and turns it into plain attributes and handler choices, so a clean target
pays nothing for the quirks it does not have.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from aoeconform.errors import UsageError


@dataclass(frozen=True)
class Quirk:
    name: str
    rules: tuple[int, ...]
    description: str


QUIRKS: dict[str, Quirk] = {
    q.name: q
    for q in [
        Quirk("ver-unchecked", (7, 12), "serves requests whose Ver is not 1, replying with the request's Ver (vblade)"),
        Quirk("error-byte-echo", (8, 9), "echoes the request's Error byte and MBZ flag bits in replies with E=0 (vblade)"),
        Quirk("unpadded", (16,), "sends replies shorter than 60 bytes as they are (vblade on veth)"),
        Quirk("flush-status-zero", (31,), "answers FLUSH CACHE and FLUSH CACHE EXT with status 0x00, DRDY clear (vblade)"),
        Quirk("wildcard-reply-address", (11,), "replies with the wildcard shelf/slot the request used instead of its own"),
        Quirk("answers-responses", (2,), "answers frames that have R set"),
        Quirk("wrong-shelf", (10,), "answers frames addressed to another shelf (the slot is still checked)"),
        Quirk("wildcard-silent", (10,), "does not answer requests addressed to shelf 0xFFFF or slot 0xFF (Linux discovers targets that way)"),
        Quirk("wrong-reply-dst", (3,), "sends replies to the broadcast address instead of the requester"),
        Quirk("tag-bit31-cleared", (4,), "clears bit 31 of the tag in replies"),
        Quirk("unknown-command-silent", (13,), "sends nothing for unknown command codes (4-0xEF and vendor codes)"),
        Quirk("off-by-one-end", (25,), "accepts an I/O that runs one sector past the end (reads zeros, drops the write)"),
        Quirk("lba48-truncated", (27,), "truncates 48-bit LBAs to their low 32 bits"),
        Quirk("lba28-device-bits", (26,), "uses the high nibble of lba3 as address bits for 28-bit commands"),
        Quirk("tag-reply-cache", (18,), "caches replies by tag alone: a new request that reuses a tag gets the old reply"),
        Quirk("stale-read-buffer", (21,), "in multi-sector reads, sectors after the first are not read: they hold whatever the reply buffer held before"),
        Quirk("async-write-lost", (33,), "acknowledges writes with the A flag and never applies them"),
        Quirk("config-test-mismatch", (37,), "answers a CCmd 1 (test) whose string does not match"),
        Quirk("config-prefix-mismatch", (38,), "answers a CCmd 2 (prefix) whose string is not a prefix"),
        Quirk("config-set-overwrites", (39,), "CCmd 3 (set) replaces a different existing string instead of Error 4"),
        Quirk("config-stale-bytes", (42,), "accepts a Config String Length beyond the bytes present (up to 1024), storing stale bytes from its buffer (vblade)"),
        Quirk("config-nul-truncate", (43,), "stores the config string only up to its first NUL"),
        Quirk("mask-not-enforced", (51,), "answers frames from MACs that are not on a non-empty mask list"),
        Quirk("mask-wrong-index", (49,), "reports the failing directive's index off by one (index + 1)"),
        Quirk("reserve-not-enforced", (57,), "serves reads and writes from MACs outside a reservation"),
        Quirk("reserve-set-steals", (55,), "lets RCmd 1 (set) take a reservation held by another MAC"),
        Quirk("crash-on-truncated", (15,), "stops answering anything after a frame with a truncated argument"),
        Quirk("bufcnt-overstated", (19,), "advertises a Buffer Count it cannot queue: requests beyond half of it in one back-to-back burst are dropped"),
        Quirk("short-write-partial", (23,), "writes what a short write payload holds instead of rejecting it, whatever the sector count"),
        Quirk("oversize-scnt-accepted", (24,), "serves sector counts above the advertised maximum, in frames beyond the MTU"),
        Quirk("identify-capacity-mismatch", (28,), "IDENTIFY reports one sector more than can be read"),
        Quirk("identify-lba28-words-zero", (28,), "IDENTIFY leaves words 60-61 (the 28-bit capacity) zero on a 48-bit device"),
        Quirk("identify-lba48-bit-missing", (28,), "IDENTIFY fills words 100-103 but clears the 48-bit feature bit in words 83 and 86"),
        Quirk("unsupported-opcode-success", (29,), "answers unknown ATA opcodes with status 0x40"),
        Quirk("check-power-wrong", (30,), "answers CHECK POWER MODE with sector count 0"),
        Quirk("readonly-writes", (32,), "writes to a read-only export"),
        Quirk("no-advertisement", (46,), "sends no unsolicited config reply at start-up"),
        Quirk("any-ethertype", (1,), "acts on frames of any EtherType that look like AoE"),
        Quirk("command-not-echoed", (5,), "sends Reserve/Release replies with command code 2 (Mac Mask)"),
        Quirk("error-flag-echo", (6,), "echoes the request's E flag in successful replies (vblade)"),
        Quirk("wrong-slot", (10,), "answers frames addressed to another slot (the shelf is still checked)"),
        Quirk("reply-shelf-little-endian", (11,), "puts its shelf number into replies little-endian"),
        Quirk("tag-zero-silent", (4,), "sends nothing for requests with tag 0 (takes 0 for 'no tag')"),
        Quirk("unknown-command-crash", (13,), "stops answering after a command code 4-0xEF, whatever the frame's Ver"),
        Quirk("vendor-crash", (14,), "stops answering after a vendor command (0xF0-0xFF)"),
        Quirk("crash-on-runt", (15,), "stops answering after an AoE frame too short for the AoE header"),
        Quirk("mbz-crash", (9,), "stops answering after a request with a must-be-zero bit set (header flags, AFlags, Mac Mask reserved byte)"),
        Quirk("lengths-from-frame", (16,), "takes payload lengths from the frame size, not the length fields: config string (padding NULs stripped), directives, MACs, write data"),
        Quirk("trailing-bytes-rejected", (16,), "answers Error 2 to ATA reads and config queries that carry bytes beyond their payload in frames over 60 bytes"),
        Quirk("max-sectors-overstated", (17,), "advertises and serves one sector more per frame than the MTU holds"),
        Quirk("duplicate-request-dropped", (18,), "silently drops a request identical, tag aside, to one of the last four from the same MAC in the same back-to-back burst (takes it for a retransmission)"),
        Quirk("overflow-crash", (19,), "stops answering when more than Buffer Count requests arrive back to back (queue overrun)"),
        Quirk("torn-overlapping-writes", (20,), "writes of several sectors arriving back to back land in two halves per sector, the later halves in reverse order"),
        Quirk("read-status-drq", (21,), "answers successful reads with DRQ set (status 0x48)"),
        Quirk("write-ignored", (22,), "acknowledges synchronous writes and never applies them"),
        Quirk("scnt-zero-crash", (24,), "stops answering after a READ or WRITE with sector count 0 (takes it for 65536 and overruns)"),
        Quirk("lba48-limited-to-28-bits", (27,), "refuses 48-bit LBAs at or above 2^28 with IDNF"),
        Quirk("identify-scnt-zero-empty", (28,), "answers IDENTIFY with sector count 0 by a success without data"),
        Quirk("identify-device-bits-rejected", (28,), "answers IDENTIFY with ABRT unless the LBA/device bytes are 0 (Linux sends lba3 0xA0)"),
        Quirk("unsupported-opcode-crash", (29,), "stops answering after an ATA opcode it does not support"),
        Quirk("async-write-applied-late", (33,), "applies an acknowledged A=1 write only after the next request, over whatever that request wrote"),
        Quirk("ata-reserved-as-lba", (34,), "reads the ATA LBA as 64 bits, taking the two reserved bytes as its top"),
        Quirk("config-version-nibble-required", (35,), "answers Error 2 to config queries whose version nibble is not 1 (aoetools send 0)"),
        Quirk("config-read-echoes-request", (36,), "CCmd 0 (read) replies with the request's string instead of the current one"),
        Quirk("config-force-as-set", (40,), "treats CCmd 4 (force set) like CCmd 3: Error 4 when a different string is set"),
        Quirk("config-ccmd-unchecked", (41,), "answers CCmd 5-15 like CCmd 0 (read) instead of Error 2"),
        Quirk("config-ccmd-silent", (41,), "sends nothing for CCmd 5-15 (a SHOULD-level deviation: nothing changes)"),
        Quirk("config-oversize-overflow", (42,), "a Config String Length over 1024 overruns its buffer: it stops answering"),
        Quirk("config-text-only", (43,), "stores the config string as ASCII text: bytes 0x80-0xFF become '?'"),
        Quirk("config-prefix-empty-silent", (38,), "does not answer a CCmd 2 (prefix) with an empty string"),
        Quirk("config-torn-set", (44,), "config sets arriving back to back are not atomic: the later one is checked against the string before the burst and its bytes land over the earlier string, which keeps its length"),
        Quirk("mask-dircount-overstated", (47,), "Mac Mask replies give a Dir Count one more than the entries listed"),
        Quirk("mask-duplicate-entries", (48,), "a DCmd 1 (add) of a listed MAC lists it again"),
        Quirk("mask-delete-crash", (48,), "stops answering when a DCmd 2 (delete) removes a listed MAC (vblade 25 aborts with a buffer overflow)"),
        Quirk("mask-mcmd-unchecked", (50,), "answers unknown MCmd values like MCmd 0 (read) instead of Error 2"),
        Quirk("mask-dircount-unchecked", (53,), "reads directives past the end of the frame (zeros) when Dir Count says so (vblade)"),
        Quirk("reserve-nmacs-overstated", (54,), "Reserve/Release replies give an NMacs one more than the MACs listed"),
        Quirk("reserve-set-refuses-holder", (55,), "RCmd 1 (set) while reserved fails with Error 6 even for a listed requester"),
        Quirk("reserve-force-refused", (56,), "treats RCmd 2 (force set) like RCmd 1: Error 6 for an unlisted requester"),
        Quirk("reserve-release-ignored", (56,), "NMacs 0 does not release: the reservation stays"),
        Quirk("reserve-locks-out-holder", (57,), "while reserved, refuses reads and writes from every MAC with Error 6, the holder's included"),
        Quirk("reserve-silent-to-others", (57,), "while reserved, sends nothing back to ATA commands from unlisted MACs"),
        Quirk("reserve-rcmd-crash", (58,), "stops answering after an unknown RCmd (indexes its handler table with it)"),
        Quirk("reserve-nmacs-unchecked", (58,), "reads MACs past the end of the frame (zeros) when NMacs says so"),
        # defects a single request cannot show: they need a sequence (the stateful fuzzer's kind)
        Quirk("reserve-forgotten-on-config-set", (54, 57), "a config set (CCmd 3 or 4) clears the reservation: unlisted MACs are served again"),
        Quirk("write-applied-after-read", (22,), "holds an acknowledged synchronous write back until the next read of its sector, which returns the old data"),
    ]
}


#: Conforming alternatives: where a rule of the notes (§10) accepts several
#: behaviours, the reference target does one of them by default and can be told
#: to do another. Unlike quirks these break nothing: every shipped case must
#: pass against each of them (tests/test_readings.py), which is how the suites
#: are kept from being stricter than their rules.
READINGS: dict[str, Quirk] = {
    r.name: r
    for r in [
        Quirk("ver-other-served-readonly", (12,), "serves read-only requests (IDENTIFY, READ, CHECK POWER, config/mask/reserve reads) whose Ver is not 1 as Ver 1 requests; refuses the rest with Error 5"),
        Quirk("truncated-silent", (15,), "sends nothing for a frame too short for its command's argument (vblade), instead of Error 2"),
        Quirk("truncated-error-1", (15,), "answers a frame too short for its command's argument with Error 1 instead of Error 2"),
        Quirk("bufcnt-exact", (19,), "drops requests beyond Buffer Count in one back-to-back burst, as rule 19 allows"),
        Quirk("short-write-abrt", (23,), "answers a write whose payload is short with ATA ABRT instead of Error 2"),
        Quirk("oversize-scnt-abrt", (24,), "answers a sector count above the maximum with ATA ABRT instead of Error 2"),
        Quirk("check-power-unsupported", (30,), "answers CHECK POWER MODE with ABRT: the command is optional"),
        Quirk("flush-unsupported", (31,), "answers FLUSH CACHE and FLUSH CACHE EXT with ABRT, as a target without a cache may"),
        Quirk("async-write-no-reply", (33,), "sends nothing for writes with the A flag, and applies them"),
        Quirk("ata-reserved-error-2", (34,), "answers READ and WRITE with non-zero ATA reserved bytes with Error 2 (mdlayher/aoe)"),
        Quirk("config-set-equal-error", (39,), "CCmd 3 with the string already set fails with Error 4, the literal reading; the string is unchanged"),
        Quirk("config-ccmd-error-1", (41,), "answers CCmd 5-15 with Error 1 instead of Error 2"),
        Quirk("config-oversize-silent", (42,), "sends nothing for a Config String Length over 1024 or beyond the frame, instead of Error 2"),
        Quirk("identify-reserved-refused", (57,), "while reserved, refuses IDENTIFY from unlisted MACs with Error 6 too"),
    ]
}


def check_quirks(names: Iterable[str]) -> frozenset[str]:
    """The names (quirks or readings) as a frozenset; UsageError naming the first unknown one."""
    chosen = frozenset(names)
    unknown = sorted(chosen - QUIRKS.keys() - READINGS.keys())
    if unknown:
        raise UsageError(f"unknown quirk {unknown[0]!r}; `aoeconform target --list-quirks` lists them")
    return chosen


def quirk_lines(table: dict[str, Quirk] = QUIRKS) -> list[str]:
    width = max(len(name) for name in table)
    return [f"{q.name:<{width}}  {q.description}" for q in table.values()]
