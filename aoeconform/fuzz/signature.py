"""What a shrunk trigger changes: the part of a finding's signature that
tells one defect from another.

The fuzzer's findings are grouped by (rule, command, field). The field is
found by experiment, not read off the mutations: starting from a plain,
well-formed request (a read of each command, from the generated seeds),
one field of the shrunk trigger at a time is put into it and replayed. The
first field whose value alone still makes the oracle fire is the one the
defect is about. A header field (Ver, flags, Error, address, tag) that
fires on a plain Query Config read makes the defect independent of the
command, so it is signed with command ``any``: the same wrong Ver reply is
one finding whether the fuzzer first met it in an ATA request or a Mac
Mask one. A plain request that fires by itself gives field ``none`` (the
target breaks the rule on any request); a trigger no single field explains
gives the header field it cannot do without, when there is exactly one
(command ``any``), else the list of fields it differs in.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence, Tuple

from aoeconform.session.facts import TargetFacts

from .seeds import HOST_MAC_PLACEHOLDER, generated_seeds

#: name, first byte, end byte (None: to the end of the frame), bit mask (None: whole bytes)
Field = Tuple[str, int, Optional[int], Optional[int]]

HEADER_FIELDS: List[Field] = [
    ("ver", 14, 15, 0xF0),
    ("flags", 14, 15, 0x0F),
    ("error", 15, 16, None),
    ("address", 16, 19, None),
    ("tag", 20, 24, None),
]
ARG_FIELDS: Dict[int, List[Field]] = {
    0: [("aflags", 24, 25, None), ("feature", 25, 26, None), ("sector-count", 26, 27, None), ("ata-command", 27, 28, None),
        ("lba", 28, 34, None), ("ata-reserved", 34, 36, None), ("data", 36, None, None)],
    1: [("buffer-count", 24, 26, None), ("firmware", 26, 28, None), ("max-sectors", 28, 29, None), ("ccmd", 29, 30, None),
        ("config-length", 30, 32, None), ("config-string", 32, None, None)],
    2: [("mask-reserved", 24, 25, None), ("mcmd", 25, 26, None), ("merror", 26, 27, None), ("dir-count", 27, 28, None),
        ("directives", 28, None, None)],
    3: [("rcmd", 24, 25, None), ("nmacs", 25, 26, None), ("macs", 26, None, None)],
}
#: the plain request of each command the fields are put into
PLAIN_SEEDS = {0: "ata-read48", 1: "config-read", 2: "mask-read", 3: "reserve-read"}
#: the plain requests' tag: a tag the trigger was shrunk to (0, bit 31) then differs from it
PLAIN_TAG = 0x00012345
COMMAND_NAMES = {0: "ata", 1: "config", 2: "mask", 3: "reserve"}


def command_label(command: Optional[int]) -> str:
    if command is None:
        return "any"
    if command in COMMAND_NAMES:
        return COMMAND_NAMES[command]
    return "vendor" if command >= 0xF0 else "undefined"


def plain_requests(info: TargetFacts, tag: int) -> Dict[int, bytes]:
    """A well-formed read of each command, addressed to the target."""
    out = {}
    by_name = {s.name: s for s in generated_seeds()}
    for command, name in PLAIN_SEEDS.items():
        raw = bytearray(by_name[name].frame_bytes(info.mac, info.host_mac).replace(HOST_MAC_PLACEHOLDER, info.host_mac))
        raw[16:18] = info.shelf.to_bytes(2, "big")
        raw[18] = info.slot
        raw[20:24] = tag.to_bytes(4, "big")
        out[command] = bytes(raw.ljust(60, b"\0"))
    return out


def _value(frame: bytes, field: Field) -> Optional[bytes]:
    _, start, end, mask = field
    stop = len(frame) if end is None else end
    if len(frame) < stop or start >= len(frame):
        return None
    if mask is not None:
        return bytes([frame[start] & mask])
    return frame[start:stop]


def _put(frame: bytes, field: Field, value: bytes) -> bytes:
    _, start, end, mask = field
    if mask is not None:
        return frame[:start] + bytes([(frame[start] & ~mask & 0xFF) | value[0]]) + frame[start + 1:]
    stop = len(frame) if end is None else end
    return frame[:start] + value + frame[stop:]


def differing(trigger: bytes, plain: bytes, fields: Sequence[Field]) -> List[Field]:
    return [f for f in fields if _value(trigger, f) is not None and _value(trigger, f) != _value(plain, f)]


def classify(trigger: bytes, info: TargetFacts, fires: Callable[[bytes], bool]) -> Tuple[str, str]:
    """(command, field) of a one-frame trigger; ``fires(frame)`` replays one
    frame and says whether the finding's oracle reports it again."""
    if len(trigger) < 20:
        return "any", "length"
    command = trigger[19]
    plains = plain_requests(info, PLAIN_TAG)
    probe = plains[1]
    if fires(probe):
        return "any", "none"
    header = differing(trigger, probe, HEADER_FIELDS)
    if command not in plains:
        return command_label(command), "command"
    plain = plains[command]
    if fires(plain):
        return command_label(command), "none"
    for field in header:
        value = _value(trigger, field)
        assert value is not None
        if fires(_put(probe, field, value)):
            return "any", field[0]
    arg_fields = differing(trigger, plain, ARG_FIELDS[command])
    for field in arg_fields:
        value = _value(trigger, field)
        assert value is not None
        if field[2] is not None and fires(_put(plain, field, value)):
            return command_label(command), field[0]
    if len(trigger) != len(plain):
        candidate = plain[:len(trigger)] if len(trigger) < len(plain) else plain + trigger[len(plain):]
        if fires(candidate):
            return command_label(command), "length"
    # No field fires alone: a header field without which the trigger stops firing, and the
    # only one, makes the defect the header's whatever the command (Ver 2 applied to
    # a config set and to a reservation is one defect, rule 12)
    essential = [f for f in header if f[0] != "tag" and not fires(_put(trigger, f, _value(plain, f) or b"\0"))]
    if len(essential) == 1:
        return "any", essential[0][0]
    names = [f[0] for f in header + arg_fields] + (["length"] if len(trigger) != len(plain) else [])
    return command_label(command), "+".join(names) or "none"
