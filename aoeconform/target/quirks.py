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
        Quirk("config-set-equal-error", (18, 39), "CCmd 3 with the string already set fails with Error 4 (not idempotent)"),
        Quirk("config-stale-bytes", (42,), "accepts a Config String Length beyond the bytes present (up to 1024), storing stale bytes from its buffer (vblade)"),
        Quirk("config-nul-truncate", (43,), "stores the config string only up to its first NUL"),
        Quirk("mask-not-enforced", (51,), "answers frames from MACs that are not on a non-empty mask list"),
        Quirk("mask-wrong-index", (49,), "reports the failing directive's index off by one (index + 1)"),
        Quirk("reserve-not-enforced", (57,), "serves reads and writes from MACs outside a reservation"),
        Quirk("reserve-set-steals", (55,), "lets RCmd 1 (set) take a reservation held by another MAC"),
        Quirk("crash-on-truncated", (15,), "stops answering anything after a frame with a truncated argument"),
        Quirk("bufcnt-overstated", (19,), "advertises a Buffer Count it cannot queue: requests beyond half of it in one back-to-back burst are dropped"),
        Quirk("short-write-partial", (23,), "writes what a short write payload holds instead of rejecting it"),
        Quirk("oversize-scnt-accepted", (24,), "serves sector counts above the advertised maximum, in frames beyond the MTU"),
        Quirk("identify-capacity-mismatch", (28,), "IDENTIFY reports one sector more than can be read"),
        Quirk("unsupported-opcode-success", (29,), "answers unknown ATA opcodes with status 0x40"),
        Quirk("check-power-wrong", (30,), "answers CHECK POWER MODE with sector count 0"),
        Quirk("readonly-writes", (32,), "writes to a read-only export"),
        Quirk("no-advertisement", (46,), "sends no unsolicited config reply at start-up"),
    ]
}


def check_quirks(names: Iterable[str]) -> frozenset[str]:
    """The names as a frozenset; UsageError naming the first unknown one."""
    chosen = frozenset(names)
    unknown = sorted(chosen - QUIRKS.keys())
    if unknown:
        raise UsageError(f"unknown quirk {unknown[0]!r}; `aoeconform target --list-quirks` lists them")
    return chosen


def quirk_lines() -> list[str]:
    width = max(len(name) for name in QUIRKS)
    return [f"{q.name:<{width}}  {q.description}" for q in QUIRKS.values()]
