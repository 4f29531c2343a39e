"""What the fuzzer knows the target holds, and the semantic oracles that judge
each reply against it.

``TargetModel`` is pure (no sockets, no clocks): the engine feeds it each
request with the replies matched to it, in an order where any two requests
that touch the same state were exchanged one after the other (the fence,
see ``footprint``). It judges the replies and then learns from what the
target acknowledged:

- the disk: every sector the fuzzer has read or written, inside the write
  window and out of it, as the set of contents it may hold. A sector is
  unknown until read; an acknowledged write makes it one value; silence
  or ambiguity (a write without a reply, an A=1 write before FLUSH, two
  readings of the LBA) makes it a set of possibilities, never a finding;
- what must not have happened: data of writes the target had to refuse or
  ignore (short payload, past the end, Ver other than 1, ...), so a later
  read that finds it names the rule the write broke;
- the capacity IDENTIFY reports and the readable edge the I/O shows;
- the config string, the Mac Mask list and the reservation (one handler per
  AoE command: ``_handlers``).

Verdicts are the suites' (``scenario.expect``): where the suites write an
expectation for a request (status 0x40 for a read, ABRT for an unsupported
opcode, IDNF past the end, ...), the model builds the same spec and asks the
same evaluator, and every alternative a rule accepts (``quirks.READINGS``)
is accepted here too. The common path (a read or a write that succeeded as
expected) is checked by hand first, so most replies never build a spec.
"""

from __future__ import annotations

import collections
import functools
from dataclasses import dataclass
from typing import Callable, Dict, FrozenSet, List, Mapping, Optional, Sequence, Tuple

from aoeconform.scenario.expect import Env, ReplyView, Request, evaluate
from aoeconform.wire.constants import (
    AFLAG_A,
    AFLAG_E,
    AFLAGS_MBZ,
    AOE_HEADER_LEN,
    AOE_VERSION,
    CCMD_FORCE_SET,
    DCMD_ADD,
    RCMD_FORCE_SET,
    ATA_CHECK_POWER_MODE,
    ATA_ERROR_IDNF,
    ATA_FLUSH_CACHE,
    ATA_FLUSH_CACHE_EXT,
    ATA_HEADER_END,
    ATA_IDENTIFY_DEVICE,
    ATA_READ_SECTORS,
    ATA_READ_SECTORS_EXT,
    ATA_STATUS_ERR,
    ATA_WRITE_SECTORS,
    ATA_WRITE_SECTORS_EXT,
    CMD_ATA,
    CMD_MAC_MASK,
    CMD_QUERY_CONFIG,
    CMD_RESERVE_RELEASE,
    CONFIG_HEADER_END,
    ERR_BAD_ARGUMENT,
    ERR_TARGET_RESERVED,
    ETH_MIN_FRAME,
    ETH_P_AOE,
    FIXED_ARG_LEN,
    FLAG_ERROR,
    FLAG_RESPONSE,
    LBA28_MAX_SECTORS,
    SECTOR_SIZE,
    SHELF_BROADCAST,
    SLOT_BROADCAST,
)
from aoeconform.wire.identify import IDENTIFY_LEN, IdentifyData

from aoeconform.session.facts import TargetFacts

from .context import WritePolicy
from .admin_requests import AdminRequests
from .model_admin import AdminModel
from .model_admin import changes_state as admin_changes_state
from .oracle import KINDS, Anomaly, check_reply

_AOE = ETH_P_AOE.to_bytes(2, "big")
#: the ATA opcodes an AoE target implements (§3.1); the suites expect ABRT for every other (rule 29)
KNOWN_OPCODES = frozenset({ATA_READ_SECTORS, ATA_READ_SECTORS_EXT, ATA_WRITE_SECTORS, ATA_WRITE_SECTORS_EXT,
                           ATA_CHECK_POWER_MODE, ATA_FLUSH_CACHE, ATA_FLUSH_CACHE_EXT, ATA_IDENTIFY_DEVICE})
READ_OPCODES = frozenset({ATA_READ_SECTORS, ATA_READ_SECTORS_EXT})
WRITE_OPCODES = frozenset({ATA_WRITE_SECTORS, ATA_WRITE_SECTORS_EXT})
#: tags of the requests a finding's replay starts with (``TargetModel._setup``)
SETUP_TAG_BASE = 0x7A000000
#: a sector with more possible contents than this is simply unknown
MAX_POSSIBLE = 8
#: replies remembered per tag, to see a reply that answers an earlier request
TAG_MEMORY = 1024

#: the rule a request breaks by being the kind of frame a target must ignore,
#: and the anomaly a side effect of it is (rule 1: another EtherType, 2: R set, 10: another address,
#: 12: Ver other than 1, 15: truncated argument, 51: a sender the Mac Mask list keeps out)
IGNORED_EFFECT = {
    1: "answered-other-ethertype",
    2: "response-had-effect",
    10: "other-address-had-effect",
    12: "side-effect-under-ver",
    15: "truncated-had-effect",
    51: "mask-not-enforced",
}
#: the rules whose breach the reply itself shows (the header oracles report it, or the admin
#: oracles for a masked-out sender): a write acknowledged under them is no finding by itself
REPLY_REPORTED = (1, 2, 10, 51)

# The expectation specs, in the suites' own words (suites/ata.yaml).
SPEC_READ_OK = {"reply": {"header": {"error_flag": False}, "ata": {"cmd_status": 0x40, "err_feature": 0}}}
SPEC_WRITE_OK = SPEC_READ_OK
SPEC_IDNF = {"reply": {"header": {"error_flag": False}, "ata": {"cmd_status": {"bits_set": 0x01}, "err_feature": {"bits_set": 0x10}}}}
SPEC_ABRT = {"reply": {"header": {"error_flag": False}, "ata": {"cmd_status": 0x41, "err_feature": 0x04}}}
SPEC_CHECK_POWER = {"any_of": [
    {"reply": {"header": {"error_flag": False}, "ata": {"cmd_status": 0x40, "sector_count": 0xFF}}},
    {"reply": {"header": {"error_flag": False}, "ata": {"cmd_status": {"bits_set": 0x01}, "err_feature": {"bits_set": 0x04}}}},
]}
SPEC_FLUSH = {"any_of": [
    {"reply": {"header": {"error_flag": False}, "ata": {"cmd_status": 0x40}}},
    {"reply": {"header": {"error_flag": False}, "ata": {"cmd_status": {"bits_set": 0x01}, "err_feature": {"bits_set": 0x04}}}},
]}


def _spec_identify(capacity: int) -> dict:
    """IDENTIFY words against the capacity (rule 28), as ata/identify/* check them."""
    return {"any_of": [
        {"reply": {"header": {"error_flag": False}, "ata": {"cmd_status": 0x40}, "data": {"length": {"min": IDENTIFY_LEN}},
                   "identify": {"lba48_supported": True, "lba48_enabled": True, "lba48_capacity": capacity,
                                "lba28_capacity": min(capacity, LBA28_MAX_SECTORS)}}},
        {"reply": {"header": {"error_flag": False}, "ata": {"cmd_status": 0x40}, "data": {"length": {"min": IDENTIFY_LEN}},
                   "identify": {"lba48_supported": False, "lba48_enabled": False, "lba48_capacity": 0,
                                "lba28_capacity": capacity}}},
    ]}


_ENV = Env(variables={}, roles={})


def _idnf(reply: bytes) -> bool:
    return not reply[14] & FLAG_ERROR and bool(reply[27] & ATA_STATUS_ERR) and bool(reply[25] & ATA_ERROR_IDNF)


def _abrt(reply: bytes) -> bool:
    return not reply[14] & FLAG_ERROR and reply[27] == 0x41 and reply[25] == 0x04


#: the replies each spec accepts, tested by hand first: the evaluator only explains a failure
_FAST: Dict[object, Callable[[bytes], bool]] = {
    id(SPEC_IDNF): _idnf,
    id(SPEC_ABRT): _abrt,
    id(SPEC_FLUSH): lambda r: _abrt(r) or (not r[14] & FLAG_ERROR and r[27] == 0x40),
    id(SPEC_CHECK_POWER): lambda r: _abrt(r) or (not r[14] & FLAG_ERROR and r[27] == 0x40 and r[26] == 0xFF),
}


#: verdicts already reached: the evaluator's answer depends only on the spec
#: and the bytes of reply and request, and a fuzz run sends the same few
#: shapes again and again (vblade's FLUSH status, every IDENTIFY block)
_VERDICTS: Dict[tuple, Optional[str]] = {}
_VERDICTS_KEPT = 4096
#: the payload hashes the model keeps (``TargetModel._payloads_seen``)
PAYLOADS_KEPT = 1 << 16


def judge(spec: Mapping, reply: bytes, request: bytes, spec_key: Optional[tuple] = None) -> Optional[str]:
    """None when ``reply`` satisfies ``spec`` (the suites' evaluator), else why not.

    ``spec_key`` names a spec made on the fly (the same key, the same spec);
    the module's own specs are known by their identity."""
    key: object = id(spec) if spec_key is None else spec_key
    fast = _FAST.get(key)
    if fast is not None and len(reply) >= ATA_HEADER_END and fast(reply):
        return None
    # the model's specs judge the reply alone (none has `tag: same` or a data check that
    # reads the request, tested): the reply without its tag is the key
    memo = (key, reply[14:20], reply[24:])
    if memo in _VERDICTS:
        return _VERDICTS[memo]
    view = ReplyView(reply)
    tag = int.from_bytes(request[20:24], "big") if len(request) >= 24 else 0
    verdict = evaluate(spec, [view], Request(bytes(request), tag), _ENV)
    why = None if verdict.ok else verdict.message
    if len(_VERDICTS) >= _VERDICTS_KEPT:
        _VERDICTS.clear()
    _VERDICTS[memo] = why
    return why


@functools.lru_cache(maxsize=64)
def _identify_block(block: bytes) -> IdentifyData:
    """An IDENTIFY block decoded, read only (a target sends the same block again and again)."""
    return IdentifyData.decode(block)


def _identify_fits(reply: bytes, capacity: int) -> bool:
    """``_spec_identify(capacity)`` accepts ``reply``: tested by hand first, as ``_FAST``."""
    if len(reply) < ATA_HEADER_END + IDENTIFY_LEN or reply[14] & FLAG_ERROR or reply[27] != 0x40:
        return False
    block = _identify_block(bytes(reply[ATA_HEADER_END:ATA_HEADER_END + IDENTIFY_LEN]))
    if block.lba48_supported and block.lba48_enabled:
        return block.lba48_capacity == capacity and block.lba28_capacity == min(capacity, LBA28_MAX_SECTORS)
    return not block.lba48_supported and not block.lba48_enabled and block.lba48_capacity == 0 and block.lba28_capacity == capacity


def _shares_a_half(sector: bytes, other: bytes) -> bool:
    half = SECTOR_SIZE // 2
    return sector[:half] == other[:half] or sector[half:] == other[half:]


def _meaningful(request: bytes, reply: bytes) -> Optional[bytes]:
    """The reply as the semantic oracles read it. An E flag with Error 0 is an
    echo of the request's flag (vblade; the header oracles report it, rule 6),
    not a refusal. An E flag with the request's own E flag and Error byte may
    be an echo or a real error with the same code: it tells nothing (None)."""
    if len(reply) > 15 and reply[14] & FLAG_ERROR:
        if not reply[15]:
            return reply[:14] + bytes((reply[14] & ~FLAG_ERROR, 0)) + reply[16:]
        if len(request) > 15 and request[14] & FLAG_ERROR and reply[15] == request[15]:
            return None
    return reply


@dataclass(frozen=True)
class Footprint:
    """What a request may touch: sectors (``all_disk`` for every one) and
    other state by name ("config", "mask", "reserve"). Two requests conflict
    when they share something and one of them changes it."""

    sectors: FrozenSet[int] = frozenset()
    names: FrozenSet[str] = frozenset()
    all_disk: bool = False

    def overlaps(self, other: "Footprint") -> bool:
        if self.names & other.names:
            return True
        if self.all_disk and (other.all_disk or other.sectors):
            return True
        if other.all_disk and self.sectors:
            return True
        return bool(self.sectors & other.sectors)


EVERYTHING = Footprint(names=frozenset({"config", "mask", "reserve"}), all_disk=True)


@dataclass
class _Ata:
    """An ATA request as the model reads it."""

    raw: bytes
    aflags: int
    feature: int
    scnt: int
    opcode: int
    lba_bytes: int
    reserved: int
    payload: bytes
    #: (first sector, 48-bit?) under every reading the rules accept (rule 26, 27)
    readings: Tuple[Tuple[int, bool], ...]

    @classmethod
    def parse(cls, raw: bytes) -> "_Ata":
        aflags, feature, scnt, opcode = raw[24], raw[25], raw[26], raw[27]
        lba_bytes = int.from_bytes(raw[28:34], "little")
        by_opcode = opcode in (ATA_READ_SECTORS_EXT, ATA_WRITE_SECTORS_EXT)
        by_flag = bool(aflags & AFLAG_E)
        readings = []
        for extended in dict.fromkeys((by_opcode, by_flag)):
            lba = lba_bytes if extended else lba_bytes & LBA28_MAX_SECTORS
            if (lba, extended) not in readings:
                readings.append((lba, extended))
        return cls(raw, aflags, feature, scnt, opcode, lba_bytes, int.from_bytes(raw[34:36], "big"),
                   raw[ATA_HEADER_END:], tuple(readings))

    @property
    def lbas(self) -> Tuple[int, ...]:
        return tuple(dict.fromkeys(lba for lba, _ in self.readings))


@dataclass
class _Reply:
    raw: bytes

    @property
    def error_flag(self) -> bool:
        return bool(self.raw[14] & FLAG_ERROR)

    @property
    def error(self) -> int:
        return self.raw[15]

    @property
    def status(self) -> int:
        return self.raw[27] if len(self.raw) > 27 else 0

    @property
    def ata_error(self) -> int:
        return self.raw[25] if len(self.raw) > 25 else 0

    @property
    def data(self) -> bytes:
        return self.raw[ATA_HEADER_END:] if len(self.raw) > ETH_MIN_FRAME else b""

    @property
    def refused(self) -> bool:
        """An AoE error, or an ATA status with ERR set."""
        return self.error_flag or bool(self.status & ATA_STATUS_ERR)


class TargetModel:
    """The target as the fuzzer knows it; ``step`` judges and learns."""

    def __init__(self, info: TargetFacts, policy: WritePolicy, *, config: Optional[bytes] = None, host_macs: Sequence[bytes] = ()):
        self.info = info
        self.policy = policy
        self.host_macs: Tuple[bytes, ...] = tuple(host_macs) or (info.host_mac,)
        #: the capacity in sectors: the discovery's IDENTIFY, else the first one seen
        self.capacity: Optional[int] = info.capacity
        self.max_sectors = info.max_sectors
        # the disk: sector -> possible contents; absent: unknown
        self.disk: Dict[int, FrozenSet[bytes]] = {}
        #: how a sector's content became known: "read", "write" or "async"
        self.origin: Dict[int, str] = {}
        #: sector -> {content: (anomaly kind, what should not have written it, that request)}
        #: (and the step that forbade it)
        self.forbidden: Dict[int, Dict[bytes, Tuple[str, str, bytes, int]]] = {}
        #: requests stepped so far, and sector -> the step of the last write that set it (a
        #: content forbidden after it, or before it, decides between two readings)
        self._steps = 0
        self._written_at: Dict[int, int] = {}
        #: A=1 writes acknowledged and not yet confirmed by a FLUSH: sector -> content
        self.pending_async: Dict[int, bytes] = {}
        #: sector -> (the content an acknowledged synchronous write put, that write) while a
        #: later write that replaced it is not yet read back: found after that, it landed late
        self.superseded: Dict[int, Tuple[bytes, bytes]] = {}
        #: sector -> the requests that made the model believe what it does of it (a finding's replay)
        self.evidence: Dict[int, Tuple[bytes, ...]] = {}
        #: the first synchronous write a READ found landed, and that READ: the target keeps
        #: such writes, so one found overwritten by an earlier A=1 write was not lost (rule 33, not 22)
        self.sync_write_kept: Tuple[bytes, ...] = ()
        #: sector -> what its last synchronous write put there, and the requests that show what it
        #: held before and that write, when the write changed it (a READ that finds it shows it kept)
        self._changed_by_write: Dict[int, Tuple[bytes, Tuple[bytes, ...]]] = {}
        #: the hashes of the sector payloads writes carried so far (bounded): a write of bytes
        #: seen before proves nothing kept
        self._payloads_seen: set = set()
        #: sector -> (what the last acknowledged write put, what a READ found instead, the
        #: requests that show it, why, the kind if a READ of the sector alone finds the write,
        #: the kind if it finds the same again). Such a READ decides whether that write was lost
        #: (rule 22) or the READ of several returned the wrong data for it (rule 21); or, for an
        #: A=1 write's data found over a later synchronous write, whether that write landed
        #: after the READ (rule 22) or the A=1 write landed over it (rule 33)
        self.doubts: Dict[int, Tuple[bytes, bytes, Tuple[bytes, ...], str, str, str]] = {}
        self._request = b""  # the request being judged
        #: what the engine sent just before it as one check (an A=1 write, a write over it, a
        #: FLUSH): a finding resting on the check keeps it, in the order sent
        self.context: Tuple[bytes, ...] = ()
        # the readable edge the I/O has shown: capacity is in [readable_lo, readable_hi]
        self.readable_lo = 0
        self.readable_hi: Optional[int] = None
        #: the config string, Mac Mask list and reservation, and their oracles (model_admin);
        #: each None while unknown, then every outcome that depends on it is accepted
        self.admin = AdminModel(info, config=config, mask=info.mask, reservation=info.reservation)
        #: tag -> (request, reply) pairs it was answered with: the first and the latest ones
        self._by_tag: "collections.OrderedDict[int, List[Tuple[bytes, bytes]]]" = collections.OrderedDict()
        #: one handler per AoE command: (request, reply or None, answered in time, the rule that
        #: makes the target ignore the request or 0) -> anomalies
        self._handlers: Dict[int, Callable[[bytes, Optional[_Reply], bool, int], List[Anomaly]]] = {
            CMD_ATA: self._ata,
            CMD_QUERY_CONFIG: self._query_config,
        }
        self._ata_handlers: Dict[int, Callable[[_Ata, Optional[_Reply], bool, int], List[Anomaly]]] = {
            ATA_READ_SECTORS: self._read,
            ATA_READ_SECTORS_EXT: self._read,
            ATA_WRITE_SECTORS: self._write,
            ATA_WRITE_SECTORS_EXT: self._write,
            ATA_IDENTIFY_DEVICE: self._identify,
            ATA_CHECK_POWER_MODE: self._check_power,
            ATA_FLUSH_CACHE: self._flush,
            ATA_FLUSH_CACHE_EXT: self._flush,
        }

    # -- the engine's side ------------------------------------------------------------

    def step(self, request: bytes, replies: Sequence[bytes], *, answered_in_time: bool = True) -> List[Anomaly]:
        """Judge the replies (possibly none) to ``request``, sent with the model
        in its current state, then update the state from what the target
        acknowledged. Silence or ambiguity makes the affected state uncertain
        (a set of possible values), never a false finding."""
        request = bytes(request)
        if len(request) < AOE_HEADER_LEN:
            return []
        self._request = request
        self._steps += 1
        readable = [_meaningful(request, bytes(r)) for r in replies]
        if None in readable:
            answered_in_time = False  # answered, but how is not known: what it changed is uncertain
        replies = [r for r in readable if r is not None]
        reply = next((_Reply(r) for r in replies if len(r) >= AOE_HEADER_LEN and r[19] == request[19]), None)
        # the admin oracles first: they see every command (enforcement of the mask and the reservation)
        admin = self.admin
        masked = admin.masked_out(request)
        before = (admin.config, admin.mask, admin.reservation)
        found = admin.step(request, replies, answered_in_time)
        if found:
            # a replay must first bring the target to what the admin oracles knew of it
            setup = self._setup(*before)
            found = [a if a.evidence else Anomaly(a.kind, a.detail, setup) for a in found]
        ignored = self.ignored_rule(request)
        if masked:
            if reply is None and answered_in_time:
                return found  # the mask list keeps its sender out: silence is the answer (rule 51)
            ignored = ignored or 51  # answered anyway (the admin oracles' finding): what it did, a read will tell
        handler = self._handlers.get(request[19])
        if handler is not None:
            found += handler(request, reply, answered_in_time, ignored)
        if reply is not None:
            stale = self.stale_reply(request, reply.raw) if found else None
            self.remember_reply(request, reply.raw)
            if stale is not None:
                self.forget_effects(request)  # answered from the cache: acted on, or not
                return [stale]
        return found

    def changes_state(self, request: bytes) -> bool:
        """Whether ``request`` may change the target's state (under some reading,
        or if the target is faulty): the engine fences it."""
        if len(request) < AOE_HEADER_LEN:
            return False
        command = request[19]
        if command == CMD_ATA:
            if len(request) < 28:
                return False
            # other opcodes change nothing a conforming target keeps (rule 29)
            return request[27] in WRITE_OPCODES or request[27] in (ATA_FLUSH_CACHE, ATA_FLUSH_CACHE_EXT)
        return admin_changes_state(request)

    def footprint(self, request: bytes) -> Footprint:
        """What ``request`` may read or change (see ``Footprint``)."""
        if len(request) < AOE_HEADER_LEN:
            return Footprint()
        command = request[19]
        if command == CMD_ATA:
            if len(request) < ATA_HEADER_END:
                return Footprint()
            opcode = request[27]
            if opcode in READ_OPCODES or opcode in WRITE_OPCODES:
                ata = _Ata.parse(request)
                count = max(1, ata.scnt)
                # a lengths-from-frame target writes what the frame carries
                if opcode in WRITE_OPCODES:
                    count = max(count, -(-len(ata.payload) // SECTOR_SIZE))
                return Footprint(sectors=frozenset(s for lba in ata.lbas for s in range(lba, lba + count)))
            if opcode in (ATA_FLUSH_CACHE, ATA_FLUSH_CACHE_EXT):
                return Footprint(all_disk=True)
            return Footprint(names=frozenset({"reserve"}))
        if command == CMD_QUERY_CONFIG:
            return Footprint(names=frozenset({"config"}))
        if command == CMD_MAC_MASK:
            return EVERYTHING  # a mask edit decides who is answered at all
        if command == CMD_RESERVE_RELEASE:
            return Footprint(names=frozenset({"reserve"}), all_disk=True)
        return Footprint()

    def overlapped(self, request: bytes, replies: Sequence[bytes]) -> None:
        """``request``, a write already stepped, was in flight together with
        another write to the same sectors (stepped after it): either may have
        landed last, but each sector is one of them whole (rule 20)."""
        if len(request) < ATA_HEADER_END or request[27] not in WRITE_OPCODES:
            return
        reply = next((_Reply(bytes(r)) for r in replies if len(r) >= ATA_HEADER_END), None)
        if reply is None or reply.refused:
            return
        ata = _Ata.parse(request)
        self._request = bytes(request)  # the evidence for what the sectors may hold is this write, not the last one stepped
        for lba in ata.lbas:
            for i, sector in enumerate(self._sectors(ata.payload, ata.scnt)):
                if len(sector) == SECTOR_SIZE:
                    self._widen(lba + i, sector)
                    self.origin[lba + i] = "overlap"

    def restarted(self) -> None:
        """The target was restarted: what it kept only in memory is unknown."""
        for lba, data in self.pending_async.items():
            self._widen(lba, data)
        self.pending_async.clear()
        self.admin.forget()

    def forget(self) -> None:
        """Frames the model did not see reached the target: only what cannot
        change (the capacity, the readable edge) is still known."""
        self.disk.clear()
        self.evidence.clear()
        self.doubts.clear()
        self.origin.clear()
        self.forbidden.clear()
        self.superseded.clear()
        self.pending_async.clear()
        self.admin.forget()  # (what tags were answered with stays: a cache keyed on them may still hold it)

    # -- helpers -------------------------------------------------------------------------

    def ignored_rule(self, request: bytes) -> int:
        """The rule that makes a target ignore ``request`` (no side effect), or 0."""
        if request[12:14] != _AOE:
            return 1
        if request[14] & FLAG_RESPONSE:
            return 2
        shelf, slot = int.from_bytes(request[16:18], "big"), request[18]
        if shelf not in (self.info.shelf, SHELF_BROADCAST) or slot not in (self.info.slot, SLOT_BROADCAST):
            return 10
        if request[0:6] != self.info.mac and request[0:6] != b"\xff" * 6:
            return 10
        if request[14] >> 4 != AOE_VERSION:
            return 12
        fixed = FIXED_ARG_LEN.get(request[19])
        if fixed is not None and len(request) < AOE_HEADER_LEN + fixed:
            return 15
        return 0

    def _reserved_against_us(self, request: bytes) -> bool:
        """Whether a reservation may shut the requester out (unknown counts)."""
        return self.admin.may_refuse_reserved(request)

    def setup(self) -> Tuple[bytes, ...]:
        """Requests that bring a freshly started target to the config string,
        Mac Mask list and reservation the model knows now."""
        admin = self.admin
        return self._setup(admin.config, admin.mask, admin.reservation)

    def _setup(self, config: Optional[bytes], mask: Optional[List[bytes]], reservation: Optional[List[bytes]]) -> Tuple[bytes, ...]:
        """Requests that bring a freshly started target to this config string,
        Mac Mask list and reservation (a fresh target's list is empty: adds suffice).
        The reservation comes before the config string: a config set must leave
        it as it is (rules 54, 57), which a finding's replay then shows too."""
        build = AdminRequests(self.info, SETUP_TAG_BASE)
        frames = []
        if reservation is not None:
            frames.append(build.reserve(RCMD_FORCE_SET, reservation))
        if config is not None:
            frames.append(build.config(CCMD_FORCE_SET, config))
        if mask:
            frames.append(build.mask_edit([(DCMD_ADD, mac) for mac in mask]))
        return tuple(frames)

    def stale_reply(self, request: bytes, reply: bytes) -> Optional[Anomaly]:
        """The anomaly when ``reply`` is byte for byte the reply an earlier
        request with the same tag got: the target answered from a cache keyed
        on the tag (rule 18). Only meaningful once the reply broke something,
        since an identical request may well get an identical reply."""
        if len(request) < AOE_HEADER_LEN or len(reply) < AOE_HEADER_LEN:
            return None
        tag = int.from_bytes(request[20:24], "big")
        tail = bytes(reply[14:])
        for earlier, answer in self._by_tag.get(tag, ()):
            # (and it fits the earlier request: a target that gets every reply of a
            # kind wrong gives two requests the same wrong reply, with no cache)
            if answer[14:] == tail and earlier is not request and not check_reply(earlier, reply, self.info):
                # the earlier request is what a replay sends first, to fill the cache
                evidence = (earlier,) if earlier != request else ()
                return Anomaly("stale-reply", f"tag 0x{tag:08x}: the reply is the one an earlier request with this tag got", evidence)
        return None

    def tag_reused(self, request: bytes, same_too: bool = False) -> bool:
        """Whether another request with ``request``'s tag (``same_too``: or this
        one) was answered before, as far as the model remembers."""
        if len(request) < AOE_HEADER_LEN:
            return False
        return any(same_too or earlier != request for earlier, _ in self._by_tag.get(int.from_bytes(request[20:24], "big"), ()))

    def remember_reply(self, request: bytes, reply: bytes) -> None:
        """``reply`` answered ``request``: a later request with its tag that gets
        the same reply was answered from a cache (``stale_reply``). The first
        answer is kept (a cache may never refresh) and the latest two."""
        tag = int.from_bytes(request[20:24], "big")
        entries = self._by_tag.get(tag)
        if entries is None:
            entries = self._by_tag[tag] = []
            if len(self._by_tag) > TAG_MEMORY:
                self._by_tag.popitem(last=False)
        else:
            self._by_tag.move_to_end(tag)
            if any(earlier == request and answer == reply for earlier, answer in entries):
                return
        entries.append((request, bytes(reply)))
        if len(entries) > 3:
            del entries[1]

    def forget_effects(self, request: bytes) -> None:
        """``request`` may or may not have been acted on: what it could have
        changed is unknown (its footprint)."""
        footprint = self.footprint(request)
        sectors = list(self.disk) if footprint.all_disk else footprint.sectors
        for lba in sectors:
            self.disk.pop(lba, None)
            self.pending_async.pop(lba, None)
            self.forbidden.pop(lba, None)
        if footprint.names:
            self.admin.forget()

    def _note(self, lba: int, fresh: bool = False) -> None:
        """The request being judged is evidence for what the model holds of ``lba``."""
        request = self._request
        if fresh:
            self.evidence[lba] = (request,)
        else:
            earlier = self.evidence.get(lba, ())
            if request not in earlier:
                self.evidence[lba] = (earlier + (request,))[-MAX_POSSIBLE:]

    def _widen(self, lba: int, data: bytes) -> None:
        """The sector may now hold ``data`` as well as what it held."""
        self.doubts.pop(lba, None)
        self._changed_by_write.pop(lba, None)
        known = self.disk.get(lba)
        if known is None:
            return
        self._note(lba)
        if data in known:
            return
        if len(known) >= MAX_POSSIBLE:
            self.disk.pop(lba, None)
            self.origin.pop(lba, None)
        else:
            self.disk[lba] = known | {data}

    def _set(self, lba: int, data: bytes, origin: str) -> None:
        self._changed_by_write.pop(lba, None)
        if origin != "read":
            self.doubts.pop(lba, None)  # written again: what the old write did no longer shows
            self._written_at[lba] = self._steps
        self.disk[lba] = frozenset((data,))
        self.origin[lba] = origin
        self._note(lba, fresh=True)
        self.pending_async.pop(lba, None)
        if origin != "read":
            # what landed before this was overwritten by it (a read overwrites nothing:
            # what must not land there, or landed late, still must not show)
            self.forbidden.pop(lba, None)

    def _forbid(self, lba: int, data: bytes, kind: str, why: str, culprit: Optional[bytes] = None) -> None:
        entry = self.forbidden.setdefault(lba, {})
        if len(entry) >= MAX_POSSIBLE:
            del entry[next(iter(entry))]  # the oldest goes
        entry[data] = (kind, why, self._request if culprit is None else culprit, self._steps)

    def _supersede(self, lba: int, data: bytes) -> None:
        """A write of ``data`` is to replace what an acknowledged synchronous write put at ``lba``."""
        known = self.disk.get(lba)
        writes = self.evidence.get(lba, ())
        if known is not None and len(known) == 1 and data not in known and self.origin.get(lba) == "write" and writes:
            self.superseded[lba] = (next(iter(known)), writes[0])

    def _in_disk(self, lba: int, count: int) -> Optional[bool]:
        """True if [lba, lba+count) lies inside the disk, False if past its end, None if unknown."""
        if self.capacity is None:
            if self.readable_hi is not None and lba + count > self.readable_hi:
                return False
            return True if lba + count <= self.readable_lo else None
        return lba + count <= self.capacity

    @staticmethod
    def _sectors(data: bytes, count: int) -> List[bytes]:
        return [data[i * SECTOR_SIZE:(i + 1) * SECTOR_SIZE] for i in range(count)]

    # -- ATA (§3.1) ------------------------------------------------------------------------

    def _ata(self, request: bytes, reply: Optional[_Reply], in_time: bool, ignored: int) -> List[Anomaly]:
        if len(request) < ATA_HEADER_END:
            return []
        ata = _Ata.parse(request)
        handler = self._ata_handlers.get(ata.opcode, self._unsupported)
        return handler(ata, reply, in_time, ignored)

    def _clean(self, ata: _Ata, reserved_too: bool = False) -> bool:
        """A request every reading of the rules must serve: no MBZ bits, no
        reserved bytes (unless ``reserved_too``: then only Error 2 may refuse
        them, rule 34), E flag agreeing with the opcode, W flag with the
        direction."""
        raw = ata.raw
        if raw[14] & 0x3 or raw[15] or ata.aflags & AFLAGS_MBZ or (ata.reserved and not reserved_too):
            return False
        extended = ata.opcode in (ATA_READ_SECTORS_EXT, ATA_WRITE_SECTORS_EXT, ATA_FLUSH_CACHE_EXT)
        if bool(ata.aflags & AFLAG_E) != extended and ata.opcode in (READ_OPCODES | WRITE_OPCODES):
            return False
        if ata.opcode in READ_OPCODES and ata.aflags & 0x3:
            return False
        if ata.opcode in WRITE_OPCODES and not ata.aflags & 0x1:
            return False
        return True

    def _refusal_ok(self, ata: _Ata, reply: _Reply, ignored: int) -> bool:
        """Whether a refusal of this request is one some reading accepts."""
        if ignored:
            return True
        if reply.error_flag:
            code = reply.error
            if code == ERR_TARGET_RESERVED and self._reserved_against_us(ata.raw):
                return True
            if code == ERR_BAD_ARGUMENT and (ata.reserved or ata.scnt > self.max_sectors):
                return True
            return not self._clean(ata, reserved_too=True)
        return not self._clean(ata, reserved_too=True)

    def _edge_kind(self, ata: _Ata, lba: int, extended: bool, refused: bool) -> str:
        """Which rule an I/O judged against the end of the disk breaks."""
        capacity = self.capacity or 0
        if ata.reserved:
            return "ata-reserved-not-ignored"
        if refused:
            if not extended and ata.lba_bytes & 0xF0000000:
                return "lba28-arithmetic"
            if extended and lba > LBA28_MAX_SECTORS:
                return "lba48-arithmetic"
            if lba + max(1, ata.scnt) == capacity:
                return "identify-capacity"
            return "read-refused" if ata.opcode in READ_OPCODES else "write-refused"
        if lba <= capacity:
            return "idnf-missing"
        return "lba48-arithmetic" if extended else "lba28-arithmetic"

    def _read(self, ata: _Ata, reply: Optional[_Reply], in_time: bool, ignored: int) -> List[Anomaly]:
        if reply is None:
            return []
        scnt = ata.scnt
        found: List[Anomaly] = []
        inside = [(lba, ext) for lba, ext in ata.readings if self._in_disk(lba, scnt) is not False]
        if reply.refused:
            if ignored or not self._clean(ata, reserved_too=True):
                return []
            if reply.error_flag and self._refusal_ok(ata, reply, ignored):
                return []
            if not inside or scnt > self.max_sectors:
                # every reading is past the end: IDNF (rule 25), unless the count is refused first (24)
                if scnt <= self.max_sectors and self.capacity is not None and (why := judge(SPEC_IDNF, reply.raw, ata.raw)):
                    found.append(Anomaly("idnf-missing", f"READ of {scnt} at LBA {ata.readings[0][0]} past the end ({self.capacity}): {why}"))
                elif scnt <= self.max_sectors:
                    self._learn_edge(ata, refused=True)
                return found
            if scnt == 0 or any(self._in_disk(lba, scnt) is None for lba, _ in inside):
                return []
            lba, extended = inside[0]
            if len(ata.readings) > 1 and reply.ata_error & ATA_ERROR_IDNF:
                return []  # the other reading may be past the end
            kind = self._edge_kind(ata, lba, extended, refused=True)
            if len(ata.raw) > ETH_MIN_FRAME and len(ata.payload) and reply.error_flag:
                kind = "trailing-bytes-refused"
            return [Anomaly(kind, f"READ of {scnt} at LBA {lba} inside the disk ({self.capacity} sectors) refused: "
                                  f"E={int(reply.error_flag)} error {reply.error}, status 0x{reply.status:02x} error 0x{reply.ata_error:02x}")]
        # served
        if scnt > self.max_sectors:
            found.append(Anomaly("scnt-over-max", f"READ of {scnt} sectors served; the target advertises {self.max_sectors}"))
            return found
        if not inside:
            lba, extended = ata.readings[0]
            kind = self._edge_kind(ata, lba, extended, refused=False)
            return [Anomaly(kind, f"READ of {scnt} at LBA {lba} past the end ({self.capacity} sectors) served")]
        if ignored == 0 and self._clean(ata) and (reply.status != 0x40 or reply.ata_error):
            why = judge(SPEC_READ_OK, reply.raw, ata.raw)
            if why:
                found.append(Anomaly("read-status", f"READ of {scnt} at LBA {inside[0][0]}: {why}"))
        data = reply.data
        if len(data) < scnt * SECTOR_SIZE:
            return found  # the header oracle's short-read
        sectors = self._sectors(data, scnt)
        if scnt == 1 and len(inside) == 1 and inside[0][0] in self.doubts:
            found += self._decide(inside[0][0], sectors[0])
        matching = [(lba, ext) for lba, ext in inside if self._matches(lba, sectors)]
        if not matching:
            lba, _ = inside[0]
            found += self._mismatch(lba, sectors)
            return found
        if len(matching) == 1:
            lba, _ = matching[0]
            if not self.sync_write_kept:
                kept = next((self._changed_by_write[lba + i] for i, sector in enumerate(sectors)
                             if self._changed_by_write.get(lba + i, (None,))[0] == sector), None)
                if kept is not None:
                    self.sync_write_kept = kept[1] + (self._request,)
            for i, sector in enumerate(sectors):
                if i and lba + i not in self.disk:
                    # what a READ of several returns past its first sector is not learnt (a
                    # stale buffer there would make a later READ of the sector alone look
                    # like a sector that changed by itself): a READ of it alone teaches it
                    continue
                self._learn(lba + i, sector)
            self._learn_edge(ata, refused=False, lba=lba)
        return found

    def _matches(self, lba: int, sectors: List[bytes]) -> bool:
        disk = self.disk
        for i, sector in enumerate(sectors):
            known = disk.get(lba + i)
            if known is not None and sector not in known:
                return False
        return True

    def _learn(self, lba: int, sector: bytes) -> None:
        known = self.disk.get(lba)
        replaced = self.superseded.pop(lba, None)
        if replaced is not None and known is not None and len(known) == 1 and sector in known:
            # the later write is read back: the earlier one's content, found after this, landed late
            self._forbid(lba, replaced[0], "read-data", "a write acknowledged before the one read back (applied late)", replaced[1])
        if known is None or len(known) > 1:
            self._note(lba, fresh=known is None)
        if known is None:
            pending = self.pending_async.get(lba)
            self.disk[lba] = frozenset((sector,) if pending is None or pending == sector else (sector, pending))
            self.origin[lba] = "read"
            if pending == sector:
                del self.pending_async[lba]
        elif len(known) > 1:
            pending = self.pending_async.get(lba)
            if pending is None or pending == sector:
                self.disk[lba] = frozenset((sector,))
                self.pending_async.pop(lba, None)
            else:  # an A=1 write not yet flushed may still land
                self.disk[lba] = frozenset((sector, pending))

    def _mismatch(self, lba: int, sectors: List[bytes]) -> List[Anomaly]:
        """A READ's data against the model: one anomaly, named by why the model expected what it did."""
        for i, sector in enumerate(sectors):
            known = self.disk.get(lba + i)
            if known is None or sector in known:
                continue
            at = lba + i
            bad = self.forbidden.get(at, {}).get(sector)
            origin = self.origin.get(at, "read")
            replaced = self.superseded.get(at)
            tie = None
            evidence = self.evidence.get(at, ())
            if bad is not None and origin == "write" and replaced is not None and replaced[0] == sector:
                # what the last write replaced: that write not applied (rule 22) is the plainer
                # reading, though a request that must not have written (the fuzzer's pattern
                # payloads repeat) carried the same bytes. Its frames keep the write replaced
                # and that request, in the order sent: a replay then gets the same reading
                tie, bad = bad, None
                ignored_first = tie[3] < self._written_at.get(at, 0)
                evidence = tuple(dict.fromkeys(
                    (replaced[1],) + ((tie[2],) if ignored_first else ()) + evidence + (() if ignored_first else (tie[2],))))
            if bad is not None:
                kind, why, culprit, _ = bad
                detail = f"sector {at} holds the data of {why}"
                evidence = tuple(e for e in evidence if e != culprit) + (culprit,)
                if kind == "async-write-late":
                    if self.sync_write_kept:
                        # this target keeps synchronous writes (the first frames show one read back)
                        evidence = tuple(e for e in self.sync_write_kept if e not in evidence) + evidence
                        if origin == "write" and len(known) == 1:
                            # the later write may yet land (held back until after this READ): a
                            # READ of the sector alone tells that from the A=1 write landing over it
                            written = next(iter(known))
                            shown = tuple(e for e in evidence if e not in self.context) + self.context + (self._request,)
                            self.doubts[at] = (written, sector, shown, detail, "read-data", "async-write-late")
                            self._set(at, sector, "read")
                            self.disk[at] = frozenset((written, sector))
                            return []
                    else:
                        kind = "read-data"  # no synchronous write was ever seen kept: the later one may simply be lost
            elif origin in ("write", "read") and len(sectors) > 1 and len(known) == 1:
                # one READ cannot tell a write that was lost (or a sector that changed by
                # itself) from a READ of several sectors that returned the wrong data for one
                # of them: a READ of it alone will. So for every sector of it that contradicts
                # the write or the READ that set it (a write of several sectors held back
                # shows in each of them; a stale buffer in each but the first)
                for j, s in enumerate(sectors):
                    was = self.disk.get(lba + j)
                    set_by = self.origin.get(lba + j, "read")
                    doubtful = was is not None and len(was) == 1 and s not in was and set_by in ("write", "read")
                    if was is not None and len(was) == 1 and s in was:
                        self._learn(lba + j, s)  # as the model held it
                        continue
                    if doubtful and was is not None:
                        written = next(iter(was))
                        put = "the last acknowledged write put" if set_by == "write" else "an earlier READ returned"
                        self.doubts[lba + j] = (
                            written, s, self.evidence.get(lba + j, ()) + (self._request,),
                            f"sector {lba + j}: a READ of {len(sectors)} sectors at LBA {lba} returned other data than {put}",
                            "read-wrong-data", "read-data" if set_by == "write" else "read-unstable")
                        self._set(lba + j, s, "read")
                        self.disk[lba + j] = frozenset((written, s))
                    elif j == 0 or was is not None:
                        self._set(lba + j, s, "read")
                    # (else: not learnt past its first sector from a READ of several, see _read)
                return []
            else:
                kind = {"read": "read-unstable", "write": "read-data", "async": "async-write-lost", "overlap": "torn-write"}[origin]
                if kind == "torn-write" and not any(_shares_a_half(sector, e) for e in known):
                    kind = "read-data"  # neither write landed at all: lost, not torn
                expected = next(iter(known)) if len(known) == 1 else None
                offset = next((j for j, (a, b) in enumerate(zip(expected, sector)) if a != b), 0) if expected else 0
                detail = (f"sector {at}: read {sector[offset:offset + 8].hex()}… at byte {offset}, "
                          + ("an earlier read returned" if origin == "read" else "the last acknowledged write put"
                             if origin != "overlap" else "either of two overlapping writes put")
                          + (f" {expected[offset:offset + 8].hex()}…" if expected else f" one of {len(known)} other contents"))
            # resynchronise on what the target holds now: one finding, not one per later read.
            # A write it contradicted may still land (applied late): its data stays possible.
            before = {lba + j: (self.disk.get(lba + j), self.origin.get(lba + j), self.evidence.get(lba + j, ()))
                      for j in range(len(sectors))}
            for j, s in enumerate(sectors):
                was, how, writes = before[lba + j]
                if was is not None and len(was) == 1 and s in was:
                    self._learn(lba + j, s)  # this one it holds as known
                    continue
                self._set(lba + j, s, "read")
                self.superseded.pop(lba + j, None)
                if was is not None and s not in was and how in ("write", "async", "overlap"):
                    self.evidence[lba + j] = writes  # the writes stay what the model believes of it
                    for data in was:
                        self._widen(lba + j, data)
            return [Anomaly(kind, detail, evidence)]
        return []

    def _decide(self, lba: int, sector: bytes) -> List[Anomaly]:
        """A READ of a sector in doubt alone (see ``doubts``)."""
        written, found_then, evidence, detail, if_written, if_same = self.doubts.pop(lba)
        evidence = evidence + (self._request,)
        if sector == written:
            return [Anomaly(if_written, detail + "; a READ of that sector alone finds the write", evidence)]
        if sector == found_then:
            return [Anomaly(if_same, detail + "; a READ of that sector alone finds the same", evidence)]
        return []  # neither: the sector changed once more, judged as any read (read-unstable)

    def _learn_edge(self, ata: _Ata, *, refused: bool, lba: Optional[int] = None) -> None:
        """The readable edge from an unambiguous I/O (one reading, clean)."""
        if len(ata.readings) != 1 or not self._clean(ata) or ata.scnt == 0:
            return
        first = ata.readings[0][0] if lba is None else lba
        end = first + ata.scnt
        if refused:
            self.readable_hi = end - 1 if self.readable_hi is None else min(self.readable_hi, end - 1)
        else:
            self.readable_lo = max(self.readable_lo, end)

    def _write(self, ata: _Ata, reply: Optional[_Reply], in_time: bool, ignored: int) -> List[Anomaly]:
        found = self._write_judged(ata, reply, in_time, ignored)
        # every payload sector any write carried, whatever became of it: see _changed_by_write
        seen = self._payloads_seen
        if len(seen) > PAYLOADS_KEPT:
            seen.clear()
        seen.update(map(hash, self._sectors(ata.payload, min(ata.scnt, len(ata.payload) // SECTOR_SIZE))))
        return found

    def _write_judged(self, ata: _Ata, reply: Optional[_Reply], in_time: bool, ignored: int) -> List[Anomaly]:
        scnt = ata.scnt
        count = scnt
        need = scnt * SECTOR_SIZE
        short = len(ata.payload) < need
        lbas = ata.lbas
        inside = [lba for lba in lbas if self._in_disk(lba, scnt) is not False]
        asynchronous = bool(ata.aflags & AFLAG_A)
        # why the target must not write anything, and the anomaly if it did
        must_not: Optional[Tuple[str, str]] = None
        if ignored:
            must_not = (IGNORED_EFFECT[ignored], "a write it had to ignore (rule %d)" % ignored)
        elif scnt > self.max_sectors:
            must_not = ("scnt-over-max", f"a write of {scnt} sectors (maximum {self.max_sectors})")
        elif short:
            must_not = ("short-write-accepted", f"a write of {scnt} sectors carrying {len(ata.payload)} bytes")
        elif not inside:
            must_not = ("idnf-missing", f"a write of {scnt} sectors at LBA {lbas[0]} past the end")
        data = ata.payload[:need] if not short else ata.payload
        sectors = self._sectors(data, -(-len(data) // SECTOR_SIZE))
        sectors = [s for s in sectors if len(s) == SECTOR_SIZE] + [s.ljust(SECTOR_SIZE, b"\0") for s in sectors if len(s) < SECTOR_SIZE]
        found: List[Anomaly] = []
        if reply is None:
            for lba in lbas:
                for i, sector in enumerate(sectors[:max(count, 1)]):
                    if must_not is not None:
                        self._forbid(lba + i, sector, *must_not)
                    else:
                        # it may have landed over an A=1 write still unflushed: FLUSH no longer decides
                        self._widen(lba + i, sector)
                        self.pending_async.pop(lba + i, None)
            return found
        if reply.refused:
            for lba in lbas:
                for i, sector in enumerate(sectors):
                    self._forbid(lba + i, sector, *(must_not or ("refused-write-applied", f"a write refused with E={int(reply.error_flag)} error {reply.error}, status 0x{reply.status:02x}")))
            if must_not is not None or not self._clean(ata, reserved_too=True) or self._refusal_ok(ata, reply, ignored) or scnt == 0:
                if must_not is not None and must_not[0] == "idnf-missing" and scnt <= self.max_sectors and not short and self._clean(ata) and self.capacity is not None:
                    why = judge(SPEC_IDNF, reply.raw, ata.raw)
                    if why:
                        found.append(Anomaly("idnf-missing", f"WRITE of {scnt} at LBA {lbas[0]} past the end ({self.capacity}): {why}"))
                return found
            if any(self._in_disk(lba, scnt) is None for lba in inside):
                return found
            lba = inside[0]
            kind = self._edge_kind(ata, lba, ata.readings[0][1], refused=True)
            found.append(Anomaly(kind, f"WRITE of {scnt} at LBA {lba} inside the disk ({self.capacity} sectors) refused: "
                                       f"E={int(reply.error_flag)} error {reply.error}, status 0x{reply.status:02x} error 0x{reply.ata_error:02x}"))
            return found
        # acknowledged
        if must_not is not None:
            kind, why = must_not
            if ignored in REPLY_REPORTED:
                # the reply itself is reported (REPLY_REPORTED); whether it was acted on
                # too, a read will tell (as when it goes unanswered)
                for lba in lbas:
                    for i, sector in enumerate(sectors[:max(count, 1)]):
                        self._forbid(lba + i, sector, kind, why)
                return found
            if kind == "idnf-missing":
                kind = self._edge_kind(ata, lbas[0], ata.readings[0][1], refused=False)
            if kind:
                found.append(Anomaly(kind, f"{why} was acknowledged"))
            for lba in lbas:  # whatever it did, the model no longer knows these sectors
                for s in range(lba, lba + max(count, len(sectors))):
                    self.disk.pop(s, None)
                    self.pending_async.pop(s, None)
            return found
        if ignored == 0 and self._clean(ata) and (reply.status != 0x40 or reply.ata_error):
            why = judge(SPEC_WRITE_OK, reply.raw, ata.raw)
            if why:
                found.append(Anomaly("write-status", f"WRITE of {scnt} at LBA {lbas[0]}: {why}"))
        extra = ata.payload[need:] if len(ata.raw) > ETH_MIN_FRAME else b""
        for lba in lbas:  # bytes beyond the sector count are not data (rule 16)
            for i in range(0, len(extra), SECTOR_SIZE):
                chunk, at = extra[i:i + SECTOR_SIZE], lba + count + i // SECTOR_SIZE
                old = self.disk.get(at)
                if len(chunk) < SECTOR_SIZE:
                    if old is None or len(old) != 1:
                        continue
                    chunk += next(iter(old))[len(chunk):]
                self._forbid(at, chunk, "payload-beyond-count", f"bytes a write of {count} sector(s) carried beyond its count")
        for lba in lbas:
            for i, sector in enumerate(sectors[:count]):
                at = lba + i
                late = self.pending_async.get(at)
                if len(lbas) > 1:
                    self._widen(at, sector)
                    self.pending_async.pop(at, None)
                elif asynchronous:
                    self._supersede(at, sector)
                    self._widen(at, sector)
                    self._note(at)  # a FLUSH will make it what the sector holds
                    self.pending_async[at] = sector
                else:
                    before, shown = self.disk.get(at), self.evidence.get(at, ())
                    self._supersede(at, sector)
                    self._set(at, sector, "write")
                    # a read that finds this write shows the target keeps writes only if the
                    # sector held something else before (else the write may have been ignored),
                    # and no earlier write carried the same bytes (the fuzzer's pattern payloads
                    # repeat: an earlier one, applied, may be what the read finds)
                    if before is not None and len(before) == 1 and sector not in before and hash(sector) not in self._payloads_seen:
                        self._changed_by_write[at] = (sector, shown + (self._request,))
                    if late is not None and late != sector:
                        # found there later: the A=1 write landed after this one, or this one was lost.
                        # The wire cannot tell the two apart; the step that makes the difference is
                        # the A=1 write's (it had to land before what follows it: rule 33)
                        self._forbid(at, late, "async-write-late", "an A=1 write acknowledged before the last write (applied late, or the last write lost)")
        return found

    def _identify(self, ata: _Ata, reply: Optional[_Reply], in_time: bool, ignored: int) -> List[Anomaly]:
        if reply is None or ignored:
            return []
        # W=1 says data flows to the device: a target may send no block back (vblade)
        clean = not (ata.raw[14] & 0x3 or ata.aflags & (AFLAGS_MBZ | 0x1))
        if reply.refused:
            if not clean or ata.scnt != 1:
                return []
            if reply.error_flag and reply.error == ERR_TARGET_RESERVED and self._reserved_against_us(ata.raw):
                return []  # identify-reserved-refused: IDENTIFY's exemption is the implementation's choice (rule 57)
            return [Anomaly("identify-refused", f"IDENTIFY DEVICE (scnt 1, LBA bytes 0x{ata.lba_bytes:012x}) refused: "
                                                f"E={int(reply.error_flag)} error {reply.error}, status 0x{reply.status:02x} error 0x{reply.ata_error:02x}")]
        if len(reply.data) < IDENTIFY_LEN:
            if not clean:
                return []
            return [Anomaly("identify-refused", f"IDENTIFY DEVICE (scnt {ata.scnt}) answered as a success with {len(reply.data)} data bytes, not the 512-byte block")]
        claimed = _identify_block(bytes(reply.data[:IDENTIFY_LEN])).capacity_sectors
        if self.capacity is None:
            self.capacity = claimed
        found: List[Anomaly] = []
        why = None if _identify_fits(reply.raw, self.capacity) else judge(
            _spec_identify(self.capacity), reply.raw, ata.raw, spec_key=("identify", self.capacity))
        if why:
            found.append(Anomaly("identify-capacity", f"IDENTIFY words against the capacity {self.capacity}: {why}"))
        elif claimed < self.readable_lo or (self.readable_hi is not None and claimed > self.readable_hi):
            found.append(Anomaly("identify-capacity", f"IDENTIFY reports {claimed} sectors; the I/O shows the readable size is in "
                                                      f"[{self.readable_lo}, {self.readable_hi}]"))
        return found

    def _check_power(self, ata: _Ata, reply: Optional[_Reply], in_time: bool, ignored: int) -> List[Anomaly]:
        if reply is None or ignored or reply.error_flag or not self._clean(ata):
            return []
        why = judge(SPEC_CHECK_POWER, reply.raw, ata.raw)
        return [Anomaly("check-power", why)] if why else []

    def _flush(self, ata: _Ata, reply: Optional[_Reply], in_time: bool, ignored: int) -> List[Anomaly]:
        if reply is None or reply.error_flag:
            return []
        # any reply with E=0 means the writes before it are readable (rule 31, 33)
        if not ignored:
            for lba, data in self.pending_async.items():
                self._set_async(lba, data)
            self.pending_async.clear()
        if ignored or not self._clean(ata):
            return []
        why = judge(SPEC_FLUSH, reply.raw, ata.raw)
        return [Anomaly("flush-status", why)] if why else []

    def _set_async(self, lba: int, data: bytes) -> None:
        self.disk[lba] = frozenset((data,))
        self.origin[lba] = "async"
        self._note(lba)

    def _unsupported(self, ata: _Ata, reply: Optional[_Reply], in_time: bool, ignored: int) -> List[Anomaly]:
        if reply is None or ignored or reply.error_flag or not self._clean(ata):
            return []
        why = judge(SPEC_ABRT, reply.raw, ata.raw)
        return [Anomaly("unsupported-opcode", f"opcode 0x{ata.opcode:02x}: {why}")] if why else []

    # -- Query Config (§3.2) -------------------------------------------------------------

    def _query_config(self, request: bytes, reply: Optional[_Reply], in_time: bool, ignored: int) -> List[Anomaly]:
        if reply is None or reply.error_flag or len(reply.raw) < CONFIG_HEADER_END:
            return []
        # rule 17: the Sector Count a target advertises must fit the link's MTU
        advertised = reply.raw[28] or 2
        if AOE_HEADER_LEN - 14 + 12 + advertised * SECTOR_SIZE > self.info.mtu:
            return [Anomaly("sector-count-beyond-mtu", f"Sector Count {advertised}: a read of that many sectors is "
                                                       f"{22 + advertised * SECTOR_SIZE} bytes, the MTU is {self.info.mtu}")]
        return []


#: kinds reported outside the model: by one reply's header (oracle.check_reply), by the
#: engine (silence, liveness, canaries) or by a burst (which a serial replay cannot repeat)
NOT_MODEL_KINDS = frozenset({
    "unresponsive", "no-reply", "undecodable-reply", "tag-not-echoed", "unmatched-reply", "duplicate-reply", "r-not-set",
    "command-not-echoed", "wrong-version", "error-byte-without-e", "mbz-set", "wrong-address", "wrong-reply-dst",
    "wrong-reply-src", "answered-response", "answered-other-address", "oversize-reply", "runt-reply", "short-read",
    "config-reply-fields", "write-outside-window", "error-flag-without-code", "duplicate-dropped", "bufcnt-not-honoured",
    "torn-write", "no-advertisement",
})
#: what the model (with model_admin) reports; a finding of these replays through a fresh model (shrink.Replayer.fires)
MODEL_KINDS = frozenset(KINDS) - NOT_MODEL_KINDS | {"answered-other-ethertype"}

__all__ = ["TargetModel", "MODEL_KINDS", "Footprint", "EVERYTHING", "judge", "KNOWN_OPCODES"]
