"""The fuzzer's oracles: what a reply to any request, however malformed, must obey.

Each kind of anomaly names the rule of the protocol notes (§10) it breaks.
The checks are on one request and one reply, so they hold for any request
the mutations produce; stopping to answer at all is caught by the health
check in the engine (kind ``unresponsive``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

from aoeconform.wire import ConfigArg, DecodeError, Frame
from aoeconform.wire.constants import (
    AFLAG_A,
    AFLAG_W,
    AOE_HEADER_LEN,
    AOE_VERSION,
    ATA_HEADER_END,
    ATA_READ_SECTORS,
    ATA_READ_SECTORS_EXT,
    ATA_STATUS_FAILURE_MASK,
    ATA_WRITE_SECTORS,
    ATA_WRITE_SECTORS_EXT,
    CCMD_TEST,
    CCMD_TEST_PREFIX,
    CMD_ATA,
    CMD_QUERY_CONFIG,
    CMD_VENDOR_MIN,
    CONFIG_HEADER_END,
    CONFIG_STRING_MAX,
    ETH_MIN_FRAME,
    ETH_P_AOE,
    FIXED_ARG_LEN,
    FLAG_ERROR,
    FLAG_RESPONSE,
    FLAGS_MBZ,
    SECTOR_SIZE,
    SHELF_BROADCAST,
    SLOT_BROADCAST,
)

from aoeconform.session.facts import TargetFacts


#: kind -> (rule number in the protocol notes §10, one-line statement)
KINDS = {
    # these two are charged to the rule of the request that shows them (fuzz.charge); the number is the default
    "unresponsive": (15, "the target stopped answering (health check: Query Config read unanswered)"),
    "no-reply": (13, "no reply to a well-formed request that must be answered"),
    "undecodable-reply": (16, "the reply cannot be decoded: too short for its fields or its lengths lie"),
    "tag-not-echoed": (4, "the reply's tag differs from the request's (bit 31 changed)"),
    "unmatched-reply": (4, "a reply whose tag matches no request sent"),
    "duplicate-reply": (18, "more than one reply to one request"),
    "r-not-set": (6, "a reply without the R flag"),
    "command-not-echoed": (5, "the reply's Command differs from the request's"),
    "wrong-version": (7, "a reply with Ver other than 1"),
    "error-byte-without-e": (8, "E=0 but the Error byte is not zero"),
    "mbz-set": (9, "MBZ flag bits set in a reply"),
    "wrong-address": (11, "the reply does not carry the target's own shelf and slot"),
    "wrong-reply-dst": (3, "the reply is not addressed to the requester's MAC"),
    "wrong-reply-src": (3, "the reply does not come from the target's MAC"),
    "answered-response": (2, "a frame with R=1 was answered"),
    "answered-other-address": (10, "a frame addressed to another shelf or slot was answered"),
    "oversize-reply": (17, "a reply larger than the link MTU"),
    "runt-reply": (16, "a reply shorter than the 60-byte Ethernet minimum"),
    "short-read": (21, "a successful READ reply carries fewer than scnt x 512 data bytes"),
    "config-reply-fields": (35, "a config reply with a version nibble other than 1 or a string over 1024 bytes"),
    "write-outside-window": (22, "a sector outside the allowed LBA window changed"),
    # semantic oracles: replies judged against the model of the target (fuzz.model)
    "read-refused": (21, "a READ inside the disk and within the limits was refused"),
    "read-status": (21, "a successful READ reply without status 0x40 and error 0"),
    "read-unstable": (21, "two READs of a sector nothing wrote in between returned different data"),
    "read-data": (22, "a READ returned other data than the last acknowledged write put there"),
    "write-refused": (22, "a WRITE inside the disk and within the limits was refused"),
    "write-status": (22, "an acknowledged WRITE reply without status 0x40 and error 0"),
    "refused-write-applied": (22, "a WRITE answered with an error changed the disk"),
    "short-write-accepted": (23, "a WRITE whose payload is shorter than its sector count was acknowledged or applied"),
    "scnt-over-max": (24, "a sector count above the advertised maximum was served"),
    "idnf-missing": (25, "an I/O past the end was not failed with IDNF, or wrote part of its sectors"),
    "lba28-arithmetic": (26, "a 28-bit command addressed other sectors than lba0-2 and lba3's low nibble name"),
    "lba48-arithmetic": (27, "a 48-bit command addressed other sectors than its 48-bit LBA names"),
    "identify-capacity": (28, "IDENTIFY's capacity words disagree with each other or with the readable size"),
    "identify-refused": (28, "IDENTIFY DEVICE with sector count 1 refused, or answered without its 512-byte block"),
    "unsupported-opcode": (29, "an unsupported ATA opcode not answered with status 0x41, error ABRT, E=0"),
    "check-power": (30, "CHECK POWER MODE answered without sector count 0xFF and status 0x40 (or ABRT)"),
    "flush-status": (31, "FLUSH CACHE answered without status 0x40 (or ABRT)"),
    "async-write-lost": (33, "an acknowledged A=1 write is not what a READ after FLUSH returns"),
    # the wire cannot tell an A=1 write applied late from the later write lost: the step is the A=1 write's (rule 33)
    "async-write-late": (33, "an A=1 write landed over a later write to its sector (or that later write was lost)"),
    "ata-reserved-not-ignored": (34, "non-zero ATA reserved bytes changed what the command addressed"),
    "side-effect-under-ver": (12, "a request with Ver other than 1 changed the target's state"),
    "response-had-effect": (2, "a frame with R=1 changed the target's state"),
    "other-address-had-effect": (10, "a frame for another shelf or slot changed the target's state"),
    "truncated-had-effect": (15, "a frame with a truncated argument changed the target's state"),
    "trailing-bytes-refused": (16, "a request refused because the frame carries bytes beyond its payload"),
    "sector-count-beyond-mtu": (17, "the config reply advertises more sectors per frame than the MTU carries"),
    "directives-beyond-count": (16, "a Mac Mask edit acted on directives the frame carries beyond its Dir Count"),
    "payload-beyond-count": (16, "a write stored bytes its frame carried beyond its sector count"),
    "error-flag-without-code": (6, "E=1 with an Error byte of 0: the flag says an error, the byte names none"),
    "answered-other-ethertype": (1, "a frame of another EtherType was answered as AoE"),
    "duplicate-dropped": (18, "a request repeated with a new tag got no reply"),
    "bufcnt-not-honoured": (19, "fewer than Buffer Count requests sent back to back were answered"),
    "torn-write": (20, "two overlapping writes in flight left a sector that is neither's"),
    "config-sets-mixed": (44, "two config sets from two MACs back to back: not exactly one won, or the string is a mix"),
    "no-advertisement": (46, "a target started by the restart hook sent no unsolicited config reply"),
    "stale-reply": (18, "a reply that answers an earlier, different request with the same tag"),
    # the config string, the Mac Mask list and the reservation against the model (model_admin)
    "config-version-required": (35, "a config query refused because its version nibble is not 1 (aoetools send 0)"),
    "config-reply-string": (35, "a successful config reply does not carry the current config string"),
    "config-read-string": (36, "CCmd 0 (read) replied with a string other than the current one"),
    "config-read-refused": (36, "CCmd 0 (read) refused"),
    "config-test-answered": (37, "CCmd 1 (test) answered although the string does not match"),
    "config-test-unanswered": (37, "CCmd 1 (test) with the current string not answered"),
    "config-prefix-answered": (38, "CCmd 2 (prefix) answered although the string is not a prefix"),
    "config-prefix-unanswered": (38, "CCmd 2 (prefix) with a prefix of the current string (empty included) not answered"),
    "config-set-overwrote": (39, "CCmd 3 (set) replaced a different existing string instead of Error 4"),
    "config-set-refused": (39, "CCmd 3 (set) refused while the string was empty (or equal, other than by Error 4)"),
    "config-force-refused": (40, "CCmd 4 (force set) refused"),
    "config-ccmd-accepted": (41, "CCmd 5-15 answered with success instead of Error 1 or 2"),
    "config-length-unchecked": (42, "a config set with a length over 1024 or beyond the bytes present succeeded"),
    "config-string-mangled": (43, "the config string stored is not the bytes sent (NULs, bytes over 0x7F, length)"),
    "mask-dircount": (47, "a Mac Mask reply's Dir Count is not the size of the list"),
    "mask-list": (47, "a Mac Mask reply lists other MACs than the list holds"),
    "mask-duplicate": (48, "a MAC appears twice in the Mac Mask list (a duplicate add listed it again)"),
    "mask-edit-result": (48, "a Mac Mask edit left another list than its directives, applied in order, make (a duplicate add listed twice, ...)"),
    "mask-edit-refused": (48, "a Mac Mask edit with valid directives refused"),
    "mask-wrong-index": (49, "a failing Mac Mask directive reported with the wrong index or MError"),
    "mask-mcmd-accepted": (50, "an unknown MCmd answered with success instead of Error 2"),
    "mask-not-enforced": (51, "a frame from a MAC not on a non-empty Mac Mask list was answered"),
    "wildcard-unanswered": (10, "a request to shelf 0xFFFF or slot 0xFF, from a MAC the Mac Mask list allows, got no reply"),
    "mask-empty-silent": (52, "with an empty Mac Mask list, a request from another MAC was not answered"),
    "mask-dircount-unchecked": (53, "a Mac Mask edit whose Dir Count runs past the frame succeeded"),
    "reserve-list": (54, "a Reserve/Release reply's NMacs or MACs are not the reservation held"),
    "reserve-set-stole": (55, "RCmd 1 (set) by a MAC outside the reservation succeeded instead of Error 6"),
    "reserve-set-refused": (55, "RCmd 1 (set) by a listed MAC, or with no reservation, refused"),
    "reserve-force-refused": (56, "RCmd 2 (force set) refused"),
    "reserve-release-ignored": (56, "a set with NMacs 0 did not release the reservation"),
    "reserve-not-enforced": (57, "a READ or WRITE from a MAC outside the reservation was served"),
    "reserve-silent": (57, "an ATA request from a MAC outside the reservation got no reply (READ and WRITE: Error 6 is due)"),
    "reserve-holder-refused": (57, "a READ or WRITE from a MAC in the reservation refused with Error 6"),
    "reserve-rcmd-accepted": (58, "an unknown RCmd answered with success instead of Error 2"),
    "reserve-nmacs-unchecked": (58, "a reservation whose NMacs runs past the frame succeeded"),
}


@dataclass(frozen=True)
class Anomaly:
    kind: str
    detail: str
    #: earlier requests the verdict rests on (the write a READ was compared with, ...):
    #: a finding replays them before the request that broke the rule
    evidence: Tuple[bytes, ...] = ()
    #: the rule the failing step checks, where the kind alone does not say it
    #: (a silence or a stop: the rule of the request, see ``charge``)
    rule_number: Optional[int] = None

    @property
    def rule(self) -> int:
        return self.rule_number or KINDS[self.kind][0]


def is_advertisement(frame: bytes) -> bool:
    """The unsolicited config reply a target broadcasts when it starts (rule 46)."""
    return len(frame) >= 24 and frame[0] == 0xFF and frame[19] == CMD_QUERY_CONFIG and frame[20:24] == b"\0\0\0\0"


def _addressed_to(frame: bytes, info: TargetFacts) -> bool:
    shelf = int.from_bytes(frame[16:18], "big")
    slot = frame[18]
    return shelf in (info.shelf, SHELF_BROADCAST) and slot in (info.slot, SLOT_BROADCAST)


def expects_reply(frame: bytes, info: TargetFacts) -> bool:
    """True when every reading of the protocol notes says the target must answer.

    Silence is allowed (§10) for truncated arguments (15), Ver other than 1
    (12), frames with R set (2), other addresses (10), A=1 writes (33), config test and
    prefix commands (37, 38), oversize or lying config lengths (42), and
    vendor commands (14); and a frame for another MAC never reaches it.
    Frames from the second initiator's MAC are answered or not as the Mac
    Mask list says, so only the model (``model_admin``) judges their silence."""
    return frame[6:12] == info.host_mac and must_answer(frame, info)


def must_answer(frame: bytes, info: TargetFacts) -> bool:
    """``expects_reply`` for a frame from a MAC the Mac Mask list allows."""
    n = len(frame)
    if n < AOE_HEADER_LEN or frame[12:14] != ETH_P_AOE.to_bytes(2, "big"):
        return False
    if frame[0:6] != info.mac and frame[0:6] != b"\xff" * 6:
        return False
    if frame[14] >> 4 != AOE_VERSION or frame[14] & FLAG_RESPONSE:
        return False
    if not _addressed_to(frame, info):
        return False
    command = frame[19]
    if command >= CMD_VENDOR_MIN:
        return False
    fixed = FIXED_ARG_LEN.get(command)
    if fixed is not None and n < AOE_HEADER_LEN + fixed:
        return False
    if command == CMD_ATA and n > 27 and frame[24] & AFLAG_A and (frame[24] & AFLAG_W or frame[27] in (ATA_WRITE_SECTORS, ATA_WRITE_SECTORS_EXT)):
        return False  # whether an asynchronous write is answered is unspecified (33)
    if command == CMD_QUERY_CONFIG:
        if frame[29] & 0xF in (CCMD_TEST, CCMD_TEST_PREFIX):
            return False
        length = int.from_bytes(frame[30:32], "big")
        if length > CONFIG_STRING_MAX or CONFIG_HEADER_END + length > n:
            return False
    return True


def check_reply(request: bytes, reply: bytes, info: TargetFacts) -> List[Anomaly]:
    """Every rule the reply breaks, given the request it answers (matched by tag)."""
    found: List[Anomaly] = []
    add = found.append
    n = len(reply)
    if n > info.max_frame:
        add(Anomaly("oversize-reply", f"{n} bytes, link carries {info.max_frame}"))
    if n < ETH_MIN_FRAME:
        add(Anomaly("runt-reply", f"{n} bytes"))
    if n < AOE_HEADER_LEN:
        add(Anomaly("undecodable-reply", f"{n} bytes is shorter than the AoE header"))
        return found
    if reply[0:6] != request[6:12]:
        add(Anomaly("wrong-reply-dst", f"to {reply[0:6].hex(':')}, requester {request[6:12].hex(':')}"))
    if reply[6:12] != info.mac:
        add(Anomaly("wrong-reply-src", f"from {reply[6:12].hex(':')}, target is {info.mac.hex(':')}"))
    verflags, error = reply[14], reply[15]
    if not verflags & FLAG_RESPONSE:
        add(Anomaly("r-not-set", f"flags byte 0x{verflags:02x}"))
    if verflags >> 4 != AOE_VERSION:
        add(Anomaly("wrong-version", f"Ver {verflags >> 4}"))
    if not verflags & FLAG_ERROR and error:
        add(Anomaly("error-byte-without-e", f"Error byte {error} with E=0"))
    if verflags & FLAG_ERROR and not error:
        add(Anomaly("error-flag-without-code", f"flags byte 0x{verflags:02x} with Error byte 0"))
    if verflags & FLAGS_MBZ:
        add(Anomaly("mbz-set", f"flags byte 0x{verflags:02x}"))
    shelf, slot = int.from_bytes(reply[16:18], "big"), reply[18]
    if (shelf, slot) != (info.shelf, info.slot):
        add(Anomaly("wrong-address", f"reply from {shelf}.{slot}, target is {info.address}"))
    if len(request) >= AOE_HEADER_LEN:
        if request[12:14] != ETH_P_AOE.to_bytes(2, "big"):
            add(Anomaly("answered-other-ethertype", f"request EtherType 0x{request[12:14].hex()}"))
        if reply[19] != request[19]:
            add(Anomaly("command-not-echoed", f"request command {request[19]}, reply {reply[19]}"))
        if request[14] & FLAG_RESPONSE:
            add(Anomaly("answered-response", f"request flags 0x{request[14]:02x}"))
        if not _addressed_to(request, info):
            add(Anomaly("answered-other-address", f"request to {int.from_bytes(request[16:18], 'big')}.{request[18]}"))
    if verflags & FLAG_ERROR:
        return found  # with E=1 the argument carries no promise (§2.4)
    command = reply[19]
    # an ATA reply decodes whatever its bytes once it holds the whole argument:
    # only shorter ones (and the other commands) go through the decoder
    if command != CMD_ATA or n < ATA_HEADER_END:
        try:
            decoded = Frame.decode(bytes(reply))
        except DecodeError as exc:
            add(Anomaly("undecodable-reply", str(exc)))
            return found
        arg = decoded.arg
        if isinstance(arg, ConfigArg):  # the decoder's type for command 1
            if arg.version != AOE_VERSION or len(arg.config) > CONFIG_STRING_MAX:
                add(Anomaly("config-reply-fields", f"version nibble {arg.version}, string {len(arg.config)} bytes"))
    if (
        command == CMD_ATA
        and len(request) >= ATA_HEADER_END
        and request[19] == CMD_ATA
        and request[27] in (ATA_READ_SECTORS, ATA_READ_SECTORS_EXT)
        # with W set the request says data flows to the device: a target may
        # go by the flag (vblade does) and return no data
        and not request[24] & AFLAG_W
        and n >= ATA_HEADER_END
        and not reply[27] & ATA_STATUS_FAILURE_MASK
    ):
        want = request[26] * SECTOR_SIZE
        if n - ATA_HEADER_END < want:
            add(Anomaly("short-read", f"scnt {request[26]} wants {want} bytes, reply holds {n - ATA_HEADER_END}"))
    return found


def describe_kind(kind: str) -> str:
    rule, text = KINDS.get(kind, (0, kind))
    return f"{kind} (rule {rule}): {text}"
