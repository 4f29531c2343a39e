"""Replaying findings and shrinking them to a minimal reproducer.

``Replayer`` talks to the target one request at a time: it sends frames,
collects what comes back, runs the health check and restarts the target.
``Replayer.fires(kind, frames)`` is the predicate both shrinkers use: does
this sequence still make the oracle report ``kind``?

Shrinking happens in two stages:

1. the sequence, by delta debugging (Zeller's ddmin): for a target that
   stopped answering, over every frame sent since the last good health
   check; for a wrong reply that does not reproduce on its own, over the
   frames that preceded it (the last one stays). Each try starts from a
   restarted target, so it needs a restart hook;
2. each remaining frame: cut the tail (to the field boundaries first, then
   in halving chunks), zero whole fields, and halve length and count
   fields, for as long as the oracle still fires.

The Ethernet header (bytes 0-13) is never changed: it is what routes the
frame to the target and its reply back to us, not a subject of the test.
"""

from __future__ import annotations

import time
from typing import Callable, List, Optional, Sequence, Tuple

from aoeconform.transport.base import Transport
from aoeconform.wire.constants import ETH_HEADER_LEN, ETH_P_AOE, FLAG_RESPONSE, RCMD_READ, TAG_TOOL_BIT

from aoeconform.session.facts import TargetFacts

from .admin_requests import AdminRequests
from .context import WritePolicy
from .model import MODEL_KINDS, TargetModel
from .oracle import check_reply, expects_reply

HEALTH_TAG_BASE = 0x7F000000
CANARY_TAG_BASE = 0x7E000000
#: the reads that prime a fresh model before a semantic finding is replayed
PRIME_TAG_BASE = 0x7C000000

#: frame offsets of each field, by command, for zeroing and for cutting
_HEADER_FIELDS = [(14, 15), (15, 16), (16, 18), (18, 19), (19, 20), (20, 24)]
_ARG_FIELDS = {
    0: [(24, 25), (25, 26), (26, 27), (27, 28), (28, 34), (34, 36), (36, None)],
    1: [(24, 26), (26, 28), (28, 29), (29, 30), (30, 32), (32, None)],
    2: [(24, 25), (25, 26), (26, 27), (27, 28), (28, None)],
    3: [(24, 25), (25, 26), (26, None)],
}
#: count and length fields worth halving: (start, end) by command
_NUMBER_FIELDS = {0: [(26, 27)], 1: [(30, 32)], 2: [(27, 28)], 3: [(25, 26)]}
_CUT_POINTS = (14, 20, 24, 25, 26, 28, 30, 32, 34, 36, 60)


def config_read_frame(info: TargetFacts, tag: int) -> bytes:
    """A padded Query Config read to the target: the health probe."""
    head = info.mac + info.host_mac + ETH_P_AOE.to_bytes(2, "big")
    aoe = bytes((0x10, 0)) + info.shelf.to_bytes(2, "big") + bytes((info.slot, 1)) + tag.to_bytes(4, "big")
    return (head + aoe + bytes(8)).ljust(60, b"\0")


def ata_frame(info: TargetFacts, tag: int, opcode: int, lba: int, data: bytes = b"") -> bytes:
    head = info.mac + info.host_mac + ETH_P_AOE.to_bytes(2, "big")
    aoe = bytes((0x10, 0)) + info.shelf.to_bytes(2, "big") + bytes((info.slot, 0)) + tag.to_bytes(4, "big")
    aflags = 0x40 | (0x01 if data else 0)
    arg = bytes((aflags, 0, 1, opcode)) + lba.to_bytes(6, "little") + bytes(2)
    return (head + aoe + arg + data).ljust(60, b"\0")


class Replayer:
    """Serial exchanges with the target, for health checks, confirmation and shrinking."""

    def __init__(
        self,
        transport: Transport,
        info: TargetFacts,
        *,
        deadline: float = 0.1,
        health_timeout: float = 0.25,
        health_attempts: int = 3,
        restart: Optional[Callable[[], None]] = None,
        restart_timeout: float = 10.0,
        on_frame: Optional[Callable[[bytes], None]] = None,
    ):
        self.transport = transport
        self.info = info
        self.deadline = deadline
        self.health_timeout = health_timeout
        self.health_attempts = health_attempts
        self.restart_hook = restart
        self.restart_timeout = restart_timeout
        #: frames that are not the awaited reply go here (the engine checks late replies)
        self.on_frame = on_frame
        self._probe = 0
        self.restarts = 0
        self.evaluations = 0
        self.last_health_reply: Optional[bytes] = None
        self.canaries: dict = {}

    # -- exchanges -------------------------------------------------------------

    def _from_target(self, frame: bytes) -> bool:
        return (
            len(frame) >= 24
            and frame[12:14] == b"\x88\xa2"
            and (bool(frame[14] & FLAG_RESPONSE) or frame[6:12] == self.info.mac)
        )

    def exchange(self, frame: bytes, wait: float, *, first_only: bool = True) -> Tuple[List[bytes], List[bytes]]:
        """Send ``frame``; return (replies with its tag, other frames from the
        target) seen within ``wait`` seconds, or until the first reply."""
        tag = frame[20:24] if len(frame) >= 24 else None
        matched: List[bytes] = []
        others: List[bytes] = []
        try:
            self.transport.send(frame)
        except OSError:
            return matched, others
        end = time.monotonic() + wait
        while True:
            remaining = end - time.monotonic()
            if remaining <= 0:
                break
            reply = self.transport.recv(remaining)
            if reply is None:
                break
            if not self._from_target(reply):
                continue
            if tag is not None and reply[20:24] == tag:
                matched.append(reply)
                if first_only:
                    break
            else:
                others.append(reply)
        return matched, others

    def drain(self, quiet: float = 0.0, discard: bool = False) -> None:
        """Take whatever is queued (and what arrives within ``quiet`` seconds);
        ``discard`` drops it instead of passing it on (late replies to replays)."""
        while True:
            frame = self.transport.recv(quiet)
            if frame is None:
                return
            if not discard and self.on_frame is not None and self._from_target(frame):
                self.on_frame(frame)

    def health(self, attempts: Optional[int] = None, timeout: Optional[float] = None) -> bool:
        """Query Config read answered (§10 rule 36): the target is alive."""
        for _ in range(attempts or self.health_attempts):
            self._probe = (self._probe + 1) & 0xFFFFFF
            tag = HEALTH_TAG_BASE | self._probe
            matched, others = self.exchange(config_read_frame(self.info, tag), timeout or self.health_timeout)
            if self.on_frame is not None:
                for frame in others:
                    self.on_frame(frame)
            if matched:
                self.last_health_reply = matched[0]
                return True
        return False

    def restart(self) -> bool:
        """Run the restart hook, then wait until the target answers again."""
        if self.restart_hook is None:
            return False
        self.restarts += 1
        self.restart_hook()
        end = time.monotonic() + self.restart_timeout
        while time.monotonic() < end:
            if self.health(attempts=1):
                self.drain(0.0)
                return True
        return False

    # -- canaries: sectors outside the write window -------------------------------

    def read_sector(self, lba: int) -> Optional[bytes]:
        self._probe = (self._probe + 1) & 0xFFFFFF
        frame = ata_frame(self.info, CANARY_TAG_BASE | self._probe, 0x24, lba)
        for _ in range(3):
            matched, _ = self.exchange(frame, self.health_timeout)
            if matched and len(matched[0]) >= 36 + 512 and not matched[0][14] & 0x04:
                return bytes(matched[0][36:36 + 512])
        return None

    def write_sector(self, lba: int, data: bytes) -> None:
        self._probe = (self._probe + 1) & 0xFFFFFF
        self.exchange(ata_frame(self.info, CANARY_TAG_BASE | self._probe, 0x34, lba, data), self.health_timeout)

    def record_canaries(self, lbas: Sequence[int]) -> None:
        for lba in lbas:
            data = self.read_sector(lba)
            if data is not None:
                self.canaries[lba] = data

    def changed_canaries(self) -> List[int]:
        return [lba for lba, data in self.canaries.items() if self.read_sector(lba) not in (data, None)]

    def restore_canaries(self) -> None:
        for lba, data in self.canaries.items():
            self.write_sector(lba, data)

    # -- the predicate -------------------------------------------------------------

    def _model_fires(self, kind: str, frames: Sequence[bytes], gap: float) -> bool:
        """A semantic finding: the frames, one at a time, judged by a fresh model
        of the target (the sequence carries what the verdict rests on)."""
        model = TargetModel(self.info, WritePolicy())
        # what the admin oracles compare with: the config string, the mask, the reservation now
        reads = AdminRequests(self.info, PRIME_TAG_BASE)
        for frame in (reads.config_read(), reads.mask_read(), reads.reserve(RCMD_READ)):
            model.step(frame, self.exchange(frame, gap)[0])
        fired = False
        for i, frame in enumerate(frames):
            matched, _ = self.exchange(frame, self.deadline if i == len(frames) - 1 else gap)
            if kind == "stale-reply" and matched and check_reply(frame, matched[0], self.info):
                fired |= model.stale_reply(frame, matched[0]) is not None  # as the engine relabels it
            fired |= any(a.kind == kind for a in model.step(frame, matched))
        return fired

    def replay(self, frames: Sequence[bytes], gap: float, all_replies: bool = False) -> List[bytes]:
        """Send every frame but the last, each followed by up to ``gap`` seconds
        of waiting for its reply; return the last frame's replies seen within
        the full deadline (collecting more than one, to see duplicates)."""
        for frame in frames[:-1]:
            self.exchange(frame, gap)
        if not frames:
            return []
        matched, others = self.exchange(frames[-1], self.deadline, first_only=not all_replies)
        # a reply whose tag differs only in bit 31 is the answer with a changed tag
        last = frames[-1]
        if len(last) >= 24:
            flipped = (int.from_bytes(last[20:24], "big") ^ TAG_TOOL_BIT).to_bytes(4, "big")
            matched += [f for f in others if f[20:24] == flipped]
        return matched

    def fires(self, kind: str, frames: Sequence[bytes], *, restart: bool = False, gap: Optional[float] = None) -> bool:
        """Does sending ``frames`` (after a restart, if asked) make the oracle report ``kind``?"""
        self.evaluations += 1
        if restart and not self.restart():
            return False
        gap = self.deadline / 4 if gap is None else gap
        if kind == "unresponsive":
            for frame in frames:
                self.exchange(frame, gap)
            return not self.health(attempts=2)
        if kind == "write-outside-window":
            self.restore_canaries()
            self.replay(frames, gap)
            return bool(self.changed_canaries())
        if not frames:
            return False
        if kind in MODEL_KINDS and kind != "answered-other-ethertype":
            return self._model_fires(kind, frames, gap)
        last = frames[-1]
        replies = self.replay(frames, gap, all_replies=kind == "duplicate-reply")
        if not replies and self.restart_hook is not None and not self.health(attempts=1):
            self.restart()  # this candidate crashed the target: not the bug being shrunk
            return False
        if kind == "no-reply":
            if replies or not expects_reply(last, self.info):
                return False
            return self.health(attempts=2)  # silent, yet alive
        if kind == "duplicate-reply":
            return len(replies) > 1
        if kind == "tag-not-echoed":
            return any(r[20:24] != last[20:24] for r in replies)
        return any(a.kind == kind for r in replies for a in check_reply(last, r, self.info))


# -- delta debugging over a sequence ------------------------------------------------------


def ddmin(items: List[bytes], test: Callable[[List[bytes]], bool], budget: "Budget") -> List[bytes]:
    """A smallest-by-ddmin sublist of ``items`` for which ``test`` holds
    (``test(items)`` is assumed true)."""
    granularity = 2
    while len(items) >= 2 and budget.left():
        chunk = -(-len(items) // granularity)
        subsets = [items[i:i + chunk] for i in range(0, len(items), chunk)]
        reduced = False
        for subset in subsets:
            if budget.left() and test(subset):
                items, granularity, reduced = subset, 2, True
                break
        if not reduced and granularity > 2:
            for i in range(len(subsets)):
                complement = [f for j, s in enumerate(subsets) if j != i for f in s]
                if budget.left() and test(complement):
                    items, granularity, reduced = complement, max(granularity - 1, 2), True
                    break
        if not reduced:
            if granularity >= len(items):
                break
            granularity = min(len(items), granularity * 2)
    return items


class Budget:
    """Limits a shrink by predicate evaluations and wall time."""

    def __init__(self, evaluations: int = 300, seconds: float = 60.0):
        self.evaluations = evaluations
        self.end = time.monotonic() + seconds
        self.used = 0

    def left(self) -> bool:
        return self.used < self.evaluations and time.monotonic() < self.end

    def spend(self) -> None:
        self.used += 1


# -- one frame ---------------------------------------------------------------------------------


def _fields(frame: bytes) -> List[Tuple[int, int]]:
    n = len(frame)
    fields = list(_HEADER_FIELDS)
    if n >= 20:
        fields += [(a, n if b is None else b) for a, b in _ARG_FIELDS.get(frame[19], [(24, None)] if n > 24 else [])]
    return [(a, min(b, n)) for a, b in fields if a < n]


def shrink_frame(frame: bytes, test: Callable[[bytes], bool], budget: Budget) -> bytes:
    """Make ``frame`` smaller and plainer while ``test`` holds for it."""
    current = bytes(frame)

    def attempt(candidate: bytes) -> bool:
        nonlocal current
        if candidate == current or len(candidate) < ETH_HEADER_LEN or not budget.left():
            return False
        budget.spend()
        if test(candidate):
            current = candidate
            return True
        return False

    progress = True
    while progress and budget.left():
        progress = False
        # 1. cut at field boundaries, shortest first
        for point in _CUT_POINTS:
            if point < len(current) and attempt(current[:point]):
                progress = True
                break
        # 2. cut the tail in halving chunks
        chunk = max(1, (len(current) - ETH_HEADER_LEN) // 2)
        while chunk >= 1 and budget.left():
            if len(current) - chunk >= ETH_HEADER_LEN and attempt(current[:-chunk]):
                progress = True
                continue
            chunk //= 2
        # 3. zero whole fields
        for start, end in _fields(current):
            if any(current[start:end]) and attempt(current[:start] + bytes(end - start) + current[end:]):
                progress = True
        # 4. halve counts and lengths
        if len(current) >= 20:
            for start, end in _NUMBER_FIELDS.get(current[19], []):
                if end > len(current):
                    continue
                value = int.from_bytes(current[start:end], "big")
                while value > 1 and budget.left():
                    value //= 2
                    if not attempt(current[:start] + value.to_bytes(end - start, "big") + current[end:]):
                        break
                    progress = True
    return current


def readdress(frames: Sequence[bytes], old: dict, info: TargetFacts) -> List[bytes]:
    """Point saved frames at another target: the old target's, host's and
    second initiator's MACs, shelf and slot are replaced; wildcards and
    other addresses stay."""
    old_mac = bytes.fromhex(old.get("mac", "").replace(":", "")) if old.get("mac") else None
    old_host = bytes.fromhex(old.get("host_mac", "").replace(":", "")) if old.get("host_mac") else None
    old_second = bytes.fromhex(old.get("second_mac", "").replace(":", "")) if old.get("second_mac") else None
    out = []
    for frame in frames:
        f = bytearray(frame)
        if old_mac is not None and f[0:6] == old_mac:
            f[0:6] = info.mac
        if old_host is not None and f[6:12] == old_host:
            f[6:12] = info.host_mac
        elif old_second is not None and f[6:12] == old_second and info.second_mac:
            f[6:12] = info.second_mac  # the second initiator's frames stay the second initiator's
        if len(f) >= 19:
            if old.get("shelf") is not None and int.from_bytes(f[16:18], "big") == old["shelf"]:
                f[16:18] = info.shelf.to_bytes(2, "big")
            if old.get("slot") is not None and f[18] == old["slot"]:
                f[18] = info.slot
        out.append(bytes(f))
    return out
