"""Structure-aware mutation: seed request in, one fuzz case out.

Each case ``i`` of a run with seed ``s`` comes from its own generator,
``random.Random("aoeconform-fuzz:s:i")``, so the same seed gives the same
cases whatever the timing, the window, or which cases were skipped, and a
single case can be rebuilt from its index alone.

A case is made in three layers:

1. a seed frame, addressed to the target (shelf, slot, MACs, a unique tag),
   sometimes from the second initiator's MAC;
2. zero to four *field* mutations on the decoded frame (``aoeconform.wire``):
   boundary values, flag and MBZ bits, version nibble, tags with bit 31,
   wildcard and foreign addresses, length fields that lie, unknown commands;
3. sometimes a *byte* mutation on the encoded frame: truncation (mostly
   inside the fixed argument), trailing garbage, a bit flip, a boundary byte.

Then ``sanitize`` keeps the case safe for the disk and for the session:
write opcodes become reads unless writes are allowed (and then stay in the
LBA window), and Mac Mask edits or reservations never lock the host out:
a Mac Mask list only ever holds the host, whoever edits it, so the second
MAC is the one it keeps out.
"""

from __future__ import annotations

import _random
import functools
import random
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

from aoeconform.scenario.build import changes_state as parts_changed
from aoeconform.wire import AtaArg, ConfigArg, DecodeError, Directive, Frame, MacMaskArg, ReserveArg
from aoeconform.wire.constants import (
    AOE_HEADER_LEN,
    ATA_HEADER_END,
    BROADCAST_MAC,
    CMD_ATA,
    CMD_MAC_MASK,
    CMD_RESERVE_RELEASE,
    CONFIG_STRING_MAX,
    DCMD_ADD,
    ETH_HEADER_LEN,
    ETH_MIN_FRAME,
    FIXED_ARG_LEN,
    LBA28_MAX_SECTORS,
    LBA48_LIMIT,
    MASK_DIRECTIVE_LEN,
    MCMD_EDIT,
    RCMD_FORCE_SET,
    RCMD_SET,
    SECTOR_SIZE,
    SHELF_BROADCAST,
    SLOT_BROADCAST,
    TAG_TOOL_BIT,
)

from aoeconform.session.facts import TargetFacts

from .context import WritePolicy
from .oracle import expects_reply
from .seeds import HOST_MAC_PLACEHOLDER, Seed

#: first tag of a run's own numbering; health probes use their own range
CASE_TAG_BASE = 0x00010000
#: the share of cases sent from the second initiator's MAC (TargetFacts.second_mac):
#: what the Mac Mask list and a reservation must keep out (rules 51, 57)
SECOND_SOURCE_SHARE = 0.1
TAG_MASK_31 = 0x7FFFFFFF

INTERESTING_OPCODES = (
    0x20, 0x24, 0x30, 0x34, 0xEC, 0xE5, 0xE7, 0xEA, 0xB0, 0xEF, 0x00, 0x25, 0x29, 0xC4, 0xC8, 0x40, 0x42, 0xF8, 0x27, 0xA1, 0xFF,
)

#: ATA opcodes that change the medium (or could): never sent unless the
#: write policy allows 0x30/0x34; others are always turned into reads
DESTRUCTIVE_OPCODES = frozenset(
    list(range(0x30, 0x40))  # WRITE SECTORS/EXT/DMA/MULTIPLE/FUA/STREAM, WRITE LOG EXT
    + [0x06, 0x07, 0x3F, 0x45, 0x57, 0x5F, 0x92, 0xC5, 0xCA, 0xCB, 0xCC, 0xCD, 0xCE, 0xE8, 0xF1, 0xF2, 0xF3, 0xF4, 0xF6, 0xFD]
)
WRITE_OPCODES = (0x30, 0x34)


@dataclass(frozen=True)
class Case:
    index: int
    frame: bytes
    mutations: Tuple[str, ...]
    seed: str
    #: the request is well formed enough that a conforming target must answer it
    expect_reply: bool

    @functools.cached_property
    def tag(self) -> int:  # read several times per case by the loop
        return int.from_bytes(self.frame[20:24], "big") if len(self.frame) >= 24 else -1

    def describe(self) -> str:
        return f"case {self.index} ({self.seed}: {', '.join(self.mutations) or 'unmutated'}, {len(self.frame)} bytes)"


def case_tag(index: int) -> int:
    return (CASE_TAG_BASE + index) & TAG_MASK_31


def _rand_byte(rng: random.Random) -> int:
    return rng.getrandbits(8)


def _rand_mac(rng: random.Random) -> bytes:
    return b"\x02" + rng.randbytes(5)


# -- header mutations (§2) ----------------------------------------------------------


def m_version(rng, f: Frame, info):
    f.header.ver = rng.choice((0, 2, 3, 0xF, rng.randrange(16)))


def m_flags_mbz(rng, f, info):
    f.header.flags |= rng.choice((1, 2, 3))


def m_flag_response(rng, f, info):
    f.header.flags |= 0x8


def m_flag_error(rng, f, info):
    f.header.flags |= 0x4


def m_error_byte(rng, f, info):
    f.header.error = rng.choice((1, 2, 5, 6, 7, 0x7F, 0x80, 0xFF, _rand_byte(rng)))


def m_tag_bit31(rng, f, info):
    f.header.tag |= TAG_TOOL_BIT


def m_tag_boundary(rng, f, info):
    f.header.tag = rng.choice((0, 1, 0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFF))


def m_wildcard(rng, f, info):
    which = rng.randrange(3)
    if which != 1:
        f.header.shelf = SHELF_BROADCAST
    if which != 0:
        f.header.slot = SLOT_BROADCAST


def m_other_address(rng, f, info):
    if rng.random() < 0.5:
        f.header.shelf = rng.choice(((info.shelf + 1) % SHELF_BROADCAST, 0, 0xFFFE, 0x0FFF))
    else:
        f.header.slot = rng.choice(((info.slot + 1) % SLOT_BROADCAST, 0, 0xFE))


def m_dst_broadcast(rng, f, info):
    f.header.dst = BROADCAST_MAC


def m_command(rng, f, info):
    f.header.command = rng.choice(
        (rng.randrange(4, 0xF0), rng.randrange(0xF0, 0x100), rng.randrange(4), 4, 0xEF, 0xF0, 0xFF)
    )


HEADER_MUTATIONS: Sequence[Tuple[str, Callable]] = (
    ("ver", m_version),
    ("flags-mbz", m_flags_mbz),
    ("flag-r", m_flag_response),
    ("flag-e", m_flag_error),
    ("error-byte", m_error_byte),
    ("tag-bit31", m_tag_bit31),
    ("tag-boundary", m_tag_boundary),
    ("wildcard", m_wildcard),
    ("other-address", m_other_address),
    ("dst-broadcast", m_dst_broadcast),
    ("command", m_command),
)


# -- ATA argument (§3.1) ------------------------------------------------------------


def m_aflags(rng, f, info):
    a = f.arg
    a.aflags = a.aflags ^ (1 << rng.randrange(8)) if rng.random() < 0.7 else _rand_byte(rng)


def m_opcode(rng, f, info):
    f.arg.cmd_status = rng.choice(INTERESTING_OPCODES) if rng.random() < 0.8 else _rand_byte(rng)


def m_sector_count(rng, f, info):
    m = info.max_sectors
    f.arg.sector_count = rng.choice((0, 1, m, m + 1, 0x80, 0xFF, _rand_byte(rng))) & 0xFF


def m_lba(rng, f, info):
    cap = info.capacity or (1 << 20)
    f.arg.lba = rng.choice(
        (0, cap - 1, cap, cap + 1, cap - info.max_sectors, LBA28_MAX_SECTORS, LBA28_MAX_SECTORS + 1, 1 << 32, LBA48_LIMIT - 1, rng.randrange(LBA48_LIMIT))
    ) % LBA48_LIMIT


def m_lba_device_bits(rng, f, info):
    f.arg.lba = (f.arg.lba & ~(0xF0 << 24)) | (rng.choice((0x00, 0xA0, 0xE0, 0xF0, 0x40, 0x10)) << 24)


def m_feature(rng, f, info):
    f.arg.err_feature = _rand_byte(rng)


def m_ata_reserved(rng, f, info):
    f.arg.reserved = rng.choice((1, 0x8000, 0xFFFF, rng.randrange(1, 0x10000)))


def m_ata_data(rng, f, info):
    want = f.arg.sector_count * SECTOR_SIZE
    length = rng.choice((0, 1, max(0, want - 1), want + 1, SECTOR_SIZE, 2 * SECTOR_SIZE + 7))
    f.arg.data = rng.randbytes(min(length, 64)) * (length // 64 + 1)
    f.arg.data = f.arg.data[:length]


ATA_MUTATIONS = (
    ("aflags", m_aflags),
    ("opcode", m_opcode),
    ("scnt", m_sector_count),
    ("lba", m_lba),
    ("lba-device-bits", m_lba_device_bits),
    ("feature", m_feature),
    ("ata-reserved", m_ata_reserved),
    ("ata-data-length", m_ata_data),
)


# -- Query Config argument (§3.2) ---------------------------------------------------


def m_ccmd(rng, f, info):
    f.arg.ccmd = rng.choice((0, 1, 2, 3, 4, 5, 0xF, rng.randrange(16)))


def m_config_version(rng, f, info):
    f.arg.version = rng.randrange(16)


def m_config_length(rng, f, info):
    n = len(f.arg.config)
    f.arg.config_length = rng.choice((n + 1, n + 32, CONFIG_STRING_MAX, CONFIG_STRING_MAX + 1, 0xFFFF, 0, rng.randrange(0x10000)))


def m_config_string(rng, f, info):
    length = rng.choice((0, 1, 16, 255, CONFIG_STRING_MAX, CONFIG_STRING_MAX + 1))
    chunk = rng.randbytes(min(length, 32))
    f.arg.config = (chunk * (length // 32 + 1))[:length]
    f.arg.config_length = None


def m_config_fields(rng, f, info):
    a = f.arg
    a.bufcnt, a.firmware, a.sector_count = rng.randrange(0x10000), rng.randrange(0x10000), _rand_byte(rng)


CONFIG_MUTATIONS = (
    ("ccmd", m_ccmd),
    ("config-version", m_config_version),
    ("config-length", m_config_length),
    ("config-string", m_config_string),
    ("config-fields", m_config_fields),
)


# -- Mac Mask List argument (§3.3) --------------------------------------------------


def m_mcmd(rng, f, info):
    f.arg.mcmd = rng.choice((0, 1, 2, 0xFF, _rand_byte(rng)))


def m_merror(rng, f, info):
    f.arg.merror = rng.choice((1, 2, 3, _rand_byte(rng)))


def m_dir_count(rng, f, info):
    n = len(f.arg.directives)
    f.arg.dir_count = rng.choice((n + 1, 0xFF, 0, _rand_byte(rng)))


def m_directives(rng, f, info):
    count = rng.choice((0, 1, 2, 8, rng.randrange(64)))
    f.arg.directives = [
        Directive(rng.choice((0, 1, 2, 3, 0xFF, _rand_byte(rng))), rng.choice((info.host_mac, _rand_mac(rng))), rng.choice((0, 0, 0, _rand_byte(rng))))
        for _ in range(count)
    ]
    f.arg.dir_count = None


def m_mask_reserved(rng, f, info):
    f.arg.reserved = rng.randrange(1, 256)


MASK_MUTATIONS = (
    ("mcmd", m_mcmd),
    ("merror", m_merror),
    ("dir-count", m_dir_count),
    ("directives", m_directives),
    ("mask-reserved", m_mask_reserved),
)


# -- Reserve/Release argument (§3.4) ------------------------------------------------


def m_rcmd(rng, f, info):
    f.arg.rcmd = rng.choice((0, 1, 2, 3, 0xFF, _rand_byte(rng)))


def m_nmacs(rng, f, info):
    n = len(f.arg.macs)
    f.arg.nmacs = rng.choice((n + 1, 0xFF, 0, _rand_byte(rng)))


def m_macs(rng, f, info):
    count = rng.choice((0, 1, 2, 3, rng.randrange(40)))
    f.arg.macs = [info.host_mac] + [_rand_mac(rng) for _ in range(count - 1)] if count else []
    f.arg.nmacs = None


RESERVE_MUTATIONS = (
    ("rcmd", m_rcmd),
    ("nmacs", m_nmacs),
    ("macs", m_macs),
)

ARG_MUTATIONS = {
    AtaArg: ATA_MUTATIONS,
    ConfigArg: CONFIG_MUTATIONS,
    MacMaskArg: MASK_MUTATIONS,
    ReserveArg: RESERVE_MUTATIONS,
}


# -- byte mutations ---------------------------------------------------------------------


def fixed_end(command: int) -> int:
    """Frame length that holds the whole fixed argument of ``command``."""
    return AOE_HEADER_LEN + FIXED_ARG_LEN.get(command, 0)


def b_truncate(rng, raw: bytearray, info) -> bytearray:
    end = fixed_end(raw[19]) if len(raw) > 19 else AOE_HEADER_LEN
    choices = [rng.randrange(ETH_HEADER_LEN, len(raw))] if len(raw) > ETH_HEADER_LEN else [len(raw)]
    if end > AOE_HEADER_LEN and len(raw) > AOE_HEADER_LEN:
        # mostly inside the fixed argument: the "truncated arg" rule (15)
        choices += [rng.randrange(AOE_HEADER_LEN, min(end, len(raw)))] * 3
    if len(raw) > AOE_HEADER_LEN:
        choices.append(rng.randrange(ETH_HEADER_LEN, AOE_HEADER_LEN))
    return raw[: rng.choice(choices)]


def b_trailing(rng, raw, info):
    return raw + rng.randbytes(rng.choice((1, 2, 7, 24, 64)))


def b_bitflip(rng, raw, info):
    if len(raw) > ETH_HEADER_LEN:
        pos = rng.randrange(ETH_HEADER_LEN, min(len(raw), ATA_HEADER_END + 8))
        raw[pos] ^= 1 << rng.randrange(8)
    return raw


def b_boundary_byte(rng, raw, info):
    if len(raw) > ETH_HEADER_LEN:
        pos = rng.randrange(ETH_HEADER_LEN, min(len(raw), ATA_HEADER_END + 8))
        raw[pos] = rng.choice((0, 0xFF, 0x7F, 0x80, 1))
    return raw


def b_ethertype(rng, raw, info):
    """Another EtherType on an AoE-shaped frame: a target acts only on 0x88A2 (rule 1)."""
    if len(raw) >= ETH_HEADER_LEN:
        raw[12:14] = rng.choice((0x88A3, 0x0800, 0x8100, 0x22A2, 0x88A0)).to_bytes(2, "big")
    return raw


BYTE_MUTATIONS = (
    ("truncate", b_truncate),
    ("ethertype", b_ethertype),
    ("trailing", b_trailing),
    ("bitflip", b_bitflip),
    ("boundary-byte", b_boundary_byte),
)


# -- safety -------------------------------------------------------------------------------


def sanitize(raw: bytearray, info: TargetFacts, policy: WritePolicy) -> bytearray:
    """Keep a case within the MTU, off the disk (or inside the write window),
    and unable to lock the host out with a Mac Mask list or a reservation.

    Works on the final bytes, whatever mutations made them, and is
    deterministic, so the same case is always sanitised the same way."""
    if len(raw) > info.max_frame:
        del raw[info.max_frame:]
    n = len(raw)
    if n < 20:
        return raw
    command = raw[19]
    if command == CMD_ATA and n >= 28:
        opcode = raw[27]
        if opcode in DESTRUCTIVE_OPCODES:
            if policy.allow_write and opcode in WRITE_OPCODES:
                if n >= 34:
                    _clamp_write(raw, policy)
            else:
                raw[27] = 0x24 if opcode == 0x34 else 0x20
    elif command == CMD_MAC_MASK and n >= 28 and raw[25] == MCMD_EDIT:
        # Directives beyond the frame would be read from stale buffer
        # contents by some targets (vblade): keep Dir Count honest for edits.
        present = (n - 28) // MASK_DIRECTIVE_LEN
        if raw[27] > present:
            raw[27] = present
        for index in range(raw[27]):
            offset = 28 + MASK_DIRECTIVE_LEN * index
            if raw[offset + 1] == DCMD_ADD:
                raw[offset + 2:offset + 8] = info.host_mac
    elif command == CMD_RESERVE_RELEASE and n >= 32 and raw[24] in (RCMD_SET, RCMD_FORCE_SET) and raw[25]:
        raw[26:32] = info.host_mac  # the host stays on any list it sets
    return raw


def _clamp_write(raw: bytearray, policy: WritePolicy) -> None:
    scnt = raw[26]
    scnt = max(1, min(scnt, policy.count, 0xFF))
    raw[26] = scnt
    lba = int.from_bytes(raw[28:34], "little")
    # below 2**28 with lba3's high nibble clear, every reading agrees
    lba = policy.start + lba % (policy.count - scnt + 1)
    raw[28:34] = lba.to_bytes(6, "little")


# -- well-formed semantic requests (fuzz.model judges their replies) ---------------------------

#: the share of cases that are well-formed requests aimed at the model's oracles
SEMANTIC_SHARE = 0.4
#: opcodes no AoE target implements: the suites expect ABRT (rule 29)
UNSUPPORTED_OPCODES = (0x00, 0x99, 0xB0, 0xEF, 0xC8, 0x25, 0xA1)


def ata_request(info: TargetFacts, tag: int, aflags: int, scnt: int, opcode: int, lba: int,
                data: bytes = b"", reserved: int = 0, ver: int = 1) -> bytes:
    """A well-formed ATA request to the target, padded to the Ethernet minimum."""
    head = info.mac + info.host_mac + b"\x88\xa2"
    aoe = bytes((ver << 4, 0)) + info.shelf.to_bytes(2, "big") + bytes((info.slot, CMD_ATA)) + tag.to_bytes(4, "big")
    arg = bytes((aflags, 0, scnt, opcode)) + (lba % LBA48_LIMIT).to_bytes(6, "little") + reserved.to_bytes(2, "big")
    return (head + aoe + arg + data).ljust(ETH_MIN_FRAME, b"\0")


#: every SEQUENCE_EVERY cases, SEQUENCE's steps on one window sector in a row: an
#: A=1 write, a write over it, FLUSH and two READs (what lands late or not at all shows)
SEQUENCE_EVERY = 16
SEQUENCE = ("async-write", "write", "flush", "read", "read")


class SemanticCases:
    """Well-formed requests at the places the model's oracles look: a few
    sectors of the write window (written, read back, written asynchronously
    and flushed), the last sector and the ones past it, 28-bit LBAs with
    device bits, 48-bit LBAs above 2^28 and 2^32, IDENTIFY, CHECK POWER,
    FLUSH, unsupported opcodes, sector counts at and over the maximum, short
    write payloads, Ver 2 writes. Each comes from the case's own generator,
    so the sequence is as reproducible as the mutated cases."""

    def __init__(self, info: TargetFacts, policy: WritePolicy):
        self.info = info
        self.policy = policy
        # a handful of window sectors, so reads meet what writes left there
        if policy.allow_write:
            self.pool = [policy.start + i for i in range(min(8, policy.count))] + [policy.end - 1]
        else:
            self.pool = []
        cap = info.capacity
        self.readable = sorted({x for x in self.pool + [0, 1] + ([cap - 1, cap - 2] if cap else []) if x >= 0})
        self.past_end = [cap, cap + 1, cap - 1] if cap else []

    def case(self, rng: random.Random, tag: int) -> Tuple[str, bytes]:
        info, m = self.info, self.info.max_sectors
        roll = rng.random()
        writes = bool(self.pool)
        if writes and roll < 0.35:
            return self._write(rng, tag)
        if roll < 0.7 or not self.past_end:
            lba = rng.choice(self.pool if writes and rng.random() < 0.7 else self.readable)
            scnt = rng.choice((1, 1, m, 2)) if m > 1 else 1
            variant = rng.random()
            if variant < 0.15:  # 28-bit, with the device bits Linux sends
                return "semantic-read28", ata_request(info, tag, 0, scnt, 0x20, lba | (rng.choice((0xE0, 0xA0, 0x40)) << 24))
            if variant < 0.25:  # a 48-bit LBA whose high bits take it past the end
                high = rng.choice((1 << 32, 1 << 28, 1 << 40))
                return "semantic-read-high", ata_request(info, tag, 0x40, 1, 0x24, lba + high)
            if variant < 0.3:
                return "semantic-read-reserved", ata_request(info, tag, 0x40, 1, 0x24, lba, reserved=rng.choice((1, 0xFFFF)))
            if variant < 0.35:
                return "semantic-read-over-max", ata_request(info, tag, 0x40, m + 1, 0x24, lba)
            if variant < 0.4:
                return "semantic-read-trailing", ata_request(info, tag, 0x40, 1, 0x24, lba, data=bytes(rng.choice((32, 64))))
            return "semantic-read", ata_request(info, tag, 0x40, scnt, 0x24, lba)
        if roll < 0.8:
            lba = rng.choice(self.past_end)
            return "semantic-read-edge", ata_request(info, tag, 0x40, rng.choice((1, 2)) if m > 1 else 1, 0x24, lba)
        choice = rng.randrange(6)
        if choice == 0:
            return "semantic-identify", ata_request(info, tag, 0, rng.choice((1, 1, 0)), 0xEC, rng.choice((0xA0 << 24, 0)))
        if choice == 1:
            return "semantic-check-power", ata_request(info, tag, 0, 0, 0xE5, 0)
        if choice == 2:
            return "semantic-flush", ata_request(info, tag, *rng.choice(((0, 0, 0xE7), (0x40, 0, 0xEA))), 0)
        if choice == 3:
            return "semantic-unsupported", ata_request(info, tag, 0, rng.choice((0, 1)), rng.choice(UNSUPPORTED_OPCODES), 0)
        if choice == 4:
            head = info.mac + info.host_mac + b"\x88\xa2"
            aoe = bytes((0x10, 0)) + info.shelf.to_bytes(2, "big") + bytes((info.slot, 1)) + tag.to_bytes(4, "big")
            return "semantic-config-read", (head + aoe + bytes(8)).ljust(ETH_MIN_FRAME, b"\0")
        return "semantic-flush", ata_request(info, tag, 0, 0, 0xE7, 0)

    def sequence(self, rng: random.Random, tag: int, index: int) -> Tuple[str, bytes]:
        """Step ``index % SEQUENCE_EVERY`` of SEQUENCE, on the pool sector of ``index // SEQUENCE_EVERY``."""
        info = self.info
        step = SEQUENCE[index % SEQUENCE_EVERY]
        lba = self.pool[(index // SEQUENCE_EVERY) % len(self.pool)]
        data = rng.getrandbits(4096).to_bytes(512, "little")
        if step == "async-write":
            return "sequence-write-async", ata_request(info, tag, 0x43, 1, 0x34, lba, data)
        if step == "write":
            return "sequence-write", ata_request(info, tag, 0x41, 1, 0x34, lba, data)
        if step == "flush":
            return "sequence-flush", ata_request(info, tag, 0, 0, 0xE7, 0)
        return "sequence-read", ata_request(info, tag, 0x40, 1, 0x24, lba)

    def _write(self, rng: random.Random, tag: int) -> Tuple[str, bytes]:
        info, m, policy = self.info, self.info.max_sectors, self.policy
        scnt = rng.choice((1, 1, 2)) if m > 1 else 1
        lba = rng.choice(self.pool)
        if lba + scnt > policy.end:
            lba = policy.end - scnt
        data = rng.getrandbits(4096 * scnt).to_bytes(512 * scnt, "little")
        variant = rng.random()
        if variant < 0.2:
            return "semantic-write-async", ata_request(info, tag, 0x43, scnt, 0x34, lba, data)
        if variant < 0.3:
            cut = rng.choice((0, 1, 100, 511, 512 * scnt - 1))
            return "semantic-write-short", ata_request(info, tag, 0x41, scnt, 0x34, lba, data[:cut])
        if variant < 0.35:
            return "semantic-write-ver", ata_request(info, tag, 0x41, scnt, 0x34, lba, data, ver=2)
        if variant < 0.45:
            # no device bits in lba3: a write stays in the window under every reading of the LBA (WritePolicy)
            return "semantic-write28", ata_request(info, tag, 0x01, scnt, 0x30, lba, data)
        return "semantic-write", ata_request(info, tag, 0x41, scnt, 0x34, lba, data)


# -- the generator -------------------------------------------------------------------------


class CaseRandom(random.Random):
    """Each case's generator. ``randrange`` and ``choice`` scale one draw of
    ``random()`` rather than drawing bits until one fits: a case makes a dozen
    such choices, and the fuzzer's speed is bounded by making cases (the
    bias, below 2**-40 for these ranges, does not matter to a fuzzer)."""

    def randrange(self, start, stop=None, step=1):
        if stop is None:
            start, stop = 0, start
        width = stop - start
        if width <= 0 or step != 1:
            return super().randrange(start, stop, step)
        return start + int(self.random() * width)

    def choice(self, seq):
        return seq[int(self.random() * len(seq))]


#: seeds a generator in place: what random.Random.seed does with an int, without its wrapper
_reseed = _random.Random.seed


class CaseGenerator:
    """Case ``i`` of seed ``seed``, always the same for the same seeds, target and policy."""

    def __init__(self, seed: int, seeds: Sequence[Seed], info: TargetFacts, policy: WritePolicy = WritePolicy(), *, semantic: bool = True):
        if not seeds:
            raise ValueError("no seeds to mutate")
        self.seed = seed
        self.seeds = list(seeds)
        self.info = info
        self.policy = policy
        # seeds with the host MAC and the addresses filled in, decoded once
        self._bases: List[Tuple[Seed, bytes]] = []
        for s in self.seeds:
            raw = bytearray(s.frame_bytes(info.mac, info.host_mac).replace(HOST_MAC_PLACEHOLDER, info.host_mac))
            if len(raw) >= AOE_HEADER_LEN:
                raw[16:18] = info.shelf.to_bytes(2, "big")
                raw[18] = info.slot
            self._bases.append((s, bytes(raw)))
        self.semantic = SemanticCases(info, policy) if semantic else None
        self._rng = CaseRandom()

    def rng(self, index: int) -> random.Random:
        return CaseRandom(self._key(index))

    def _key(self, index: int) -> int:
        # one generator per (seed, case index): seed and index in separate bits
        return (self.seed << 64) | index

    def case(self, index: int) -> Case:
        rng = self._rng
        _reseed(rng, self._key(index))
        if self.semantic is not None and self.semantic.pool and index % SEQUENCE_EVERY < len(SEQUENCE):
            name, frame_raw = self.semantic.sequence(rng, case_tag(index), index)
            return Case(index, frame_raw, (), name, expects_reply(frame_raw, self.info))
        if self.semantic is not None and rng.random() < SEMANTIC_SHARE:
            name, frame_raw = self.semantic.case(rng, case_tag(index))
            return Case(index, frame_raw, (), name, expects_reply(frame_raw, self.info))
        seed, base = self._bases[rng.randrange(len(self._bases))]
        raw = bytearray(base)
        names: List[str] = []
        if self.info.second_mac and rng.random() < SECOND_SOURCE_SHARE and len(raw) >= AOE_HEADER_LEN:
            raw[6:12] = self.info.second_mac
            names.append("second-source")
        if len(raw) >= AOE_HEADER_LEN:
            raw[20:24] = case_tag(index).to_bytes(4, "big")
        frame: Optional[Frame]
        try:
            frame = Frame.decode(bytes(raw))
        except DecodeError:
            frame = None
        if frame is not None:
            for _ in range(rng.choice((0, 1, 1, 1, 2, 2, 3, 4))):
                pool = ARG_MUTATIONS.get(type(frame.arg), ())
                if pool and rng.random() < 0.6:
                    name, mutation = pool[rng.randrange(len(pool))]
                else:
                    name, mutation = HEADER_MUTATIONS[rng.randrange(len(HEADER_MUTATIONS))]
                mutation(rng, frame, self.info)
                names.append(name)
            raw = bytearray(frame.encode())
        truncated = False
        if frame is None or rng.random() < 0.3:
            name, mutation = BYTE_MUTATIONS[rng.randrange(len(BYTE_MUTATIONS))]
            raw = mutation(rng, raw, self.info)
            names.append(name)
            truncated = name == "truncate"
        # most initiators pad to the Ethernet minimum; truncated cases must not be
        if not truncated and len(raw) < ETH_MIN_FRAME and rng.random() < 0.85:
            raw += bytes(ETH_MIN_FRAME - len(raw))
        raw = sanitize(raw, self.info, self.policy)
        frame_bytes = bytes(raw)
        return Case(index, frame_bytes, tuple(names), seed.name, expects_reply(frame_bytes, self.info))


def changes_state(frame: bytes) -> bool:
    """May this request change what the target holds (the disk, the config
    string, the Mac Mask list, a reservation)? Such cases go out alone, so
    that what a later reply shows is settled (the same parts the suites
    restore, and ATA writes)."""
    if len(frame) >= 28 and frame[19] == CMD_ATA:
        return frame[27] in DESTRUCTIVE_OPCODES
    return bool(parts_changed(frame))
