"""The engine's side of the link: send frames, gather replies by tag, time them.

Replies are matched to requests by tag alone, as the Linux driver does
(reference §7); a frame identical to one the harness sent (seen again on a
second interface) is not a reply. Every frame in and out is recorded for the
current case, for reports, pcaps and replay files.

Transports that answer synchronously (``transport.synchronous``, the
in-memory loopback the selftest uses) have delivered every reply by the time
``send`` returns, so an empty receive queue means silence at once and
silence checks cost no waiting.
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict, deque
from typing import Callable, Collection, List, Optional, Tuple

from aoeconform.session.link import Link
from aoeconform.transport.base import Transport
from aoeconform.wire.constants import ETH_P_AOE, FLAG_RESPONSE, frame_tag

from .results import FrameRecord


class Watchdog(Exception):
    """A step or case ran past its time limit."""


#: the shortest silence window (see ``Timing.silence``)
SILENCE_FLOOR = 0.05


class Timing:
    """Adaptive timeout: max(floor, factor × median RTT), at most ``ceiling``.

    ``silence()`` is the window for judging that no reply comes. A reply that
    does come returns early, so the reply timeout can afford a generous floor;
    a silence window is always waited out in full, so it is shorter:
    max(min(floor, SILENCE_FLOOR), factor × median RTT, 2 × the slowest recent
    RTT), never longer than the reply timeout. The engine still catches a
    reply that arrives after the window (``Engine._late_replies``).
    """

    def __init__(self, floor: float = 0.25, factor: float = 8.0, ceiling: float = 5.0, window: int = 256):
        self.floor = floor
        self.silence_floor = min(floor, SILENCE_FLOOR)
        self.factor = factor
        self.ceiling = max(ceiling, floor)
        self.samples: deque[float] = deque(maxlen=window)
        self.all_samples: list[float] = []

    def add(self, rtt: float) -> None:
        self.samples.append(rtt)
        if len(self.all_samples) < 200_000:
            self.all_samples.append(rtt)

    @property
    def median(self) -> Optional[float]:
        return statistics.median(self.samples) if self.samples else None

    def timeout(self) -> float:
        median = self.median
        if median is None:
            return self.ceiling if self.floor >= self.ceiling else max(self.floor, min(1.0, self.ceiling))
        return min(self.ceiling, max(self.floor, self.factor * median))

    def silence(self) -> float:
        if not self.samples:
            return self.timeout()
        window = max(self.silence_floor, self.factor * statistics.median(self.samples), 2 * max(self.samples))
        return min(self.timeout(), window)


class Wire:
    def __init__(self, primary: Transport, second: Optional[Transport] = None, timing: Optional[Timing] = None,
                 clock: Callable[[], float] = time.monotonic):
        self.primary = primary
        self.second = second
        self.transports = [primary] + ([second] if second is not None else [])
        self.synchronous = all(t.synchronous for t in self.transports)
        self.timing = timing or Timing()
        self.clock = clock
        self.inbox: dict[int, list[bytes]] = defaultdict(list)
        #: frames in arrival order that no tag has claimed yet (for `match: any`)
        self.arrivals: list[tuple[int, bytes]] = []
        self._sent_at: dict[int, float] = {}
        #: AoE frames that answered no outstanding request (start-up advertisements,
        #: duplicates), for `match: any`; cleared with ``arrivals``
        self.unsolicited: list[bytes] = []
        self._recent_sent: deque[bytes] = deque(maxlen=256)
        self.records: Optional[list[FrameRecord]] = None
        self.deadline: Optional[float] = None
        self.deadline_what = ""
        self.exchanges = 0
        self.frames_in = 0
        #: every tag the harness has sent, and replies addressed to it that carry
        #: none of them (rule 4: a tag changed on the way back), for the run's observations
        self.sent_tags: set[int] = set()
        self.strangers: list[bytes] = []
        self._own_macs = {t.mac for t in self.transports}

    # -- recording -----------------------------------------------------------

    def start_recording(self) -> list[FrameRecord]:
        self.records = []
        self.inbox.clear()
        self.arrivals.clear()
        self.unsolicited.clear()
        return self.records

    def _record(self, direction: str, transport: Transport, raw: bytes) -> None:
        if self.records is not None:
            self.records.append(FrameRecord(time.time(), direction, transport.name, bytes(raw)))

    # -- sending -------------------------------------------------------------

    def transport_for(self, raw: bytes) -> Transport:
        if self.second is not None and raw[6:12] == self.second.mac:
            return self.second
        return self.primary

    def send(self, raw: bytes) -> None:
        transport = self.transport_for(raw)
        self._record("out", transport, raw)
        self._recent_sent.append(bytes(raw))
        if len(raw) >= 24:
            tag = frame_tag(raw)
            self._sent_at[tag] = self.clock()
            self.sent_tags.add(tag)
        self.exchanges += 1
        try:
            transport.send(raw)
        except OSError as exc:
            # e.g. EMSGSIZE: the frame stays in the record, the case sees silence
            if self.records is not None:
                self.records[-1].iface += f" (not sent: {exc.strerror or exc})"

    # -- receiving -----------------------------------------------------------

    def _recv_one(self, timeout: float) -> bool:
        if len(self.transports) == 1:
            transport = self.primary
            raw = transport.recv(max(0.0, timeout))
        else:
            raw, transport = None, None
            for t in self.transports:
                raw = t.recv(0)
                if raw is not None:
                    transport = t
                    break
            if raw is None:
                step = min(max(0.0, timeout), 0.002)
                transport = self.transports[0]
                raw = transport.recv(step)
                if raw is None:
                    return timeout > step  # keep waiting while time is left
        if raw is None:
            return False
        raw = bytes(raw)
        if raw in self._recent_sent:
            return True  # our own frame, seen on the other interface
        self.frames_in += 1
        assert transport is not None  # set wherever raw was
        self._record("in", transport, raw)
        if len(raw) >= 24 and int.from_bytes(raw[12:14], "big") == ETH_P_AOE:
            tag = frame_tag(raw)
            sent = self._sent_at.pop(tag, None)
            if sent is not None:
                self.timing.add(self.clock() - sent)
            else:
                self.unsolicited.append(raw)
                if tag not in self.sent_tags and raw[14] & FLAG_RESPONSE and raw[0:6] in self._own_macs:
                    self.strangers.append(raw)
            self.inbox[tag].append(raw)
            self.arrivals.append((tag, raw))
        return True

    def wait(self, done: Callable[[], bool], until: float) -> None:
        """Receive until ``done()`` or ``until`` (monotonic); raises Watchdog
        if the step or case deadline comes first."""
        while not done():
            now = self.clock()
            limit = until
            if self.deadline is not None and self.deadline < limit:
                limit = self.deadline
            if now >= limit:
                if limit < until:
                    raise Watchdog(self.deadline_what)
                return
            got = self._recv_one(limit - now)
            if not got and self.synchronous:
                return

    def drain(self) -> None:
        """Take in whatever is queued now, without waiting."""
        while self._recv_one(0):
            pass

    def replies(self, tag: int) -> list[bytes]:
        return self.inbox.get(tag, [])

    def take(self, tag: int) -> list[bytes]:
        got = self.inbox.pop(tag, [])
        if got:
            self.arrivals = [(t, r) for t, r in self.arrivals if t != tag]
        return got

    def sleep(self, seconds: float) -> None:
        """Wait (receiving meanwhile) for ``seconds``."""
        until = self.clock() + seconds
        if self.synchronous:
            self.drain()
            return
        self.wait(lambda: False, until)


class WireLink(Link):
    """The session's link over the engine's ``Wire``: every frame is recorded
    with the case, replies are taken from the wire's inbox by tag, and the
    wait is the wire's adaptive timeout (``Timing``). Frames that answer
    nothing stay with the wire (``match: any``, late replies)."""

    def __init__(self, wire: Wire):
        self.wire = wire
        self.synchronous = wire.synchronous

    def send(self, raw: bytes) -> None:
        self.wire.send(raw)

    def wait(self, tags: Collection[int], timeout: float, first_only: bool = True) -> Tuple[List[bytes], List[bytes]]:
        wire = self.wire
        if first_only:
            wire.wait(lambda: any(wire.replies(t) for t in tags), wire.clock() + timeout)
        else:
            wire.wait(lambda: False, wire.clock() + timeout)
        return [reply for tag in tags for reply in wire.take(tag)], []

    def drain(self, quiet: float = 0.0) -> List[bytes]:
        self.wire.drain()
        return []

    def timeout(self) -> float:
        return self.wire.timing.timeout()
