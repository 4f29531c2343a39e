"""Loss, duplication, reordering and delay, made by the harness.

The lab kernels have no netem qdisc (reference §11), so impairments are
applied here, around any Transport. Two parts:

* ``ImpairmentPolicy``: the decisions. Pure and seeded: for a given seed
  and direction, the n-th frame always gets the same fate, whatever the
  timing or the interleaving of sending and receiving.
* ``ImpairedTransport``: the queueing. Frames that are delayed or held
  back for reordering wait in a schedule and are released at their due
  time by whichever of ``send``/``recv`` runs next; ``recv`` never sleeps
  past a due release.

Reordering holds a frame back until ``reorder_depth`` more frames have
passed in the same direction, or until ``reorder_timeout`` seconds pass,
so a held frame is never lost just because traffic stopped.
"""

from __future__ import annotations

import heapq
import random
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

from .base import Transport

SEND = "send"
RECV = "recv"
BOTH = "both"
_DIRECTIONS = (SEND, RECV)


@dataclass(frozen=True)
class Fate:
    """What happens to one frame."""

    drop: bool = False
    copies: int = 1  # 2 when duplicated
    hold: int = 0  # frames to wait for before release (reorder); 0 = not held
    delay: float = 0.0  # seconds before release


PASS = Fate()


@dataclass
class ImpairmentCounters:
    """How many frames each impairment touched, per direction."""

    seen: int = 0
    passed: int = 0  # frames handed on (copies included)
    dropped: int = 0
    duplicated: int = 0
    reordered: int = 0
    delayed: int = 0

    def as_dict(self) -> Dict[str, int]:
        return dict(self.__dict__)


class ImpairmentPolicy:
    """Seeded decisions for one direction.

    Rates are probabilities per frame. ``delay`` and ``jitter`` are in
    seconds; each frame gets ``delay`` plus a uniform value in
    [-jitter, +jitter], never below zero. A dropped frame gets no other
    impairment.
    """

    def __init__(
        self,
        seed: int,
        loss: float = 0.0,
        dup: float = 0.0,
        reorder: float = 0.0,
        reorder_depth: int = 3,
        delay: float = 0.0,
        jitter: float = 0.0,
    ):
        for name, rate in (("loss", loss), ("dup", dup), ("reorder", reorder)):
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be a probability between 0 and 1, got {rate}")
        if reorder and reorder_depth < 1:
            raise ValueError(f"reorder_depth must be at least 1 frame, got {reorder_depth}")
        if delay < 0 or jitter < 0:
            raise ValueError("delay and jitter must not be negative")
        self.loss = loss
        self.dup = dup
        self.reorder = reorder
        self.reorder_depth = reorder_depth
        self.delay = delay
        self.jitter = jitter
        self._random = random.Random(seed)

    @property
    def active(self) -> bool:
        return bool(self.loss or self.dup or self.reorder or self.delay or self.jitter)

    def decide(self) -> Fate:
        """The fate of the next frame. Draws the same number of values every call,
        so one impairment's rate never shifts another's sequence."""
        rnd = self._random.random
        lost, doubled, held, wobble = rnd(), rnd(), rnd(), rnd()
        if lost < self.loss:
            return Fate(drop=True)
        delay = self.delay
        if self.jitter:
            delay = max(0.0, delay + (2.0 * wobble - 1.0) * self.jitter)
        if doubled >= self.dup and held >= self.reorder and not delay:
            return PASS
        return Fate(
            copies=2 if doubled < self.dup else 1,
            hold=self.reorder_depth if held < self.reorder else 0,
            delay=delay,
        )


def direction_seed(seed: int, direction: str) -> int:
    """Independent, reproducible streams for the two directions."""
    return seed * 2 + (0 if direction == SEND else 1)


class Lane:
    """Queueing for one direction: frames held for reordering and the release schedule.

    Pure (the time is an argument): ``ImpairedTransport`` uses two, and so
    does the lab's impairment bridge."""

    def __init__(self, policy: Optional[ImpairmentPolicy], reorder_timeout: float):
        self.policy = policy
        self.reorder_timeout = reorder_timeout
        self.counters = ImpairmentCounters()
        # held for reordering: [frames still to pass, release deadline, frame]
        self.held: List[list] = []
        # delayed frames: heap of (due time, sequence, frame)
        self.scheduled: List[Tuple[float, int, bytes]] = []
        self._seq = 0

    def admit(self, frame: bytes, now: float, impair: bool = True) -> List[bytes]:
        """Apply a fate to a new frame; return the frames to hand on now, in order.
        ``impair=False`` passes it untouched without drawing a fate (a frame
        outside a filter), though it still counts as passing held frames."""
        counters = self.counters
        counters.seen += 1
        out: List[bytes] = []
        fate = self.policy.decide() if self.policy is not None and impair else PASS
        if fate.drop:
            counters.dropped += 1
        else:
            if fate.copies > 1:
                counters.duplicated += 1
            if fate.delay > 0:
                counters.delayed += 1
            for _ in range(fate.copies):
                if fate.hold:
                    counters.reordered += 1
                    self.held.append([fate.hold, now + self.reorder_timeout, frame, fate.delay])
                    # the copy of a held frame is not held again
                    fate = Fate(delay=fate.delay)
                elif fate.delay > 0:
                    self._schedule(frame, now + fate.delay)
                else:
                    out.append(frame)
        # a frame that went past counts for everything held before it
        for _ in range(len(out)):
            if not self.held:
                break
            out.extend(self._count_passing(now))
        return out

    def _schedule(self, frame: bytes, due: float) -> None:
        self._seq += 1
        heapq.heappush(self.scheduled, (due, self._seq, frame))

    def _count_passing(self, now: float) -> List[bytes]:
        released = []
        still = []
        for entry in self.held:
            entry[0] -= 1
            if entry[0] <= 0:
                released.append(entry)
            else:
                still.append(entry)
        self.held = still
        return self._release(released, now)

    def _release(self, entries: List[list], now: float) -> List[bytes]:
        out = []
        for _, _, frame, delay in entries:
            if delay > 0:
                self._schedule(frame, now + delay)
            else:
                out.append(frame)
        return out

    def due(self, now: float) -> List[bytes]:
        """Frames whose time has come: timed-out reorder holds and finished delays."""
        out: List[bytes] = []
        if self.held:
            expired = [entry for entry in self.held if entry[1] <= now]
            if expired:
                self.held = [entry for entry in self.held if entry[1] > now]
                out.extend(self._release(expired, now))
        scheduled = self.scheduled
        while scheduled and scheduled[0][0] <= now:
            out.append(heapq.heappop(scheduled)[2])
        return out

    def next_due(self) -> Optional[float]:
        times = [entry[1] for entry in self.held]
        if self.scheduled:
            times.append(self.scheduled[0][0])
        return min(times) if times else None

    def flush(self) -> List[bytes]:
        """Everything still waiting, in release order (for close)."""
        out = [entry[2] for entry in self.held]
        self.held = []
        out.extend(frame for _, _, frame in sorted(self.scheduled))
        self.scheduled = []
        return out


class ImpairedTransport(Transport):
    """Wraps a transport and impairs the frames going through it.

    ``direction`` chooses which way is impaired: 'send', 'recv' or 'both'
    (each direction with its own seeded stream). ``clock`` is injectable so
    tests can drive the schedule without sleeping.
    """

    def __init__(
        self,
        inner: Transport,
        seed: int = 0,
        loss: float = 0.0,
        dup: float = 0.0,
        reorder: float = 0.0,
        reorder_depth: int = 3,
        delay: float = 0.0,
        jitter: float = 0.0,
        direction: str = BOTH,
        reorder_timeout: float = 0.005,
        clock: Callable[[], float] = time.monotonic,
    ):
        if direction not in (SEND, RECV, BOTH):
            raise ValueError(f"direction must be 'send', 'recv' or 'both', got {direction!r}")
        self.inner = inner
        self.mac = inner.mac
        self.mtu = inner.mtu
        self.name = f"impaired:{inner.name}"
        self.seed = seed
        self.direction = direction
        self._clock = clock
        self._lanes: Dict[str, Lane] = {}
        for lane in _DIRECTIONS:
            policy = None
            if direction in (lane, BOTH):
                policy = ImpairmentPolicy(
                    direction_seed(seed, lane), loss, dup, reorder, reorder_depth, delay, jitter
                )
            self._lanes[lane] = Lane(policy, reorder_timeout)
        self._ready: List[bytes] = []  # received frames released and waiting for recv
        self._ready_pos = 0

    # --- counters -------------------------------------------------------
    @property
    def counters(self) -> Dict[str, ImpairmentCounters]:
        """Per direction: {'send': ImpairmentCounters, 'recv': ...}."""
        return {lane: self._lanes[lane].counters for lane in _DIRECTIONS}

    def totals(self) -> Dict[str, int]:
        """Counters summed over both directions."""
        total = ImpairmentCounters()
        for counters in self.counters.values():
            for key, value in counters.as_dict().items():
                setattr(total, key, getattr(total, key) + value)
        return total.as_dict()

    @property
    def dropped(self) -> int:
        return self.totals()["dropped"]

    @property
    def duplicated(self) -> int:
        return self.totals()["duplicated"]

    @property
    def reordered(self) -> int:
        return self.totals()["reordered"]

    @property
    def delayed(self) -> int:
        return self.totals()["delayed"]

    # --- data path ------------------------------------------------------
    def _pump(self, now: float) -> None:
        """Release whatever is due in both directions."""
        send_lane = self._lanes[SEND]
        if send_lane.held or send_lane.scheduled:
            for frame in send_lane.due(now):
                self._emit(frame)
        recv_lane = self._lanes[RECV]
        if recv_lane.held or recv_lane.scheduled:
            self._ready.extend(recv_lane.due(now))

    def _emit(self, frame: bytes) -> None:
        self._lanes[SEND].counters.passed += 1
        self.inner.send(frame)

    def send(self, frame: bytes) -> None:
        now = self._clock()
        self._pump(now)
        for out in self._lanes[SEND].admit(frame, now):
            self._emit(out)

    def _pop_ready(self) -> Optional[bytes]:
        if self._ready_pos < len(self._ready):
            frame = self._ready[self._ready_pos]
            self._ready_pos += 1
            if self._ready_pos == len(self._ready):
                self._ready.clear()
                self._ready_pos = 0
            self._lanes[RECV].counters.passed += 1
            return frame
        return None

    def recv(self, timeout: Optional[float]) -> Optional[bytes]:
        clock = self._clock
        now = clock()
        end = None if timeout is None else now + timeout
        recv_lane = self._lanes[RECV]
        send_lane = self._lanes[SEND]
        while True:
            self._pump(now)
            frame = self._pop_ready()
            if frame is not None:
                return frame
            # wait for the inner transport, but not past the next due release
            wake = end
            for lane in (recv_lane, send_lane):
                due = lane.next_due()
                if due is not None and (wake is None or due < wake):
                    wake = due
            wait = None if wake is None else max(0.0, wake - now)
            raw = self.inner.recv(wait)
            now = clock()
            if raw is not None:
                self._ready.extend(recv_lane.admit(raw, now))
            elif end is not None and now >= end:
                self._pump(now)
                frame = self._pop_ready()
                return frame

    def recv_many(self, max_frames: int, timeout: Optional[float]) -> List[bytes]:
        """Like ``recv``, then whatever else is already queued (up to
        ``max_frames``), each frame still going through the impairments, so a
        burst of replies costs one wake-up here as it does on the raw socket."""
        first = self.recv(timeout)
        if first is None:
            return []
        frames = [first]
        if len(frames) < max_frames:
            burst = self.inner.recv_many(max_frames - 1, 0.0)
            if burst:
                now = self._clock()
                admit = self._lanes[RECV].admit
                for raw in burst:
                    self._ready.extend(admit(raw, now))
        while len(frames) < max_frames:
            frame = self._pop_ready()
            if frame is None:
                break
            frames.append(frame)
        return frames

    def close(self) -> None:
        # frames still held are delivered rather than silently lost
        for frame in self._lanes[SEND].flush():
            try:
                self._emit(frame)
            except Exception:  # the inner transport may already be gone
                break
        self.inner.close()
