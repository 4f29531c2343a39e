"""A blocking initiator: the engine run over a Transport with a real clock.

All protocol decisions live in ``engine``; this shell only moves frames
between the engine and the transport and reads the clock. Requests are
pipelined: every frame of a request (and of several submitted requests)
is sent as soon as the window allows.

Use::

    with Initiator(transport, shelf=1, slot=2) as ini:
        info = ini.identify()
        ini.write(0, data)
        assert ini.read(0, len(data) // 512) == data
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Dict, Iterable, List, Optional

from aoeconform.errors import TargetUnreachable
from aoeconform.session.facts import TargetFacts, frame_sectors
from aoeconform.transport.base import Transport
from aoeconform.wire import ConfigArg, DecodeError, Frame, IdentifyData
from aoeconform.wire.constants import (
    BROADCAST_MAC,
    CMD_QUERY_CONFIG,
    SHELF_BROADCAST,
    SLOT_BROADCAST,
)

from .discovery import ignore_reason, query_config_frame

from .engine import (
    AOE_ERRORS_FAIL,
    DEFAULT_DEAD_AFTER,
    AoEErrorReply,
    InitiatorEngine,
    IoRequest,
)
from .tags import TagAllocator
from .window import DEFAULT_MAXOUT_CAP

#: the driver's retransmit timer period (``TIMERTICK`` = HZ/10)
TIMER_TICK = 0.1
#: frames taken from the transport per wake-up, at most
RECV_BATCH = 64

#: The driver's timers: checked every 100 ms, the estimate restarting at
#: 250 ms / 2 s on IDENTIFY, no floor and no ceiling (reference §7).
LINUX_TIMERS: Dict[str, Any] = {"precise_timeouts": False, "seed_rtt": False, "min_timeout": 0.0, "max_timeout": None}

#: What the harness's own transfers use (``io``, ``bench initiator``, the
#: end-to-end tests). The estimator is still Jacobson/Karels with the
#: driver's gains and rto = 2·avg + 8·dev; what changes, and why:
#:
#: * each frame times out at its own deadline, not at the next 100 ms tick:
#:   on a LAN the rto is a millisecond or two, and a tick of 100 ms would
#:   stall every lost frame fifty times longer than needed;
#: * the first round trip after IDENTIFY seeds the estimate (RFC 6298
#:   §2.2), instead of decaying from 250 ms at gain 1/256, which takes some
#:   1,400 replies and stalls every early loss for seconds;
#: * a 5 ms floor: this initiator and the target share a busy machine, and
#:   a process that is off the CPU for a scheduler time slice (a few ms)
#:   must not look like a lost frame: each timeout collapses the window;
#: * a 0.5 s ceiling, so a burst of losses while the estimate is still high
#:   costs at most half a second per frame; slower targets see duplicates,
#:   which AoE allows (requests are idempotent);
#: * loss detection from later replies (``fast_retransmit``, see ``engine``):
#:   a frame overtaken by 3 answered later frames, and older than
#:   avg + 4·dev, is resent at once and the window is halved, not collapsed
#:   to 1. On a lossy link the 5 ms floor would otherwise hold each lost
#:   frame's slot for 5 ms and every loss would restart slow start from 1.
#:   Timeouts (no later replies) still collapse the window to 1.
HARNESS_TIMERS: Dict[str, Any] = {"precise_timeouts": True, "seed_rtt": True, "min_timeout": 0.005, "max_timeout": 0.5,
                  "fast_retransmit": True}

TIMERS: Dict[str, Dict[str, Any]] = {"linux": LINUX_TIMERS, "harness": HARNESS_TIMERS}


class Initiator:
    """Blocking reads and writes to one AoE device (shelf.slot) over ``transport``."""

    def __init__(
        self,
        transport: Transport,
        shelf: int,
        slot: int,
        *,
        target_mac: Optional[bytes] = None,
        maxout_cap: int = DEFAULT_MAXOUT_CAP,
        min_timeout: float = 0.0,
        max_timeout: Optional[float] = None,
        dead_after: float = DEFAULT_DEAD_AFTER,
        aoe_errors: str = AOE_ERRORS_FAIL,
        config_timeout: float = 1.0,
        config_attempts: int = 3,
        clock: Callable[[], float] = time.monotonic,
        timer_tick: float = TIMER_TICK,
        precise_timeouts: bool = False,
        seed_rtt: bool = False,
        fast_retransmit: bool = False,
    ):
        """``timer_tick``: how often timeouts are checked, as the driver's timer.
        With ``precise_timeouts`` they are also checked at each frame's own
        deadline, so a loss costs about one rto rather than up to a tick
        more (useful with a small ``max_timeout`` on a lossy link).
        ``seed_rtt``: the first round trip after IDENTIFY sets the RTT
        estimate (``rtt.RttEstimator``). ``fast_retransmit``: a frame that
        later replies show lost is resent before its timeout, with a
        fast-recovery cut of the window (``engine``). The defaults are the
        driver's behaviour; ``HARNESS_TIMERS`` is what the harness's own
        tools use."""
        self.transport = transport
        self.shelf = shelf
        self.slot = slot
        self.target_mac = target_mac
        self.maxout_cap = maxout_cap
        self.min_timeout = min_timeout
        self.max_timeout = max_timeout
        self.dead_after = dead_after
        self.aoe_errors = aoe_errors
        self.config_timeout = config_timeout
        self.config_attempts = config_attempts
        self.clock = clock
        self.timer_tick = timer_tick
        self.precise_timeouts = precise_timeouts
        self.seed_rtt = seed_rtt
        self.fast_retransmit = fast_retransmit
        self.info: Optional[TargetFacts] = None
        self.engine: Optional[InitiatorEngine] = None
        self._config_tags = TagAllocator()
        self.stray_frames = 0  # frames seen while waiting for config replies

    # --- discovery -------------------------------------------------------
    def query_config(self) -> TargetFacts:
        """Query Config, unicast if ``target_mac`` is known, else broadcast; first valid answer wins.

        The frame and the rules for which replies count are discovery's
        (``discovery.query_config_frame``, ``discovery.ignore_reason``).
        """
        dst = self.target_mac or BROADCAST_MAC
        for _ in range(self.config_attempts):
            tag = self._config_tags.new_tag(self.clock())
            self.transport.send(query_config_frame(self.transport.mac, tag, self.shelf, self.slot, dst))
            end = self.clock() + self.config_timeout
            while True:
                left = end - self.clock()
                if left <= 0:
                    break
                raw = self.transport.recv(left)
                if raw is None:
                    break
                info = self._config_reply(raw, tag)
                if info is not None:
                    return info
        where = "broadcast" if dst == BROADCAST_MAC else "unicast"
        raise TargetUnreachable(
            f"no Query Config reply from shelf {self.shelf} slot {self.slot} "
            f"({self.config_attempts} {where} attempts, {self.config_timeout:g} s each) "
            f"on {self.transport.name}; check the target is running and the shelf/slot"
        )

    def _config_reply(self, raw: bytes, tag: int) -> Optional[TargetFacts]:
        try:
            frame = Frame.decode(raw)
        except DecodeError:
            self.stray_frames += 1
            return None
        h = frame.header
        if not h.response or h.command != CMD_QUERY_CONFIG or h.tag != tag or h.error_flag:
            self.stray_frames += 1
            return None
        if ignore_reason(h.shelf, h.slot) is not None:
            self.stray_frames += 1
            return None
        if self.shelf != SHELF_BROADCAST and h.shelf != self.shelf:
            return None
        if self.slot != SLOT_BROADCAST and h.slot != self.slot:
            return None
        arg = frame.arg
        if not isinstance(arg, ConfigArg):  # the decoder's type for a Query Config reply
            return None
        return TargetFacts.from_config(frame, self.transport.mac, self.transport.mtu)

    def identify(self) -> TargetFacts:
        """Query Config, then ATA IDENTIFY; sets up the engine for reads and writes."""
        return self._identify(self.query_config())

    def attach(self, record: TargetFacts) -> TargetFacts:
        """Set up for a target discovery already found (``addressing.open_target``):
        no second Query Config. IDENTIFY is still sent, through the engine,
        because the driver resets its RTT estimate on IDENTIFY and takes
        28/48-bit addressing and the capacity from it."""
        return self._identify(dataclasses.replace(record, host_mac=self.transport.mac, mtu=self.transport.mtu))

    def _identify(self, info: TargetFacts) -> TargetFacts:
        now = self.clock()
        self.shelf, self.slot, self.target_mac = info.shelf, info.slot, info.mac
        self.engine = InitiatorEngine(
            self.transport.mac,
            info.mac,
            info.shelf,
            info.slot,
            sectors_per_frame=info.sectors_per_frame,
            bufcnt=info.bufcnt,
            maxout_cap=self.maxout_cap,
            min_timeout=self.min_timeout,
            max_timeout=self.max_timeout,
            dead_after=self.dead_after,
            aoe_errors=self.aoe_errors,
            seed_rtt=self.seed_rtt,
            fast_retransmit=self.fast_retransmit,
            now=now,
        )
        request = self.engine.submit_identify(now)
        self.wait(request)
        identify = IdentifyData.decode(request.result())
        info.apply_identify_data(identify)
        # as the driver: LBA48 if word 83 or 86 has bit 10, and then the 48-bit count even when it is 0
        info.capacity = identify.lba48_capacity if info.lba48 else identify.lba28_capacity
        self.engine.set_geometry(info.capacity, info.lba48)
        self.info = info
        return info

    # --- I/O ---------------------------------------------------------------
    def _engine(self) -> InitiatorEngine:
        if self.engine is None:
            raise RuntimeError("call identify() before reading or writing")
        return self.engine

    def submit_read(self, lba: int, count: int) -> IoRequest:
        return self._engine().submit_read(lba, count, self.clock())

    def submit_write(self, lba: int, data) -> IoRequest:
        return self._engine().submit_write(lba, data, self.clock())

    def read(self, lba: int, count: int) -> bytes:
        """``count`` sectors from ``lba``."""
        request = self.submit_read(lba, count)
        self.wait(request)
        return request.result()

    def write(self, lba: int, data) -> None:
        request = self.submit_write(lba, data)
        self.wait(request)
        request.result()

    def flush(self, extended: bool = False) -> None:
        request = self._engine().submit_flush(extended, self.clock())
        self.wait(request)
        request.result()

    def command(self, opcode: int, **fields) -> IoRequest:
        """One raw ATA command (see ``InitiatorEngine.submit_command``); returns the finished request."""
        request = self._engine().submit_command(opcode, now=self.clock(), **fields)
        self.wait(request)
        return request

    def wait(self, *requests: IoRequest) -> None:
        """Run the engine until every request is done (failed ones included).

        Raises ``TargetDead`` if the target stops answering.
        """
        self._run(requests, every=True)

    def wait_any(self, *requests: IoRequest) -> List[IoRequest]:
        """Run the engine until at least one of ``requests`` is done; returns the done ones.

        Lets a caller keep a pipeline full: submit more as each completes.
        """
        self._run(requests, every=False)
        return [r for r in requests if r.done]

    def _run(self, requests: Iterable[IoRequest], every: bool) -> None:
        engine = self._engine()
        requests = list(requests)
        waiting: List[IoRequest] = [r for r in requests if not r.done]
        if not waiting or (not every and len(waiting) < len(requests)):
            self._raise_if_dead(requests)
            return
        watched = None if every else {id(r) for r in waiting}
        clock = self.clock
        send = self.transport.send
        receive = self._receiver()
        tick_every = self.timer_tick
        precise = self.precise_timeouts
        on_frame, poll_sends, next_deadline = engine.on_frame, engine.poll_sends, engine.next_deadline
        window = engine.window
        now = clock()
        next_tick = now  # the engine's timer: every tick_every seconds (and at deadlines if precise)
        while True:
            for _, frame in poll_sends(now):
                send(frame)
            deadline = next_tick
            if precise:
                frame_deadline = next_deadline()
                if frame_deadline is not None and frame_deadline < deadline:
                    deadline = frame_deadline
            wait = deadline - now
            frames = receive(wait if wait > 0 else 0.0)
            now = clock()
            finished = False
            for raw in frames:
                done = on_frame(raw, now)
                if done is not None and watched is not None and id(done) in watched:
                    finished = True
                # While the window may still grow, refill it after every
                # answer, as the driver does from its receive path: it grows
                # only on answers that find it full. At its cap one refill
                # per batch does the same work with fewer calls.
                if window.maxout < window.nframes:
                    for _, frame in poll_sends(now):
                        send(frame)
            if now >= deadline:
                if frames:
                    # Answers already queued in the socket are not late: this
                    # process may have been off the CPU while they arrived. The
                    # kernel driver handles them in softirq before its timer
                    # runs; judge timeouts only once the queue is empty.
                    frames = receive(0.0)
                    while frames:
                        now = clock()
                        for raw in frames:
                            done = on_frame(raw, now)
                            if done is not None and watched is not None and id(done) in watched:
                                finished = True
                        frames = receive(0.0)
                    now = clock()
                dead = engine.on_tick(now)
                if dead is not None:
                    raise dead
                next_tick = now + tick_every
            if watched is None:
                if waiting[-1].done or waiting[0].done:
                    waiting = [r for r in waiting if not r.done]
                    if not waiting:
                        break
            elif finished:
                break
        self._raise_if_dead(requests)

    def _receiver(self) -> Callable[[float], List[bytes]]:
        """recv(timeout) -> frames: every frame already queued, in one call
        (``recv_many``), so bursts of replies cost one wake-up."""
        recv_many, batch = self.transport.recv_many, RECV_BATCH
        return lambda timeout: recv_many(batch, timeout)

    def _raise_if_dead(self, requests: List[IoRequest]) -> None:
        engine = self.engine
        if engine is not None and engine.dead is not None and any(r.error is engine.dead for r in requests):
            raise engine.dead

    # --- reporting ---------------------------------------------------------------
    def counters(self) -> dict:
        return {} if self.engine is None else self.engine.counters()

    def close(self) -> None:
        self.transport.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


__all__ = ["Initiator", "frame_sectors", "AoEErrorReply", "HARNESS_TIMERS", "LINUX_TIMERS", "TIMERS"]
