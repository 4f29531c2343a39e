"""What crossed the wire between an initiator and a target, counted from captures.

Pure: takes frames with timestamps (from a pcap or a live capture), no
sockets. Two vantage points matter:

* the initiator's side of the link: every frame the initiator sent and every
  frame that reached it. A request is a **retransmission** when an earlier
  request for the same ATA command, LBA and sector count is still open
  there, i.e. no reply to it had reached the initiator when the new one left
  (the Linux driver resends with a new tag, §3 of the reference: the tag is
  the initiator's to choose). Each first request starts an *instance*;
  retransmissions belong to the open instance.
* the target's side: the frames that reached the target. Request frames
  there beyond one per instance are **duplicates delivered**: each is a
  request the target must answer idempotently (retransmissions that got
  through, and copies a lossy network made).

With no impairment between them both sides are the same capture.
"""

from __future__ import annotations

import struct
from dataclasses import asdict, dataclass, field
from typing import Dict, Iterable, List, Optional, Tuple

from aoeconform.wire.constants import (
    ATA_HEADER_END,
    CMD_ATA,
    ETH_P_AOE,
    FLAG_ERROR,
    FLAG_RESPONSE,
    SHELF_BROADCAST,
    SLOT_BROADCAST,
)

_ETH = struct.Struct("!6s6sH")
# ver/flags, error, shelf, slot, command, tag
_AOE = struct.Struct("!BBHBBI")
# aflags, err/feature, sector count, cmd/status, lba (6 bytes, least significant first)
_ATA = struct.Struct("!BBBB6s")
_AOE_OFFSET = 14
_ATA_OFFSET = 24


@dataclass(frozen=True)
class AoeSummary:
    """The fields of one AoE frame the counts need."""

    dst: bytes
    src: bytes
    response: bool
    error: bool
    shelf: int
    slot: int
    command: int
    tag: int
    ata_command: int = -1
    lba: int = -1
    sector_count: int = -1
    write: bool = False

    @property
    def key(self) -> Tuple:
        """What a retransmission repeats (the tag changes, this does not)."""
        return (self.shelf, self.slot, self.command, self.ata_command, self.lba, self.sector_count)


def summarize(frame: bytes) -> Optional[AoeSummary]:
    """The AoE fields of an Ethernet frame, or None if it is not AoE."""
    if len(frame) < _ATA_OFFSET:
        return None
    dst, src, ethertype = _ETH.unpack_from(frame)
    if ethertype != ETH_P_AOE:
        return None
    verflags, _error, shelf, slot, command, tag = _AOE.unpack_from(frame, _AOE_OFFSET)
    summary = dict(dst=dst, src=src, response=bool(verflags & FLAG_RESPONSE), error=bool(verflags & FLAG_ERROR),
                   shelf=shelf, slot=slot, command=command, tag=tag)
    if command == CMD_ATA and len(frame) >= ATA_HEADER_END - 2:
        aflags, _feature, count, cmd_status, lba = _ATA.unpack_from(frame, _ATA_OFFSET)
        summary.update(ata_command=cmd_status, lba=int.from_bytes(lba, "little"), sector_count=count,
                       write=bool(aflags & 0x01))
    return AoeSummary(**summary)


@dataclass
class WireCounts:
    """Counts for one conversation (one initiator MAC)."""

    requests: int = 0
    replies: int = 0
    ata_requests: int = 0
    write_requests: int = 0
    read_requests: int = 0
    config_requests: int = 0
    #: distinct requests the initiator meant (first sendings)
    instances: int = 0
    retransmissions: int = 0
    #: replies that reached the initiator for an instance already answered
    late_replies: int = 0
    #: replies whose tag the initiator never sent
    unmatched_replies: int = 0
    error_replies: int = 0
    #: replies with shelf 0xffff or slot 0xff (a wildcard is never a reply's address, §2.5)
    wildcard_replies: int = 0
    #: request frames that reached the target beyond one per instance
    duplicates_delivered: Optional[int] = None
    requests_at_target: Optional[int] = None
    #: largest data payload of a request or reply, in bytes
    max_payload: int = 0
    first_timestamp: float = 0.0
    last_timestamp: float = 0.0

    def as_dict(self) -> Dict:
        return asdict(self)


@dataclass
class _Instance:
    key: Tuple
    tags: List[int] = field(default_factory=list)
    answered: bool = False


class WireAnalysis:
    """Feed frames seen at the initiator's side (``initiator_side``) and,
    optionally, at the target's side (``target_side``); read ``counts``."""

    def __init__(self, initiator_mac: Optional[bytes] = None) -> None:
        self.initiator_mac = initiator_mac
        self.counts = WireCounts()
        self._open: Dict[Tuple, _Instance] = {}
        self._by_tag: Dict[int, _Instance] = {}
        self._delivered: Dict[object, int] = {}  # id(instance) -> request frames at the target

    def _is_request_from_initiator(self, s: AoeSummary) -> bool:
        if s.response:
            return False
        if self.initiator_mac is None:
            self.initiator_mac = s.src
        return s.src == self.initiator_mac

    def initiator_side(self, frame: bytes, timestamp: float = 0.0, length: Optional[int] = None) -> None:
        """``length``: the frame's length on the wire when ``frame`` was cut short by a capture."""
        s = summarize(frame)
        if s is None:
            return
        c = self.counts
        if not c.first_timestamp:
            c.first_timestamp = timestamp
        c.last_timestamp = timestamp
        payload = max(0, (length or len(frame)) - ATA_HEADER_END) if s.command == CMD_ATA else 0
        if s.response:
            if self.initiator_mac is not None and s.dst != self.initiator_mac and s.dst != b"\xff" * 6:
                return
            c.replies += 1
            if s.error:
                c.error_replies += 1
            if s.shelf == SHELF_BROADCAST or s.slot == SLOT_BROADCAST:
                c.wildcard_replies += 1
            if s.command == CMD_ATA and not s.write:
                c.max_payload = max(c.max_payload, payload)
            instance = self._by_tag.get(s.tag)
            if instance is not None and s.command != CMD_ATA:
                return
            if instance is None:
                c.unmatched_replies += 1
            elif instance.answered:
                c.late_replies += 1
            else:
                instance.answered = True
                if self._open.get(instance.key) is instance:
                    del self._open[instance.key]
            return
        if not self._is_request_from_initiator(s):
            return
        c.requests += 1
        if s.command != CMD_ATA:
            c.config_requests += 1
            # its replies are matched, never retransmissions (every target may answer)
            self._by_tag[s.tag] = _Instance(s.key, [s.tag], answered=False)
            return
        c.ata_requests += 1
        if s.write:
            c.write_requests += 1
            c.max_payload = max(c.max_payload, payload)
        else:
            c.read_requests += 1
        instance = self._open.get(s.key)
        if instance is None or instance.answered:
            instance = _Instance(s.key)
            self._open[s.key] = instance
            c.instances += 1
        else:
            c.retransmissions += 1
        instance.tags.append(s.tag)
        self._by_tag[s.tag] = instance

    def target_side(self, frame: bytes, timestamp: float = 0.0) -> None:
        """A frame seen where the target is; call after the initiator side is fed."""
        s = summarize(frame)
        if s is None or s.response or s.command != CMD_ATA:
            return
        if self.initiator_mac is not None and s.src != self.initiator_mac:
            return
        c = self.counts
        c.requests_at_target = (c.requests_at_target or 0) + 1
        instance = self._by_tag.get(s.tag)
        ident = id(instance) if instance is not None else ("tag", s.tag)
        seen = self._delivered.get(ident, 0)
        self._delivered[ident] = seen + 1
        c.duplicates_delivered = (c.duplicates_delivered or 0) + (1 if seen else 0)


def analyse(initiator_frames: Iterable[Tuple],
            target_frames: Optional[Iterable[Tuple]] = None,
            initiator_mac: Optional[bytes] = None) -> WireCounts:
    """Counts from (timestamp, frame[, length on the wire]) tuples seen at the
    initiator's side and, if given, at the target's side (else the same
    frames serve for both)."""
    analysis = WireAnalysis(initiator_mac)
    frames = list(initiator_frames)
    for record in frames:
        analysis.initiator_side(record[1], record[0], record[2] if len(record) > 2 else None)
    for record in (frames if target_frames is None else target_frames):
        analysis.target_side(record[1], record[0])
    return analysis.counts
