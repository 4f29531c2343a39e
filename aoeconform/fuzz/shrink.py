"""Replaying findings and shrinking them to a minimal reproducer.

``Replayer`` sends frames to the target one at a time through the session
(``aoeconform.session``), which collects what comes back, runs the health
check and restarts the target. ``Replayer.fires(kind, frames)`` is the predicate both shrinkers use: does
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

from aoeconform.session import Session, TargetFacts, requests
from aoeconform.wire import AtaArg
from aoeconform.wire.constants import CMD_QUERY_CONFIG, ETH_HEADER_LEN, RCMD_READ, SECTOR_SIZE, TAG_TOOL_BIT

from .admin_requests import AdminRequests
from .context import WritePolicy
from .model import MODEL_KINDS, TargetModel
from .oracle import Anomaly, check_reply, expects_reply, is_advertisement
from .together import contended_sets, is_config_set, step_groups, step_together, together

#: the tags of the session's own requests (probes, canary reads, restores): the case generator leaves them alone
HEALTH_TAG_BASE = 0x7F000000
#: the reads that prime a fresh model before a semantic finding is replayed
PRIME_TAG_BASE = 0x7C000000
#: replayed frames' tags once the target is known to answer from a cache keyed on the tag
REPLAY_TAG_BASE = 0x79000000
#: findings whose trigger is the tag's value itself: replayed with the tags they carry
TAG_VALUE_KINDS = frozenset({"tag-not-echoed", "unmatched-reply"})

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


def health_tags() -> Callable[[], int]:
    """Tags for the session's own requests: HEALTH_TAG_BASE and a counter."""
    counter = [0]

    def new_tag() -> int:
        counter[0] = (counter[0] + 1) & 0xFFFFFF
        return HEALTH_TAG_BASE | counter[0]

    return new_tag


class Replayer:
    """Sends findings' frames again through the session, for confirmation and shrinking."""

    def __init__(self, session: Session, *, deadline: float = 0.1):
        self.session = session
        self.deadline = deadline
        #: how long a fenced replay waits once its fence is answered
        self.fence_grace = 0.002
        #: tag -> when a frame with it was last replayed: a reply to it that comes
        #: late answers the replay, not the fuzz case that had the tag first
        self.replayed: dict = {}
        self.evaluations = 0
        #: sectors outside the write window, as they were before fuzzing (lba -> data)
        self.canaries: dict = {}
        #: give replayed frames fresh tags: set once the target is known to answer
        #: from a cache keyed on the tag, which would otherwise answer a replay
        #: with what the case got (it would fire in this run and nowhere else)
        self.fresh_tags = False
        self._retagged = 0

    @property
    def info(self) -> TargetFacts:
        return self.session.facts

    # -- canaries: sectors outside the write window -------------------------------

    def read_sector(self, lba: int) -> Optional[bytes]:
        reply = self.session.request(requests.read_sector(self.info, lba), attempts=3)
        if reply is not None and not reply.header.error_flag and isinstance(reply.arg, AtaArg) and len(reply.arg.data) >= SECTOR_SIZE:
            return bytes(reply.arg.data[:SECTOR_SIZE])
        return None

    def write_sector(self, lba: int, data: bytes) -> None:
        self.session.request(requests.write_sector(self.info, lba, data))

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

    def _burst_fires(self, kind: str, frames: Sequence[bytes]) -> bool:
        """A finding of the engine's buffer-count burst: the frames go out back
        to back, as the burst sent them, since one at a time they would all be
        answered. It fires when the target, still alive, leaves some of them
        unanswered: the last one alone for a dropped duplicate (rule 18), any
        but not all of them for a Buffer Count not honoured (rule 19)."""
        if len(frames) < 2 or any(len(f) < 24 for f in frames):
            return False
        replies = self.together(frames)
        missing = [i for i, got in enumerate(replies) if not got]
        if not missing or len(missing) == len(frames) or not self.session.probe(attempts=2):
            return False  # all answered, or none: a dead target is another finding's
        if kind == "duplicate-dropped":
            return missing == [len(frames) - 1]
        return True

    def together(self, frames: Sequence[bytes]) -> List[List[bytes]]:
        """Send ``frames`` back to back, as a burst or two initiators at once
        sent them; the replies to each."""
        for frame in frames:
            self.note(frame)
        replies, _ = self.session.burst(frames, max(self.deadline, 0.25))
        return replies

    def _silent_start(self) -> bool:
        """Restarted, the target comes back without its unsolicited config reply (rule 46)."""
        session = self.session
        seen: List[bytes] = []
        passed_on = session.on_frame
        session.on_frame = seen.append
        try:
            back = session.restart()
            session.drain(0.25)
        finally:
            session.on_frame = passed_on
        return back and not any(is_advertisement(frame) for frame in seen)

    def _fresh_model(self, gap: float) -> TargetModel:
        """A model that knows nothing of the target yet but what the admin
        oracles compare with: the config string, the mask, the reservation now."""
        model = TargetModel(self.info, WritePolicy())
        reads = AdminRequests(self.info, PRIME_TAG_BASE)
        for frame in (reads.config_read(), reads.mask_read(), reads.reserve(RCMD_READ)):
            model.step(frame, self.session.exchange(frame, gap)[0])
        return model

    def _together_fires(self, kind: str, frames: Sequence[bytes], steps: Sequence[int], gap: float) -> bool:
        """A finding of requests that were in flight together (a burst's two
        overlapping writes, rule 20; two MACs' config sets, rule 44): each step
        goes out as it went, its frames back to back, judged as the engine
        judged them (``together``) by a fresh model."""
        session = self.session
        model = self._fresh_model(gap)
        found: List[Anomaly] = []
        contended: Optional[Tuple[List[bytes], List[Optional[bytes]]]] = None
        groups = step_groups(frames, steps)
        for n, group in enumerate(groups):
            if len(group) > 1:
                replies = self.together(group)
                found += [a for each in step_together(model, group, replies) for a in each]
                sets = [(f, got[0] if got else None) for f, got in zip(group, replies) if is_config_set(f)]
                contended = ([f for f, _ in sets], [r for _, r in sets]) if len(sets) > 1 else contended
                continue
            frame = group[0]
            self.note(frame)
            matched, _ = session.exchange(frame, self.deadline if n == len(groups) - 1 else gap)
            found += model.step(frame, matched)
            if contended is not None and matched and len(frame) >= 20 and frame[19] == CMD_QUERY_CONFIG:
                mixed = contended_sets(contended[0], contended[1], matched[0])
                found += [mixed] if mixed is not None else []
        return any(a.kind == kind for a in found)

    def _model_fires(self, kind: str, frames: Sequence[bytes], gap: float) -> bool:
        """A semantic finding: the frames, one at a time, judged by a fresh model
        of the target (the sequence carries what the verdict rests on)."""
        session = self.session
        model = self._fresh_model(gap)
        fired = False
        for i, frame in enumerate(frames):
            matched, _ = session.exchange(frame, self.deadline if i == len(frames) - 1 else gap)
            if kind == "stale-reply" and matched and check_reply(frame, matched[0], self.info):
                fired |= model.stale_reply(frame, matched[0]) is not None  # as the engine relabels it
            fired |= any(a.kind == kind for a in model.step(frame, matched))
        return fired

    def replay(self, frames: Sequence[bytes], gap: float, all_replies: bool = False) -> List[bytes]:
        """Send every frame but the last, each followed by up to ``gap`` seconds
        of waiting for its reply; return the last frame's replies seen within
        the full deadline (collecting more than one, to see duplicates)."""
        for frame in frames[:-1]:
            self.fenced(frame, gap)
        if not frames:
            return []
        last = frames[-1]
        # a reply whose tag differs only in bit 31 is the answer with a changed tag
        flipped = [int.from_bytes(last[20:24], "big") ^ TAG_TOOL_BIT] if len(last) >= 24 else []
        return self.fenced(last, self.deadline, all_replies=all_replies, tags=flipped)

    def _retag(self, frames: Sequence[bytes]) -> List[bytes]:
        """``frames`` with tags never sent before; frames that shared a tag
        still share one (a duplicate stays a duplicate), and bit 31 is kept."""
        fresh: dict = {}
        out = []
        for frame in frames:
            if len(frame) < 24:
                out.append(frame)
                continue
            tag = int.from_bytes(frame[20:24], "big")
            if tag not in fresh:
                self._retagged = (self._retagged + 1) & 0xFFFFFF
                fresh[tag] = REPLAY_TAG_BASE | self._retagged | (tag & TAG_TOOL_BIT)
            out.append(frame[:20] + fresh[tag].to_bytes(4, "big") + frame[24:])
        return out

    def note(self, raw: bytes) -> None:
        if len(raw) >= 24:
            self.replayed[int.from_bytes(raw[20:24], "big")] = self.session.clock()

    def replayed_since(self, tag: int, since: float) -> bool:
        """Was a frame with this tag (or with its bit 31 changed) replayed after ``since``?"""
        return max(self.replayed.get(tag, -1.0), self.replayed.get(tag ^ TAG_TOOL_BIT, -1.0)) >= since

    def fenced(self, raw: bytes, wait: float, *, all_replies: bool = False, tags: Sequence[int] = ()) -> List[bytes]:
        """Send ``raw`` and a Query Config read after it; return the replies
        with its tag (or one of ``tags``). Once the read is answered only
        ``fence_grace`` more is waited (a target that answers in order will not
        answer ``raw`` after it), so a silent candidate costs a round trip,
        not the whole ``wait``."""
        session = self.session
        link, clock = session.link, session.clock
        want = set(tags)
        if len(raw) >= 24:
            want.add(int.from_bytes(raw[20:24], "big"))
        fence = session.new_tag()
        want.add(fence)
        self.note(raw)
        try:
            link.send(raw)
            link.send(requests.config_read(self.info, fence).encode(pad=True))
        except OSError:
            return []
        matched: List[bytes] = []
        end = clock() + wait
        while True:
            remaining = end - clock()
            if remaining <= 0:
                break
            got, _ = link.wait(want, remaining)
            if not got:
                break
            if int.from_bytes(got[0][20:24], "big") == fence:
                end = min(end, clock() + self.fence_grace)
                want.discard(fence)
                continue
            matched += got
            if not all_replies:
                break
        return matched

    def fires(self, kind: str, frames: Sequence[bytes], *, restart: bool = False, gap: Optional[float] = None,
              steps: Optional[Sequence[int]] = None) -> bool:
        """Does sending ``frames`` (after a restart, if asked) make the oracle
        report ``kind``? ``steps``: how many frames each step sends back to
        back (None: one at a time)."""
        self.evaluations += 1
        session = self.session
        if restart and not session.restart():
            return False
        if self.fresh_tags and kind not in TAG_VALUE_KINDS:
            frames = self._retag(frames)
        gap = self.deadline / 4 if gap is None else gap
        if kind == "unresponsive":
            for group in step_groups(frames, steps):
                for frame in group:
                    self.note(frame)
                if len(group) > 1:
                    session.burst(group, gap)
                else:
                    session.exchange(group[0], gap)
            return not session.probe(attempts=2)
        if kind == "no-advertisement":
            return self._silent_start()
        if kind == "write-outside-window":
            self.restore_canaries()
            self.replay(frames, gap)
            return bool(self.changed_canaries())
        if not frames:
            return False
        if kind in BURST_KINDS:
            return self._burst_fires(kind, frames)
        if steps is not None and together(steps):
            return self._together_fires(kind, frames, steps, gap)
        if kind in MODEL_KINDS and kind != "answered-other-ethertype":
            return self._model_fires(kind, frames, gap)
        last = frames[-1]
        replies = self.replay(frames, gap, all_replies=kind == "duplicate-reply")
        if not replies and session.can_restart and not session.probe(attempts=1):
            session.restart()  # this candidate crashed the target: not the bug being shrunk
            return False
        if kind == "no-reply":
            if replies or not expects_reply(last, self.info):
                return False
            return session.probe(attempts=2)  # silent, yet alive
        if kind == "duplicate-reply":
            return len(replies) > 1
        if kind == "tag-not-echoed":
            return any(r[20:24] != last[20:24] for r in replies)
        return any(a.kind == kind for r in replies for a in check_reply(last, r, self.info))


#: findings of requests sent back to back, replayed back to back
BURST_KINDS = ("duplicate-dropped", "bufcnt-not-honoured")


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
