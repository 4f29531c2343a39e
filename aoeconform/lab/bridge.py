"""An impairment bridge: AoE frames forwarded between two interfaces, with seeded loss,
duplication, reordering and delay in each direction.

The lab kernels have no netem qdisc (reference §11), so an initiator that
is not ours — the Linux driver in user-mode Linux — gets its lossy network
from this bridge::

    initiator ── <lab>g ══ <lab>b ─[bridge]─ <lab>h ══ <lab>t ── target (netns)

``BridgeCore`` holds the decisions and queues and takes the time as an
argument (no sockets): one ``Lane`` of ``aoeconform.transport.impair`` per
direction, fed by ``from_initiator``/``from_target``. A ``FrameFilter``
makes it AoE-aware: only matching frames are impaired (only writes, only
replies, one tag); the rest pass untouched. ``serve`` is the socket loop
around it, and can record what each side of the bridge saw (pcaps).
"""

from __future__ import annotations

import json
import select
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Tuple

from aoeconform.transport.impair import ImpairmentCounters, ImpairmentPolicy, Lane
from aoeconform.wire.constants import CMD_ATA

from .wirestats import summarize

TO_TARGET = "to_target"
TO_INITIATOR = "to_initiator"
DIRECTIONS = (TO_TARGET, TO_INITIATOR)
#: frames the filter can select
KINDS = ("all", "requests", "replies", "writes", "reads", "ata")
#: a held frame is let go after this long even if nothing passes it
DEFAULT_REORDER_TIMEOUT = 0.005


@dataclass(frozen=True)
class FrameFilter:
    """Which frames the impairments apply to (the rest pass untouched)."""

    kind: str = "all"
    tag: Optional[int] = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown frame kind {self.kind!r}; use one of {', '.join(KINDS)}")

    def matches(self, frame: bytes) -> bool:
        if self.kind == "all" and self.tag is None:
            return True
        s = summarize(frame)
        if s is None:
            return False
        if self.tag is not None and s.tag != self.tag:
            return False
        kind = self.kind
        if kind == "requests":
            return not s.response
        if kind == "replies":
            return s.response
        if kind == "ata":
            return s.command == CMD_ATA
        if kind in ("writes", "reads"):
            return not s.response and s.command == CMD_ATA and s.write == (kind == "writes")
        return True


@dataclass
class Impairment:
    """Rates and delays for one direction (probabilities per frame; seconds)."""

    loss: float = 0.0
    dup: float = 0.0
    reorder: float = 0.0
    reorder_depth: int = 3
    delay: float = 0.0
    jitter: float = 0.0

    def policy(self, seed: int) -> Optional[ImpairmentPolicy]:
        if not (self.loss or self.dup or self.reorder or self.delay or self.jitter):
            return None
        return ImpairmentPolicy(seed, self.loss, self.dup, self.reorder, self.reorder_depth, self.delay, self.jitter)


@dataclass
class BridgeSpec:
    seed: int = 0
    to_target: Impairment = field(default_factory=Impairment)
    to_initiator: Impairment = field(default_factory=Impairment)
    only: FrameFilter = field(default_factory=FrameFilter)
    reorder_timeout: float = DEFAULT_REORDER_TIMEOUT

    @classmethod
    def symmetric(cls, seed: int = 0, only: Optional[FrameFilter] = None, **rates) -> "BridgeSpec":
        return cls(seed=seed, to_target=Impairment(**rates), to_initiator=Impairment(**rates),
                   only=only or FrameFilter())

    def as_dict(self) -> Dict:
        return asdict(self)

    @property
    def impairs(self) -> bool:
        return any(getattr(d, name) for d in (self.to_target, self.to_initiator)
                   for name in ("loss", "dup", "reorder", "delay", "jitter"))

    @classmethod
    def from_dict(cls, data: Dict) -> "BridgeSpec":
        return cls(seed=int(data.get("seed", 0)), to_target=Impairment(**data.get("to_target", {})),
                   to_initiator=Impairment(**data.get("to_initiator", {})), only=FrameFilter(**data.get("only", {})),
                   reorder_timeout=float(data.get("reorder_timeout", DEFAULT_REORDER_TIMEOUT)))


def _direction_seed(seed: int, direction: str) -> int:
    # independent, reproducible streams for the two directions
    return seed * 2 + DIRECTIONS.index(direction)


class BridgeCore:
    """The bridge's decisions and queues for both directions; time is an argument."""

    def __init__(self, spec: BridgeSpec) -> None:
        self.spec = spec
        self.lanes: Dict[str, Lane] = {
            TO_TARGET: Lane(spec.to_target.policy(_direction_seed(spec.seed, TO_TARGET)), spec.reorder_timeout),
            TO_INITIATOR: Lane(spec.to_initiator.policy(_direction_seed(spec.seed, TO_INITIATOR)), spec.reorder_timeout),
        }
        #: frames the filter selected for impairment, per direction
        self.selected = {d: 0 for d in DIRECTIONS}
        self.forwarded = {d: 0 for d in DIRECTIONS}
        #: impairments apply only while this is set (a run may hold them back
        #: until the initiator is past discovery and warm-up)
        self.enabled = True

    def _admit(self, direction: str, frame: bytes, now: float) -> List[bytes]:
        chosen = self.enabled and self.spec.only.matches(frame)
        if chosen:
            self.selected[direction] += 1
        out = self.lanes[direction].admit(frame, now, impair=chosen)
        self.forwarded[direction] += len(out)
        return out

    def from_initiator(self, frame: bytes, now: float) -> List[bytes]:
        """A frame from the initiator's side: what to send to the target now."""
        return self._admit(TO_TARGET, frame, now)

    def from_target(self, frame: bytes, now: float) -> List[bytes]:
        """A frame from the target's side: what to send to the initiator now."""
        return self._admit(TO_INITIATOR, frame, now)

    def due(self, now: float) -> Tuple[List[bytes], List[bytes]]:
        """(to the target, to the initiator): held and delayed frames whose time has come."""
        out = (self.lanes[TO_TARGET].due(now), self.lanes[TO_INITIATOR].due(now))
        self.forwarded[TO_TARGET] += len(out[0])
        self.forwarded[TO_INITIATOR] += len(out[1])
        return out

    def next_due(self) -> Optional[float]:
        times = [t for t in (lane.next_due() for lane in self.lanes.values()) if t is not None]
        return min(times) if times else None

    def counters(self) -> Dict[str, Dict[str, int]]:
        out = {}
        for direction in DIRECTIONS:
            c: ImpairmentCounters = self.lanes[direction].counters
            out[direction] = {**c.as_dict(), "selected": self.selected[direction], "forwarded": self.forwarded[direction]}
        return out


class _Recorder:
    """Frames one side of the bridge saw, for a pcap (cut to ``snaplen``)."""

    def __init__(self, path: Optional[str], snaplen: int) -> None:
        from aoeconform.transport.pcap import PcapWriter

        self.writer = PcapWriter(path, snaplen=snaplen, flush_every=512) if path else None

    def __call__(self, frames: List[bytes], now: float) -> None:
        if self.writer is not None:
            for frame in frames:
                self.writer.write(frame, now)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def serve(
    initiator_if: str,
    target_if: str,
    spec: BridgeSpec,
    *,
    stop: Optional[threading.Event] = None,
    initiator_pcap: Optional[str] = None,
    target_pcap: Optional[str] = None,
    snaplen: int = 128,
    ready: Optional[threading.Event] = None,
    core: Optional[BridgeCore] = None,
) -> BridgeCore:
    """Forward until ``stop`` is set (or SIGTERM/SIGINT in the main thread); return the core.

    ``initiator_pcap`` records what crossed the initiator's link (frames from
    it, and frames sent to it after impairment); ``target_pcap`` what
    crossed the target's link."""
    from aoeconform.transport.raw import RawTransport

    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    core = core or BridgeCore(spec)
    clock = time.time
    at_initiator, at_target = _Recorder(initiator_pcap, snaplen), _Recorder(target_pcap, snaplen)
    with RawTransport(initiator_if) as ini, RawTransport(target_if) as tgt:
        poller = select.poll()
        poller.register(ini.fileno(), select.POLLIN)
        poller.register(tgt.fileno(), select.POLLIN)
        if ready is not None:
            ready.set()
        try:
            while not stop.is_set():
                due = core.next_due()
                wait = 0.1 if due is None else max(0.0, min(0.1, due - clock()))
                poller.poll(wait * 1000)
                now = clock()
                for frame in ini.recv_many(256, 0):
                    at_initiator([frame], now)
                    out = core.from_initiator(frame, now)
                    if out:
                        tgt.send_many(out)
                        at_target(out, now)
                for frame in tgt.recv_many(256, 0):
                    at_target([frame], now)
                    out = core.from_target(frame, now)
                    if out:
                        ini.send_many(out)
                        at_initiator(out, now)
                to_target, to_initiator = core.due(clock())
                if to_target:
                    tgt.send_many(to_target)
                    at_target(to_target, now)
                if to_initiator:
                    ini.send_many(to_initiator)
                    at_initiator(to_initiator, now)
        finally:
            at_initiator.close()
            at_target.close()
    return core


def write_stats(path: str, core: BridgeCore) -> None:
    with open(path, "w") as f:
        json.dump({"spec": core.spec.as_dict(), "counters": core.counters()}, f, indent=1)
