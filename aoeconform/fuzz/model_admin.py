"""The fuzzer's model of a target's administrative state: the config string,
the Mac Mask list and the reservation (§§3.2-3.4), and the oracles that
judge every reply against it.

``AdminModel.step(request, replies)`` judges the replies to one request
(matched by tag; an empty list with ``answered_in_time`` means the target
stayed silent) against what the model says, then updates the model from
what the target acknowledged. Requests must be stepped in the order the
target received them.

What the model does not know it says so (``None``) and judges nothing that
depends on it: a target's config string, mask and reservation are learnt
from the first reply that carries them (a read, a successful set), and
forgotten again whenever something may have changed them unseen (a
state-changing request left unanswered, a restart, a replay). Once a reply
contradicts the model, the anomaly is reported and the model takes the
target's word, so one defect does not become a cascade of findings.

Every conforming reading of the notes (§10) is accepted: an equal config
set may succeed or fail with Error 4 (rule 39), unknown CCmd values may get
Error 1 or 2 or nothing (41), IDENTIFY, CHECK POWER and FLUSH from outside a
reservation may be served or refused (57), a full mask list may stop an
add with MError 3 (49), a request under Ver other than 1 may be refused or,
when it only reads, served (12).

Pure: no sockets, no clocks.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

from aoeconform.session.facts import TargetFacts
from aoeconform.wire.constants import (
    AOE_HEADER_LEN,
    AOE_VERSION,
    ATA_HEADER_END,
    ATA_READ_SECTORS,
    ATA_READ_SECTORS_EXT,
    ATA_STATUS_FAILURE_MASK,
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
    CONFIG_HEADER_END,
    CONFIG_STRING_MAX,
    DCMD_ADD,
    DCMD_DELETE,
    DCMD_NO_DIRECTIVE,
    ERR_BAD_ARGUMENT,
    ERR_CONFIG_STRING_PRESENT,
    ERR_TARGET_RESERVED,
    ERR_UNRECOGNIZED_COMMAND,
    ETH_MIN_FRAME,
    ETH_P_AOE,
    FLAG_ERROR,
    FLAG_RESPONSE,
    MASK_DIRECTIVE_LEN,
    MCMD_EDIT,
    MCMD_READ,
    MERROR_BAD_DCMD,
    MERROR_LIST_FULL,
    MERROR_NONE,
    RCMD_FORCE_SET,
    RCMD_READ,
    RCMD_SET,
    SHELF_BROADCAST,
    SLOT_BROADCAST,
)

from .charge import owed_rule
from .oracle import Anomaly, must_answer

_AOE = ETH_P_AOE.to_bytes(2, "big")
MASK_HEAD = AOE_HEADER_LEN + 4  # reserved, MCmd, MError, Dir Count
RESERVE_HEAD = AOE_HEADER_LEN + 2  # RCmd, NMacs
ZERO_MAC = bytes(6)
IO_OPCODES = frozenset({ATA_READ_SECTORS, ATA_READ_SECTORS_EXT, ATA_WRITE_SECTORS, ATA_WRITE_SECTORS_EXT})



def changes_state(frame: bytes) -> bool:
    """Whether ``frame`` may change the config string, the mask or the
    reservation on some target (conforming or not): config CCmd other than
    read, test or prefix; Mac Mask other than read; Reserve/Release other
    than read. The engine lets such a request finish before the next goes."""
    if len(frame) < AOE_HEADER_LEN or frame[12:14] != _AOE:
        return False
    return _may_change(frame)


def _may_change(frame: bytes) -> bool:
    """``changes_state`` by the AoE header and argument alone, whatever the
    EtherType: what a target that acts on another EtherType may change."""
    command = frame[19]
    if command == CMD_QUERY_CONFIG:
        return len(frame) < CONFIG_HEADER_END or frame[29] & 0xF not in (CCMD_READ, CCMD_TEST, CCMD_TEST_PREFIX)
    if command == CMD_MAC_MASK:
        return len(frame) < MASK_HEAD or frame[25] != MCMD_READ
    if command == CMD_RESERVE_RELEASE:
        return len(frame) < RESERVE_HEAD or frame[24] != RCMD_READ
    return False


def _unique(macs: Sequence[bytes]) -> List[bytes]:
    out: List[bytes] = []
    for mac in macs:
        if mac not in out:
            out.append(mac)
    return out


def _hex(mac: bytes) -> str:
    return mac.hex(":")


def _macs(macs: Sequence[bytes]) -> str:
    return "[" + ", ".join(_hex(m) for m in macs) + "]"


class _Reply:
    """The first reply, parsed as far as the request's command says."""

    def __init__(self, raw: bytes):
        self.raw = raw
        self.n = len(raw)
        self.error = bool(raw[14] & FLAG_ERROR) if self.n > 14 else False
        self.code = raw[15] if self.n > 15 else 0
        self.version = raw[14] >> 4 if self.n > 14 else 0

    def config_string(self) -> Optional[bytes]:
        if self.n < CONFIG_HEADER_END:
            return None
        length = int.from_bytes(self.raw[30:32], "big")
        if length > CONFIG_STRING_MAX or CONFIG_HEADER_END + length > self.n:
            return None
        return bytes(self.raw[CONFIG_HEADER_END:CONFIG_HEADER_END + length])

    def mask(self):
        """(MError, Dir Count, entries as (DCmd, MAC) that fit in the frame)."""
        if self.n < MASK_HEAD:
            return None
        count = self.raw[27]
        fits = min(count, (self.n - MASK_HEAD) // MASK_DIRECTIVE_LEN)
        entries = [(self.raw[MASK_HEAD + 8 * i + 1], bytes(self.raw[MASK_HEAD + 8 * i + 2:MASK_HEAD + 8 * i + 8])) for i in range(fits)]
        return self.raw[26], count, entries

    def reservation(self):
        """(NMacs, MACs that fit in the frame)."""
        if self.n < RESERVE_HEAD:
            return None
        count = self.raw[25]
        fits = min(count, (self.n - RESERVE_HEAD) // 6)
        return count, [bytes(self.raw[RESERVE_HEAD + 6 * i:RESERVE_HEAD + 6 * i + 6]) for i in range(fits)]


class AdminModel:
    """Config string, Mac Mask list and reservation of one target, each None while unknown."""

    def __init__(self, info: TargetFacts, *, config: Optional[bytes] = None, mask: Optional[Sequence[bytes]] = None,
                 reservation: Optional[Sequence[bytes]] = None):
        self.info = info
        self.config: Optional[bytes] = None
        self.mask: Optional[List[bytes]] = None
        self.reservation: Optional[List[bytes]] = None
        #: the reservation was read from a reply, not set by a request the target
        #: acknowledged: a reply that counts padding as MACs would mislead the
        #: enforcement oracles, so they wait for a set to teach it
        self.reservation_learnt = False
        #: a config read contradicted the model with the request's own string: it may echo it
        self.read_echoes = False
        #: the target listed a MAC twice (rule 48): what its list says no longer tells whom it
        #: lets in (a delete of that MAC may leave it listed, or not enforced), until a restart
        self.list_doubled = False
        #: MACs other than the host's the target has answered while the list let them in: it
        #: does not ignore them, so a silence to one is the request's, not the list's (rule 52)
        self.heard: set = set()
        self.prime(config, mask, reservation)

    def prime(self, config: Optional[bytes], mask: Optional[Sequence[bytes]], reservation: Optional[Sequence[bytes]]) -> None:
        """Start from what was read before the first case (the session's
        snapshot); None leaves a part as it is. A list read may count padding
        as entries: no initiator has the all-zero MAC, and a non-empty
        reservation waits for an acknowledged set to confirm it."""
        if config is not None:
            self.config = bytes(config)
        if mask is not None:
            self.mask = _unique([bytes(m) for m in mask if bytes(m) != ZERO_MAC])
        if reservation is not None:
            self.reservation = [bytes(m) for m in reservation]
            self.reservation_learnt = bool(self.reservation)

    def forget(self) -> None:
        """Something outside the stepped requests may have changed the state
        (a restart, a replay, another initiator): learn it again."""
        self.config = self.mask = self.reservation = None
        self.list_doubled = False

    # -- what the target will act on ----------------------------------------------

    def _processed(self, frame: bytes) -> bool:
        """Whether a conforming target acts on ``frame`` at all (rules 1, 2, 10)."""
        if len(frame) < AOE_HEADER_LEN or frame[12:14] != _AOE or frame[14] & FLAG_RESPONSE:
            return False
        if not frame[0] & 1 and frame[0:6] != self.info.mac:
            return False
        shelf, slot = int.from_bytes(frame[16:18], "big"), frame[18]
        return shelf in (self.info.shelf, SHELF_BROADCAST) and slot in (self.info.slot, SLOT_BROADCAST)

    def masked_out(self, frame: bytes) -> Optional[bool]:
        """True when the mask list silences ``frame``'s source, None while the list is unknown."""
        if self.mask is None or self.list_doubled:
            return None
        return bool(self.mask) and bytes(frame[6:12]) not in self.mask

    def may_refuse_reserved(self, frame: bytes) -> bool:
        """Whether an E=1 Error 6 is a conforming answer to ``frame`` (an ATA
        request) as far as the model knows: the ATA oracles then stay silent."""
        held = self._held()
        if held is None:
            return True
        return bool(held) and bytes(frame[6:12]) not in held

    def _held(self) -> Optional[List[bytes]]:
        """The reservation, when an acknowledged request taught it."""
        return None if self.reservation_learnt else self.reservation

    # -- the step -------------------------------------------------------------------

    def step(self, request: bytes, replies: Sequence[bytes], answered_in_time: bool = True) -> List[Anomaly]:
        """Judge ``replies`` (those that carry ``request``'s tag) against the
        model, then update it. ``answered_in_time`` False means a missing
        reply may still come: silence is not judged, and what the request
        may have changed is forgotten."""
        found: List[Anomaly] = []
        if len(request) < AOE_HEADER_LEN:
            return found
        reply = _Reply(bytes(replies[0])) if replies else None
        silent = reply is None and answered_in_time
        if not self._processed(request):
            if reply is not None or not answered_in_time:
                # answered anyway (another oracle says so), or answered by a reply
                # not read as its own: it may have been acted on, what changed is unknown
                self._forget_for(request)
            return found
        masked = self.masked_out(request)
        if masked:
            if reply is not None:
                found.append(Anomaly("mask-not-enforced", f"{_hex(request[6:12])} is not on the list {_macs(self.mask or [])}, and was answered"))
            if not silent:
                self._forget_for(request)  # answered, or a reply may still come: acted on, perhaps
            return found
        if reply is None and (not silent or (masked is None and bytes(request[6:12]) != self.info.host_mac)):
            # silence that may still end, or that an unknown list may explain (the host is never masked out)
            self._forget_for(request)
            return found
        command = request[19]
        if command == CMD_QUERY_CONFIG:
            self._config(request, reply, found)
        elif command == CMD_MAC_MASK:
            self._mask(request, reply, found)
        elif command == CMD_RESERVE_RELEASE:
            self._reserve(request, reply, found)
        elif command == CMD_ATA:
            self._ata(request, reply, found)
        src = bytes(request[6:12])
        if reply is not None and masked is False and src != self.info.host_mac:
            self.heard.add(src)
        if reply is None and silent and masked is False and src != self.info.host_mac and not found:
            # the host's silences are the engine's (it confirms them by replay); another MAC's are judged here
            if must_answer(request, self.info):
                if src in self.heard:
                    # the target answers this MAC: it left this request unanswered, as it would the host's
                    found.append(Anomaly("no-reply", f"no reply to {_hex(src)}'s request with an empty list; it answers that MAC otherwise",
                                         rule_number=owed_rule(request, self.info)))
                elif (int.from_bytes(request[16:18], "big"), request[18]) != (self.info.shelf, self.info.slot):
                    # addressed by wildcard: a target that ignores wildcards and one that ignores other
                    # MACs are silent alike here; the address is what a target reads first (rule 10)
                    found.append(Anomaly("wildcard-unanswered", f"no reply to {_hex(request[6:12])}'s request to "
                                                                f"{int.from_bytes(request[16:18], 'big')}.{request[18]} with an empty list"))
                else:
                    found.append(Anomaly("mask-empty-silent", f"no reply to {_hex(request[6:12])} with an empty list"))
        return found

    def _forget_for(self, request: bytes) -> None:
        if not _may_change(request):
            return
        command = request[19]
        if command == CMD_QUERY_CONFIG:
            self.config = None
        elif command == CMD_MAC_MASK:
            self.mask = None
        else:
            self.reservation = None

    # -- Query Config (§3.2) ----------------------------------------------------------

    def _refusal(self, request: bytes, reply: _Reply, kind: str, detail: str) -> Anomaly:
        """A must-succeed config request answered E=1: name the likely cause."""
        length = int.from_bytes(request[30:32], "big")
        if request[29] >> 4 != AOE_VERSION and reply.code == ERR_BAD_ARGUMENT:
            return Anomaly("config-version-required", f"version nibble {request[29] >> 4}: Error {reply.code}")
        if len(request) > ETH_MIN_FRAME and len(request) - CONFIG_HEADER_END > length and reply.code == ERR_BAD_ARGUMENT:
            return Anomaly("trailing-bytes-refused", f"config length {length}, {len(request) - CONFIG_HEADER_END} bytes present: Error {reply.code}")
        return Anomaly(kind, f"{detail}: Error {reply.code}")

    @staticmethod
    def _stored_wrong(what: str, string: bytes, got: bytes, current: Optional[bytes]) -> Anomaly:
        """A successful set whose reply holds other bytes than were sent: a mix
        of the string before and the one sent (two sets that were not atomic,
        rule 44), or the bytes mangled (rule 43)."""
        if current is not None and got != current and len(got) in (len(string), len(current)) and all(
                (i < len(string) and b == string[i]) or (i < len(current) and b == current[i]) for i, b in enumerate(got)):
            return Anomaly("config-sets-mixed", f"{what} {string[:64]!r} over {current[:64]!r}: the reply holds {got[:64]!r}, a mix of the two")
        return Anomaly("config-string-mangled", f"{what} {string[:64]!r} ({len(string)} bytes), reply holds {got[:64]!r} ({len(got)} bytes)")

    def _config(self, request: bytes, reply: Optional[_Reply], found: List[Anomaly]) -> None:
        n = len(request)
        if n < CONFIG_HEADER_END:
            return  # truncated: no side effect (rule 15); the reply is the header oracles'
        ccmd = request[29] & 0xF
        length = int.from_bytes(request[30:32], "big")
        string = bytes(request[CONFIG_HEADER_END:CONFIG_HEADER_END + length])
        got = reply.config_string() if reply is not None and not reply.error else None
        current = self.config
        if request[14] >> 4 != AOE_VERSION:
            # rule 12: refused, or served when it only reads; never a change
            if reply is not None and not reply.error and ccmd not in (CCMD_READ, CCMD_TEST, CCMD_TEST_PREFIX):
                if got is not None and current is not None and got != current:
                    found.append(Anomaly("side-effect-under-ver", f"Ver {request[14] >> 4} CCmd {ccmd}: string {current!r} became {got!r}"))
                self.config = got
            return
        if length > CONFIG_STRING_MAX or length > n - CONFIG_HEADER_END:
            # rule 42: silent or Error 2, nothing stored
            if ccmd in (CCMD_SET, CCMD_FORCE_SET) and reply is not None and not reply.error:
                found.append(Anomaly("config-length-unchecked", f"CCmd {ccmd} with length {length}, {n - CONFIG_HEADER_END} bytes present, succeeded"))
                self.config = got
            return
        if ccmd == CCMD_READ:
            if reply is None:
                return
            if reply.error:
                found.append(self._refusal(request, reply, "config-read-refused", "CCmd 0"))
            elif got is not None:
                if current is not None and got != current:
                    found.append(Anomaly("config-read-string", f"read {got[:64]!r}, current {current[:64]!r}"))
                    # the request's own string may be an echo, not the target's (rule 36)
                    self.read_echoes = self.read_echoes or got == string
                # once a read has echoed, a reply that holds the request's string tells nothing
                self.config = None if self.read_echoes and got == string and got != current else got
        elif ccmd in (CCMD_TEST, CCMD_TEST_PREFIX):
            test = ccmd == CCMD_TEST
            if current is None:
                if reply is not None and not reply.error and got is not None and (got == string if test else got.startswith(string)):
                    self.config = got
                return
            match = current == string if test else current.startswith(string)
            name = "test" if test else "prefix"
            if match:
                if reply is None:
                    found.append(Anomaly(f"config-{name}-unanswered", f"CCmd {ccmd} with {string[:64]!r}, current {current[:64]!r}"))
                elif reply.error:
                    found.append(self._refusal(request, reply, f"config-{name}-unanswered", f"CCmd {ccmd} matching"))
                elif got is not None and got != current:
                    found.append(Anomaly("config-reply-string", f"CCmd {ccmd} reply carries {got[:64]!r}, current {current[:64]!r}"))
                    self.config = got
            elif reply is not None and not reply.error:
                found.append(Anomaly(f"config-{name}-answered", f"CCmd {ccmd} with {string[:64]!r}, current {current[:64]!r}"))
        elif ccmd == CCMD_SET:
            if reply is None:
                if current == b"" or current == string:
                    self.config = None  # a set that may have been applied
                return
            if reply.error:
                if reply.code == ERR_CONFIG_STRING_PRESENT and current != b"":
                    return  # a different string (rule 39), or an equal one (its literal reading)
                if current is not None and (current == b"" or current == string):
                    found.append(self._refusal(request, reply, "config-set-refused", f"CCmd 3 with the string {'empty' if not current else 'equal'}"))
                return
            if got is not None and got != string:
                found.append(self._stored_wrong("set", string, got, current))
            elif current is not None and current != b"" and current != string:
                found.append(Anomaly("config-set-overwrote", f"{current[:64]!r} replaced by {string[:64]!r}"))
            self.config = got
        elif ccmd == CCMD_FORCE_SET:
            if reply is None:
                self.config = None
                return
            if reply.error:
                found.append(self._refusal(request, reply, "config-force-refused", "CCmd 4"))
                return
            if got is not None and got != string:
                found.append(self._stored_wrong("force set", string, got, current))
            self.config = got
        else:
            if reply is not None and not reply.error:
                found.append(Anomaly("config-ccmd-accepted", f"CCmd {ccmd} answered with E=0"))
                if got is not None and current is not None and got != current:
                    self.config = got

    # -- Mac Mask List (§3.3) ------------------------------------------------------------

    def _judge_list(self, reply: _Reply, expected: Optional[List[bytes]], found: List[Anomaly], what: str, edit: bool = False) -> None:
        """A successful mask reply: Dir Count and entries against ``expected`` (rules 47, 48); learn the list."""
        parsed = reply.mask()
        if parsed is None:
            self.mask = None
            return
        _merror, count, entries = parsed
        macs = [mac for _dcmd, mac in entries]
        duplicates = len(set(macs)) != len(macs)
        listed = [mac for mac in macs if mac != ZERO_MAC]  # padding a wrong Dir Count took for entries is not a MAC listed twice
        self.list_doubled = self.list_doubled or len(set(listed)) != len(listed)
        # An edit's reply that lists as many MACs as it counts, none of them the all-zero
        # padding, counts its list right (rule 47): if that list is not what the directives
        # make, the step that failed is the edit (rule 48)
        edit_result = edit and count == len(entries) and ZERO_MAC not in macs
        if duplicates:
            found.append(Anomaly("mask-duplicate", f"{what}: the list {_macs(macs)} names a MAC twice"))
        elif expected is not None and (count != len(expected) or set(macs) != set(expected)) and edit_result:
            found.append(Anomaly("mask-edit-result", f"{what}: the edit left {_macs(macs)}; its directives make {_macs(expected)}"))
        elif expected is not None and count != len(expected):
            found.append(Anomaly("mask-dircount", f"{what}: Dir Count {count}, the list holds {len(expected)} {_macs(expected)}"))
        elif expected is not None and set(macs) != set(expected):
            found.append(Anomaly("mask-list", f"{what}: lists {_macs(macs)}, expected {_macs(expected)}"))
        elif expected is None and ZERO_MAC in macs:
            found.append(Anomaly("mask-dircount", f"{what}: Dir Count {count} counts the all-zero MAC (past the entries listed?)"))
        elif any(dcmd != DCMD_NO_DIRECTIVE for dcmd, _mac in entries):
            found.append(Anomaly("mask-list", f"{what}: entries carry DCmd {sorted({d for d, _ in entries})}, not 0"))
        if count != len(entries):
            self.mask = None  # a count the frame does not hold: nothing to learn
        else:
            # No initiator sends from the all-zero MAC, and the fuzzer never adds
            # it: listed, it is padding a wrong Dir Count took for an entry.
            self.mask = _unique([mac for mac in macs if mac != ZERO_MAC])

    def _mask(self, request: bytes, reply: Optional[_Reply], found: List[Anomaly]) -> None:
        n = len(request)
        if n < MASK_HEAD:
            return
        mcmd, count = request[25], request[27]
        if request[14] >> 4 != AOE_VERSION:
            if reply is not None and not reply.error and mcmd == MCMD_EDIT:
                parsed = reply.mask()
                if parsed is None or parsed[0] != MERROR_NONE:
                    # a directive failed: Dir Count is its index, not the list's size,
                    # and those before it may have been applied
                    self.mask = None
                    return
                before = None if self.mask is None else list(self.mask)
                self._judge_list(reply, None, found, f"Ver {request[14] >> 4} MCmd 1")
                if before is not None and self.mask is not None and set(before) != set(self.mask):
                    found.append(Anomaly("side-effect-under-ver", f"Ver {request[14] >> 4} Mac Mask edit: list {_macs(before)} became {_macs(self.mask)}"))
            return
        if mcmd == MCMD_READ:
            if reply is not None and not reply.error:
                self._judge_list(reply, self.mask, found, "MCmd 0")
            return
        if mcmd != MCMD_EDIT:
            if reply is not None and not reply.error:
                found.append(Anomaly("mask-mcmd-accepted", f"MCmd {mcmd} answered with E=0"))
            return
        if MASK_HEAD + MASK_DIRECTIVE_LEN * count > n:
            # rule 53: refused without reading past the frame
            if reply is not None and not reply.error:
                found.append(Anomaly("mask-dircount-unchecked", f"Dir Count {count} in a {n}-byte frame succeeded"))
                self.mask = None
            return
        if reply is None:
            self.mask = None
            return
        if reply.error:
            if reply.code != ERR_UNRECOGNIZED_COMMAND:  # Error 1: the target has no Mac Mask list (optional)
                found.append(Anomaly("mask-edit-refused", f"Error {reply.code} to {count} valid directive(s)"))
            return
        parsed = reply.mask()
        if parsed is None:
            self.mask = None
            return
        merror, r_count, _entries = parsed
        # the directives in order, on a copy of the list
        listed = None if self.mask is None else list(self.mask)
        failing = None  # (index, MError) of the first directive that must fail
        for index in range(count):
            offset = MASK_HEAD + MASK_DIRECTIVE_LEN * index
            dcmd, mac = request[offset + 1], bytes(request[offset + 2:offset + 8])
            if dcmd == DCMD_NO_DIRECTIVE:
                continue
            if dcmd == DCMD_ADD:
                if merror == MERROR_LIST_FULL and r_count == index and (listed is None or mac not in listed):
                    failing = (index, MERROR_LIST_FULL)  # a list may be full at any size (vblade: 32)
                    break
                if listed is not None and mac not in listed:
                    listed.append(mac)
            elif dcmd == DCMD_DELETE:
                if listed is not None and mac in listed:
                    listed.remove(mac)
            else:
                failing = (index, MERROR_BAD_DCMD)
                break
        if failing is None:
            beyond = MASK_HEAD + MASK_DIRECTIVE_LEN * r_count
            if merror != MERROR_NONE and r_count >= count and beyond + MASK_DIRECTIVE_LEN <= n and request[beyond + 1] > DCMD_DELETE:
                # the failing directive it names lies past the Dir Count, where the frame does hold a
                # bad one: the target counted directives by the frame's size (rule 16), not by Dir Count
                found.append(Anomaly("directives-beyond-count", f"MError {merror} at index {r_count}: the frame's bytes past "
                                                                 f"Dir Count {count} were read as directives"))
                self.mask = None
                return
            if merror != MERROR_NONE:
                found.append(Anomaly("mask-wrong-index", f"MError {merror} (index {r_count}) for {count} valid directive(s)"))
                self.mask = None
                return
            self._judge_list(reply, listed, found, "MCmd 1", edit=True)
            return
        index, want = failing
        if merror != want or r_count != index:
            found.append(Anomaly("mask-wrong-index", f"directive {index} fails with MError {want}; reply says MError {merror} at index {r_count}"))
            self.mask = None
            return
        self.mask = listed  # the directives before the failing one stay applied

    # -- Reserve/Release (§3.4) ------------------------------------------------------------

    def _judge_reservation(self, reply: _Reply, expected: Optional[List[bytes]], found: List[Anomaly], what: str,
                           release: bool = False, taught: bool = False) -> None:
        """A successful Reserve/Release reply: NMacs and MACs against ``expected``
        (rule 54); learn the list as the target lists it. ``taught``: ``expected``
        is the MAC list a set the target just acknowledged sent, which the target
        may keep as sent or without its repeats (vblade keeps them)."""
        parsed = reply.reservation()
        if parsed is None:
            self.reservation = None
            return
        count, macs = parsed
        if count != len(macs):
            self.reservation = None  # a count the frame does not hold: nothing to learn
        elif expected is not None and (count not in ({len(expected), len(_unique(expected))} if taught else {len(expected)})
                                       or set(macs) != set(expected)):
            kind = "reserve-release-ignored" if release and any(mac != ZERO_MAC for mac in macs) else "reserve-list"
            found.append(Anomaly(kind, f"{what}: NMacs {count} {_macs(macs)}, expected {len(expected)} {_macs(expected)}"))
            # Take the target's word, but not for the all-zero MAC: a reply that
            # contradicts the model and lists it may have counted padding, or hold
            # a MAC some request set: the list is unknown until a read shows it
            # (taken as the target's own word, the reading judged next)
            kept = [mac for mac in macs if mac != ZERO_MAC]
            self.reservation = kept if len(kept) == len(macs) else None
            self.reservation_learnt = True
        else:
            self.reservation = list(macs)
            self.reservation_learnt = expected is None or (self.reservation_learnt and not taught)

    def _reserve(self, request: bytes, reply: Optional[_Reply], found: List[Anomaly]) -> None:
        n = len(request)
        if n < RESERVE_HEAD:
            return
        rcmd, count = request[24], request[25]
        src = bytes(request[6:12])
        if request[14] >> 4 != AOE_VERSION:
            if reply is not None and not reply.error and rcmd in (RCMD_SET, RCMD_FORCE_SET):
                before = None if self.reservation is None else list(self.reservation)
                self._judge_reservation(reply, None, [], "")
                if before is not None and self.reservation is not None and set(before) != set(self.reservation):
                    found.append(Anomaly("side-effect-under-ver", f"Ver {request[14] >> 4} RCmd {rcmd}: {_macs(before)} became {_macs(self.reservation)}"))
            return
        if rcmd == RCMD_READ:
            if reply is not None and not reply.error:
                self._judge_reservation(reply, self.reservation, found, "RCmd 0")
            return
        if rcmd not in (RCMD_SET, RCMD_FORCE_SET):
            if reply is not None and not reply.error:
                found.append(Anomaly("reserve-rcmd-accepted", f"RCmd {rcmd} answered with E=0"))
            return
        if RESERVE_HEAD + 6 * count > n:
            # rule 58: Error 2 and no change
            if reply is not None and not reply.error:
                found.append(Anomaly("reserve-nmacs-unchecked", f"NMacs {count} in a {n}-byte frame succeeded"))
                self.reservation = None
            return
        wanted = [bytes(request[RESERVE_HEAD + 6 * i:RESERVE_HEAD + 6 * i + 6]) for i in range(count)]
        held = self._held()
        if reply is None:
            self.reservation = None
            return
        if rcmd == RCMD_SET:
            allowed = None if held is None else (not held or src in held)
            if reply.error:
                if allowed and reply.code != ERR_UNRECOGNIZED_COMMAND:  # Error 1: no Reserve/Release (optional)
                    found.append(Anomaly("reserve-set-refused", f"{_hex(src)} {'holds' if held else 'sets a free'} reservation {_macs(held or [])}: Error {reply.code}"))
                return
            if allowed is False:
                found.append(Anomaly("reserve-set-stole", f"{_hex(src)} took {_macs(held or [])} for {_macs(wanted)}"))
        elif reply.error:
            if reply.code == ERR_UNRECOGNIZED_COMMAND:
                return
            found.append(Anomaly("reserve-force-refused", f"RCmd 2 from {_hex(src)} for {_macs(wanted)}: Error {reply.code}"))
            return
        if not found:
            self._judge_reservation(reply, wanted, found, f"RCmd {rcmd}", release=not wanted, taught=True)
        else:
            self._judge_reservation(reply, None, [], "")

    # -- enforcement on ATA (§3.4, rule 57) --------------------------------------------------

    def _ata(self, request: bytes, reply: Optional[_Reply], found: List[Anomaly]) -> None:
        if len(request) < ATA_HEADER_END or request[14] >> 4 != AOE_VERSION:
            return
        held = self._held()
        if held is None or not held:
            return
        src = bytes(request[6:12])
        io = request[27] in IO_OPCODES
        if src in held:
            if io and reply is not None and reply.error and reply.code == ERR_TARGET_RESERVED:
                found.append(Anomaly("reserve-holder-refused", f"{_hex(src)} is in {_macs(held)}: opcode 0x{request[27]:02x} refused with Error 6"))
            return
        if reply is None:
            # refused (Error 6) or, for other opcodes than READ and WRITE, served: answered either way
            if must_answer(request, self.info):
                found.append(Anomaly("reserve-silent", f"opcode 0x{request[27]:02x} from {_hex(src)} outside {_macs(held)}: no reply"))
        elif io and not reply.error and reply.n >= ATA_HEADER_END and not reply.raw[27] & ATA_STATUS_FAILURE_MASK:
            found.append(Anomaly("reserve-not-enforced", f"opcode 0x{request[27]:02x} from {_hex(src)} outside {_macs(held)} served"))
