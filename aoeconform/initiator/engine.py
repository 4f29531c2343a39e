"""The reference initiator's core: a state machine with no sockets and no clock.

It behaves like the Linux driver (reference §7) where that is observable on
the wire, and exposes what the driver hides (counters, the window over time,
typed errors) so checks can be built on it.

Use::

    engine = InitiatorEngine(src_mac, dst_mac, shelf, slot, sectors_per_frame=2, bufcnt=16)
    request = engine.submit_read(lba, count)
    while not request.done:
        for tag, frame in engine.poll_sends(now): transport.send(frame)
        raw = transport.recv(...)           # any wait, bounded by next_deadline()
        if raw: engine.on_frame(raw, now)
        dead = engine.on_tick(now)          # timeouts, retransmissions, dead target
    request.result()                         # bytes, or raises AtaError/AoEErrorReply/...

Rules kept from the driver:

* a request is split into frames of at most ``sectors_per_frame`` sectors;
  28-bit opcodes (0x20/0x30, lba3 high nibble 0xE0) unless the device has
  the LBA48 feature set, then 0x24/0x34 with AFlags E;
* at most ``window.maxout`` frames are on the wire (§7 window);
* replies are matched by tag only; the source MAC is not checked, but a
  reply must carry R=1, tag bit 31 clear (unless we set it ourselves), and
  this device's shelf and slot (the driver finds the device by them);
* a frame older than the retransmit timeout leaves the window; it is resent
  with a fresh tag as soon as the window has room, retransmissions first.
  Until then a reply to its old tag still completes it;
* a reply to a tag no longer in use (superseded by a retransmission, or
  already answered) is counted and dropped, never delivered twice; its
  tag's time still feeds the RTT estimate;
* a frame whose total wait exceeds ``dead_after`` seconds marks the target
  dead: every pending request fails with ``TargetDead``;
* ATA status & 0xA9 fails the request at once (``AtaError``), as does a
  read reply shorter than the request's sector count (``RuntReply``).

Not in the driver, off by default (``fast_retransmit``): loss detection
from later replies, like TCP's fast retransmit and RACK (RFC 8985). A frame
is declared lost before its timeout once replies have completed
``fast_retransmit_after`` (3) frames sent after it *and* it has waited
longer than avg + 4·dev of the RTT estimate (the reordering allowance:
targets and the harness's fault layer may answer out of order). It is
resent at once with a fresh tag, even beyond ``maxout`` but never beyond
the target's buffer count, and the window takes a fast-recovery cut
(``CongestionWindow.on_fast_loss``) instead of collapsing to 1; losses of
frames sent before the last cut (or before the last timeout) cut nothing
more, so a burst of losses in one window halves it once. A timeout (no
later replies: a dead or stalled target, a lost tail) still collapses the
window to 1 and halves the threshold. A spurious early retransmission is
harmless: requests are idempotent, and the late reply to the old tag is
counted (``late_replies``) and dropped like any other.

Where the driver only logs: an AoE error reply (E=1) fails the request with
``AoEErrorReply`` by default; ``aoe_errors='retry'`` drops it like the
driver, so the frame times out and is retried until ``dead_after``.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass, fields
from typing import Deque, Dict, List, Optional, Tuple

from aoeconform.errors import EXIT_FAILURES, HarnessError, TargetUnreachable
from aoeconform.wire import Frame, Header
from aoeconform.wire.constants import (
    AFLAG_E,
    AFLAG_W,
    ATA_FLUSH_CACHE,
    ATA_FLUSH_CACHE_EXT,
    ATA_HEADER_END,
    ATA_IDENTIFY_DEVICE,
    ATA_READ_SECTORS,
    ATA_READ_SECTORS_EXT,
    ATA_STATUS_FAILURE_MASK,
    ATA_WRITE_SECTORS,
    ATA_WRITE_SECTORS_EXT,
    CMD_ATA,
    ERROR_NAMES,
    ETH_MIN_FRAME,
    FLAG_ERROR,
    FLAG_RESPONSE,
    IDENTIFY_DEVICE_BITS,
    LBA48_LIMIT,
    LBA_MODE_BITS,
    SECTOR_SIZE,
    TAG_TOOL_BIT,
)

from aoeconform.session.rtt import RTT_AVG_SCALE, RTT_DEV_SCALE, RttEstimator
from .tags import DEFAULT_TICK, TAG_COUNTER_MASK, TAG_COUNTER_SHIFT, TAG_TIME_MASK, TagAllocator
from .window import DEFAULT_MAXOUT_CAP, CongestionWindow

#: the driver's default ``aoe_deadsecs``
DEFAULT_DEAD_AFTER = 180.0
#: 28-bit commands address 2**28 sectors
LBA28_LIMIT = 1 << 28
#: later frames answered before an unanswered one counts as lost (TCP's DupThresh)
FAST_RETRANSMIT_AFTER = 3
#: how many used-up tags are remembered to tell late and duplicate replies apart
SPENT_TAGS_REMEMBERED = 16384

AOE_ERRORS_FAIL = "fail"
AOE_ERRORS_RETRY = "retry"

_TAG = struct.Struct("!I")
# the ATA argument (frame bytes 24-35): aflags, err/feature, sector count,
# cmd/status, lba bits 0-31 and 32-47 (little-endian, §3.1), reserved
_ATA_ARG = struct.Struct("<BBBBIH2x")
# the same followed by the padding that brings a 36-byte read request to 60
_ATA_ARG_PADDED = struct.Struct("<BBBBIH2x%dx" % (ETH_MIN_FRAME - ATA_HEADER_END))


# --- errors --------------------------------------------------------------
class InitiatorError(HarnessError):
    """A request failed because of what the target answered."""

    exit_status = EXIT_FAILURES


class AoEErrorReply(InitiatorError):
    """The target answered with E=1 and an AoE error code (§2.4)."""

    def __init__(self, code: int, tag: int, lba: Optional[int] = None, opcode: Optional[int] = None):
        self.code = code
        self.tag = tag
        self.lba = lba
        self.opcode = opcode
        name = ERROR_NAMES.get(code, "unknown error code")
        where = "" if lba is None else f" for opcode 0x{opcode:02x} at lba {lba}"
        super().__init__(f"target replied with AoE error {code} ({name}){where}, tag 0x{tag:08x}")


class AtaError(InitiatorError):
    """The ATA status has BSY, DF, DRQ or ERR set (status & 0xA9)."""

    def __init__(self, status: int, error: int, opcode: int, lba: int, tag: int):
        self.status = status
        self.error = error
        self.opcode = opcode
        self.lba = lba
        self.tag = tag
        super().__init__(
            f"ATA error: status 0x{status:02x} error 0x{error:02x} for opcode 0x{opcode:02x} "
            f"at lba {lba} (tag 0x{tag:08x})"
        )


class RuntReply(InitiatorError):
    """A reply carried less data than the request asked for."""

    def __init__(self, expected: int, got: int, opcode: int, lba: int, tag: int):
        self.expected = expected
        self.got = got
        self.opcode = opcode
        self.lba = lba
        self.tag = tag
        super().__init__(
            f"reply to opcode 0x{opcode:02x} at lba {lba} carried {got} data bytes, "
            f"{expected} expected (tag 0x{tag:08x})"
        )


class TargetDead(TargetUnreachable):
    """A frame went unanswered for longer than ``dead_after`` seconds."""

    def __init__(self, waited: float, dead_after: float, shelf: int, slot: int, attempts: int):
        self.waited = waited
        self.dead_after = dead_after
        self.shelf = shelf
        self.slot = slot
        self.attempts = attempts
        super().__init__(
            f"target {shelf}.{slot} did not answer a frame for {waited:.1f} s "
            f"({attempts} transmissions, limit {dead_after:g} s); check that it is running "
            "and reachable on this interface"
        )


# --- requests -------------------------------------------------------------
class IoRequest:
    """One read, write or single ATA command, possibly spanning many frames."""

    __slots__ = (
        "kind", "opcode", "lba", "count", "chunks", "_data_read", "data", "frames_total", "frames_left",
        "error", "done", "submitted_at", "completed_at", "status", "err_feature", "reply_data",
    )

    READ = "read"
    WRITE = "write"
    COMMAND = "command"

    def __init__(self, kind: str, opcode: int, lba: int, count: int, data=None):
        self.kind = kind
        self.opcode = opcode
        self.lba = lba
        self.count = count
        # a read's data, one slice of a reply per frame, joined once on demand
        self.chunks: list = []
        self._data_read: Optional[bytes] = None
        self.data = data
        self.frames_total = 0
        self.frames_left = 0
        self.error: Optional[BaseException] = None
        self.done = False
        self.submitted_at: Optional[float] = None
        self.completed_at: Optional[float] = None
        # for single commands: the reply's ATA registers and data
        self.status: Optional[int] = None
        self.err_feature: Optional[int] = None
        self.reply_data: bytes = b""

    def result(self):
        """The read data (bytes), the reply data of a command, or None; raises the request's error."""
        if not self.done:
            raise RuntimeError("request is still in progress; wait until done is True")
        if self.error is not None:
            raise self.error
        if self.kind == self.READ:
            if self._data_read is None:
                self._data_read = b"".join(self.chunks)
                self.chunks = []
            return self._data_read
        if self.kind == self.COMMAND:
            return self.reply_data
        return None

    def __repr__(self) -> str:
        state = "done" if self.done else f"{self.frames_left}/{self.frames_total} frames left"
        if self.error is not None:
            state = f"failed: {self.error}"
        return f"IoRequest({self.kind} op=0x{self.opcode:02x} lba={self.lba} count={self.count}, {state})"


class _Frame:
    """One frame's worth of a request, and its transmission history."""

    __slots__ = (
        "request", "index", "tag", "lba", "offset", "nbytes", "body", "sent_at", "first_sent_at", "waited", "sends",
        "seq", "overtaken", "fast",
    )

    def __init__(self, request: IoRequest, index: int, lba: int, offset: int, nbytes: int, body: Optional[bytes]):
        self.request = request
        self.index = index  # position in the request
        self.tag = -1
        self.lba = lba
        self.offset = offset  # byte offset of this frame's data in the request
        self.nbytes = nbytes  # data bytes expected in (read) or carried by (write) the frame
        self.body = body  # frame bytes after the tag; None until first sent
        self.sent_at = 0.0
        self.first_sent_at = 0.0
        self.waited = 0.0  # time spent waiting in earlier transmissions
        self.sends = 0
        self.seq = 0  # the engine's transmission counter at the last send
        self.overtaken = 0  # frames sent after this transmission and answered before it
        self.fast = False  # out of the window by loss detection, not by a timeout


@dataclass
class EngineStats:
    """Counters; ``as_dict`` for reports."""

    requests: int = 0
    frames: int = 0  # frames made from requests
    frames_sent: int = 0  # first transmissions
    retransmissions: int = 0  # all of them: timeout_ plus fast_retransmissions
    timeout_retransmissions: int = 0  # frames resent after their retransmit timeout
    fast_retransmissions: int = 0  # frames resent after later frames were answered (fast_retransmit)
    replies: int = 0  # replies that completed a frame
    late_replies: int = 0  # to a tag replaced by a retransmission
    duplicate_replies: int = 0  # to a tag already answered
    unknown_replies: int = 0  # to a tag this engine never used (or forgot)
    ignored_frames: int = 0  # not a response, another command, device or tool tag
    malformed: int = 0  # too short to be an ATA reply
    timeouts: int = 0
    fast_losses: int = 0  # frames declared lost by later replies, before their timeout
    fast_recoveries: int = 0  # window cuts those losses made (at most one per window of frames)
    aoe_errors: int = 0
    ata_errors: int = 0
    runts: int = 0

    def as_dict(self) -> Dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


# --- the engine -------------------------------------------------------------
class InitiatorEngine:
    """Initiator state for one AoE device (shelf.slot) reached at one target MAC.

    ``min_timeout``/``max_timeout`` clamp the retransmit timeout and
    ``seed_rtt`` lets the first round trip after IDENTIFY set the estimate
    (``rtt.RttEstimator``); ``fast_retransmit`` detects losses from later
    replies before the timeout (module docstring); the defaults are the
    driver's behaviour.
    """

    def __init__(
        self,
        src_mac: bytes,
        dst_mac: bytes,
        shelf: int,
        slot: int,
        *,
        sectors_per_frame: int = 2,
        bufcnt: int = 16,
        maxout_cap: int = DEFAULT_MAXOUT_CAP,
        lba48: bool = True,
        capacity: Optional[int] = None,
        min_timeout: float = 0.0,
        max_timeout: Optional[float] = None,
        dead_after: float = DEFAULT_DEAD_AFTER,
        aoe_errors: str = AOE_ERRORS_FAIL,
        seed_rtt: bool = False,
        fast_retransmit: bool = False,
        fast_retransmit_after: int = FAST_RETRANSMIT_AFTER,
        tick: float = DEFAULT_TICK,
        tool_tag_bit: bool = False,
        now: float = 0.0,
    ):
        if sectors_per_frame < 1:
            raise ValueError(f"sectors_per_frame must be at least 1, got {sectors_per_frame}")
        if fast_retransmit_after < 1:
            raise ValueError(f"fast_retransmit_after must be at least 1 reply, got {fast_retransmit_after}")
        if aoe_errors not in (AOE_ERRORS_FAIL, AOE_ERRORS_RETRY):
            raise ValueError(f"aoe_errors must be 'fail' or 'retry', got {aoe_errors!r}")
        self.src_mac = bytes(src_mac)
        self.dst_mac = bytes(dst_mac)
        self.shelf = shelf
        self.slot = slot
        self.sectors_per_frame = sectors_per_frame
        self.lba48 = lba48
        self.capacity = capacity
        self.dead_after = dead_after
        self.aoe_errors = aoe_errors
        self.fast_retransmit = fast_retransmit
        self.fast_retransmit_after = fast_retransmit_after
        self.rtt = RttEstimator(min_timeout, max_timeout, seed_rtt)
        self.window = CongestionWindow(bufcnt, maxout_cap, now)
        self.tags = TagAllocator(tick, tool_tag_bit)
        self.stats = EngineStats()
        self.dead: Optional[TargetDead] = None
        # bytes 0-19 of every request: Ethernet and AoE header up to the tag
        self._prefix = Header(self.dst_mac, self.src_mac, shelf, slot, CMD_ATA, 0).encode()[:20]
        self._address = self._prefix[16:19]  # shelf (2 bytes) and slot, for matching replies
        self._accept_tool_bit = tool_tag_bit
        self._pending: Deque[_Frame] = deque()  # never sent
        self._rexmit: Deque[_Frame] = deque()  # timed out, waiting for window room
        self._active: Dict[int, _Frame] = {}  # on the wire, in send order
        self._fast: Deque[_Frame] = deque()  # declared lost by later replies, to resend at once
        self._deferred: Dict[int, _Frame] = {}  # tags of frames in _rexmit and _fast
        # transmissions so far (each frame's seq is its place in this count), the
        # last one before the latest window cut, and when the first frame that is
        # overtaken often enough will have waited out the reordering allowance
        self._seq = 0
        self._recover = 0
        self._reorder_deadline: Optional[float] = None
        # used-up tags, in two generations so the memory stays bounded
        self._answered: set = set()
        self._answered_old: set = set()
        self._superseded: set = set()
        self._superseded_old: set = set()
        # the retransmit timeout, refreshed on every tick like the driver's timer
        self._timeout = self.rtt.retransmit_timeout()

    # --- configuration ----------------------------------------------------
    def set_target(self, dst_mac: bytes) -> None:
        """Send future frames (and retransmissions) to another MAC."""
        self.dst_mac = bytes(dst_mac)
        self._prefix = self.dst_mac + self._prefix[6:]

    def set_bufcnt(self, bufcnt: int, now: float) -> None:
        self.window.set_bufcnt(bufcnt, now)

    def set_geometry(self, capacity: Optional[int], lba48: bool) -> None:
        """What IDENTIFY said: the addressable size and whether to use 48-bit commands."""
        self.capacity = capacity
        self.lba48 = lba48

    @property
    def idle(self) -> bool:
        """Nothing queued, in flight or waiting for retransmission."""
        return not (self._pending or self._active or self._rexmit or self._fast)

    @property
    def outstanding(self) -> int:
        return len(self._active)

    # --- submitting -------------------------------------------------------
    def _check_alive(self) -> None:
        if self.dead is not None:
            raise self.dead

    def _check_range(self, lba: int, count: int) -> None:
        if count < 1:
            raise ValueError(f"sector count must be at least 1, got {count}")
        if lba < 0:
            raise ValueError(f"lba must not be negative, got {lba}")
        limit = LBA48_LIMIT if self.lba48 else LBA28_LIMIT
        if lba + count > limit:
            raise ValueError(
                f"lba {lba} + {count} sectors is beyond {'48' if self.lba48 else '28'}-bit addressing"
            )
        if self.capacity is not None and lba + count > self.capacity:
            raise ValueError(f"lba {lba} + {count} sectors is past the end of the device ({self.capacity} sectors)")

    @staticmethod
    def _arg(aflags: int, feature: int, scnt: int, opcode: int, lba_field: int) -> bytes:
        # the ATA argument after the tag: frame bytes 24-35
        return _ATA_ARG.pack(aflags, feature, scnt & 0xFF, opcode, lba_field & 0xFFFFFFFF, (lba_field >> 32) & 0xFFFF)

    def _lba_field(self, lba: int) -> int:
        if self.lba48:
            return lba
        # 28-bit: the high nibble of lba3 holds the device register bits
        return (lba & 0xFFFFFF) | ((LBA_MODE_BITS | ((lba >> 24) & 0x0F)) << 24)

    def _split(self, request: IoRequest, now: float) -> IoRequest:
        self._check_alive()
        spf = self.sectors_per_frame
        lba, count = request.lba, request.count
        frames: List[_Frame] = []
        offset = 0
        while count > 0:
            n = spf if count > spf else count
            frames.append(_Frame(request, len(frames), lba, offset, n * SECTOR_SIZE, None))
            lba += n
            count -= n
            offset += n * SECTOR_SIZE
        request.frames_total = request.frames_left = len(frames)
        request.submitted_at = now
        if request.kind == IoRequest.READ:
            request.chunks = [b""] * len(frames)
        self._pending.extend(frames)
        self.stats.requests += 1
        self.stats.frames += len(frames)
        return request

    def submit_read(self, lba: int, count: int, now: float = 0.0) -> IoRequest:
        self._check_range(lba, count)
        opcode = ATA_READ_SECTORS_EXT if self.lba48 else ATA_READ_SECTORS
        return self._split(IoRequest(IoRequest.READ, opcode, lba, count), now)

    def submit_write(self, lba: int, data, now: float = 0.0) -> IoRequest:
        if len(data) % SECTOR_SIZE or not data:
            raise ValueError(f"write data must be a non-empty multiple of {SECTOR_SIZE} bytes, got {len(data)}")
        count = len(data) // SECTOR_SIZE
        self._check_range(lba, count)
        opcode = ATA_WRITE_SECTORS_EXT if self.lba48 else ATA_WRITE_SECTORS
        return self._split(IoRequest(IoRequest.WRITE, opcode, lba, count, memoryview(data)), now)

    def submit(self, kind: str, lba: int, count_or_data, now: float = 0.0) -> IoRequest:
        """``submit('read', lba, count)`` or ``submit('write', lba, data)``."""
        if kind == IoRequest.READ:
            return self.submit_read(lba, count_or_data, now)
        if kind == IoRequest.WRITE:
            return self.submit_write(lba, count_or_data, now)
        raise ValueError(f"kind must be 'read' or 'write', got {kind!r}")

    def submit_command(
        self,
        opcode: int,
        *,
        sector_count: int = 0,
        lba_field: int = 0,
        aflags: int = 0,
        feature: int = 0,
        data: bytes = b"",
        reply_bytes: int = 0,
        now: float = 0.0,
    ) -> IoRequest:
        """One ATA command in one frame, fields as given (``lba_field`` is the raw 48-bit field).

        ``reply_bytes`` is how much data the reply must carry at least.
        """
        self._check_alive()
        request = IoRequest(IoRequest.COMMAND, opcode, lba_field, sector_count, data)
        body = self._arg(aflags, feature, sector_count, opcode, lba_field) + bytes(data)
        if len(body) + 24 < ETH_MIN_FRAME:
            body += bytes(ETH_MIN_FRAME - 24 - len(body))
        request.frames_total = request.frames_left = 1
        request.submitted_at = now
        self._pending.append(_Frame(request, 0, lba_field, 0, reply_bytes, body))
        self.stats.requests += 1
        self.stats.frames += 1
        return request

    def submit_identify(self, now: float = 0.0) -> IoRequest:
        """ATA IDENTIFY DEVICE (scnt 1, lba3 0xA0). Resets the RTT estimate, as the driver does."""
        self.rtt.reset()
        self._timeout = self.rtt.retransmit_timeout()
        return self.submit_command(
            ATA_IDENTIFY_DEVICE, sector_count=1, lba_field=IDENTIFY_DEVICE_BITS << 24, reply_bytes=SECTOR_SIZE, now=now
        )

    def submit_flush(self, extended: bool = False, now: float = 0.0) -> IoRequest:
        """FLUSH CACHE 0xE7 by default; ``extended`` sends FLUSH CACHE EXT 0xEA with AFlags E.

        0xE7 is the default because vblade rejects 0xEA with ABRT (reference §3).
        """
        if extended:
            return self.submit_command(ATA_FLUSH_CACHE_EXT, aflags=AFLAG_E, now=now)
        return self.submit_command(ATA_FLUSH_CACHE, lba_field=LBA_MODE_BITS << 24, now=now)

    # --- sending ------------------------------------------------------------
    def _body(self, frame: _Frame) -> bytes:
        request = frame.request
        nsect = frame.nbytes // SECTOR_SIZE
        lba = self._lba_field(frame.lba)
        if request.kind == IoRequest.WRITE:
            aflags = (AFLAG_E | AFLAG_W) if self.lba48 else AFLAG_W
            arg = _ATA_ARG.pack(aflags, 0, nsect, request.opcode, lba & 0xFFFFFFFF, lba >> 32)
            return arg + request.data[frame.offset:frame.offset + frame.nbytes]
        # a read request is 36 bytes: padded to the Ethernet minimum
        aflags = AFLAG_E if self.lba48 else 0
        return _ATA_ARG_PADDED.pack(aflags, 0, nsect, request.opcode, lba & 0xFFFFFFFF, lba >> 32)

    def poll_sends(self, now: float) -> List[Tuple[int, bytes]]:
        """Frames to put on the wire now, as (tag, frame bytes); respects the window.

        Frames declared lost by later replies go first and may exceed
        ``maxout`` (the lost frame left the window), never ``nframes``.
        """
        window = self.window
        fast = self._fast
        if (window.nout >= window.maxout and not fast) or self.dead is not None:
            return []
        out = []
        prefix = self._prefix
        active, deferred = self._active, self._deferred
        rexmit, pending = self._rexmit, self._pending
        stats = self.stats
        pack_tag = _TAG.pack
        # tag fields (tags.TagAllocator layout), computed once for this batch
        tags = self.tags
        ticks = int(now * tags._per_second) & TAG_TIME_MASK
        if tags.tool_bit:
            ticks |= TAG_TOOL_BIT
        counter = tags.counter
        seq = self._seq
        while True:
            if fast and window.nout < window.nframes:
                frame = fast.popleft()
                old = frame.tag
                del deferred[old]
                self._spend(old, self._superseded)
                if frame.request.done:
                    continue
                frame.waited += now - frame.sent_at
                stats.retransmissions += 1
                stats.fast_retransmissions += 1
            elif window.nout >= window.maxout:
                break
            elif rexmit:
                frame = rexmit.popleft()
                old = frame.tag
                del deferred[old]
                self._spend(old, self._superseded)
                if frame.request.done:
                    continue  # failed meanwhile: nothing left to ask for
                frame.waited += now - frame.sent_at
                stats.retransmissions += 1
                stats.timeout_retransmissions += 1
            elif pending:
                frame = pending.popleft()
                if frame.request.done:
                    frame.request.frames_left -= 1
                    continue
                if frame.body is None:
                    frame.body = self._body(frame)
                frame.first_sent_at = now
                stats.frames_sent += 1
            else:
                break
            while True:  # a fresh tag, never one still in use
                counter = (counter + 1) & TAG_COUNTER_MASK
                tag = ticks | (counter << TAG_COUNTER_SHIFT)
                if tag not in active and tag not in deferred:
                    break
            frame.tag = tag
            frame.sent_at = now
            frame.sends += 1
            seq += 1
            frame.seq = seq
            frame.overtaken = 0
            active[tag] = frame
            window.nout += 1
            assert frame.body is not None  # made at the first send, above
            out.append((tag, prefix + pack_tag(tag) + frame.body))
        tags.counter = counter
        self._seq = seq
        return out

    # --- receiving -----------------------------------------------------------
    def _spend(self, tag: int, generation: set) -> None:
        generation.add(tag)
        if len(generation) >= SPENT_TAGS_REMEMBERED:
            if generation is self._answered:
                self._answered_old, self._answered = generation, set()
            else:
                self._superseded_old, self._superseded = generation, set()

    def _late_sample(self, tag: int, now: float) -> None:
        # the driver times unmatched replies by the send time in the tag
        self.rtt.sample(self.tags.elapsed_us(tag, now))

    def on_frame(self, raw: bytes, now: float) -> Optional[IoRequest]:
        """Process one received frame; returns the request it completed, if any."""
        if len(raw) < ATA_HEADER_END:
            self.stats.malformed += 1
            return None
        verflags = raw[14]
        tag = _TAG.unpack_from(raw, 20)[0]
        if (
            not verflags & FLAG_RESPONSE
            or raw[19] != CMD_ATA
            or raw[16:19] != self._address
            or (tag >= TAG_TOOL_BIT) != self._accept_tool_bit
        ):
            self.stats.ignored_frames += 1
            return None
        if verflags & FLAG_ERROR and self.aoe_errors == AOE_ERRORS_RETRY:
            # the driver logs E=1 replies and drops them: the frame will time out
            self.stats.aoe_errors += 1
            return None
        frame = self._active.pop(tag, None)
        if frame is None:
            return self._unmatched(raw, verflags, tag, now)
        # RTT sample (rtt.RttEstimator.sample, inlined: this is the hot path)
        rtt = self.rtt
        if rtt.samples:
            error = int((now - frame.sent_at) * 1_000_000) - (rtt.avg_scaled >> RTT_AVG_SCALE)
            rtt.avg_scaled += error
            if error < 0:
                error = -error
            rtt.dev_scaled += error - (rtt.dev_scaled >> RTT_DEV_SCALE)
            rtt.samples += 1
        else:
            rtt.sample(int((now - frame.sent_at) * 1_000_000))
        window = self.window
        if window.maxout < window.nframes:
            window.on_answer(now)
        elif window.nout > 0:
            window.nout -= 1
        if self.fast_retransmit and self._active:
            # frames still out that were sent before this one were overtaken
            if next(iter(self._active.values())).seq < frame.seq:
                self._overtaken(frame.seq, now)
        return self._answered_frame(frame, raw, verflags, tag, now)

    def _reorder_allowance(self) -> float:
        """How long a frame may wait before later replies can prove it lost: avg + 4·dev, seconds."""
        rtt = self.rtt
        return ((rtt.avg_scaled >> RTT_AVG_SCALE) + 4 * (rtt.dev_scaled >> RTT_DEV_SCALE)) / 1_000_000

    def _overtaken(self, seq: int, now: float) -> None:
        """A reply completed transmission ``seq``: every frame sent before it and
        still out was overtaken once more; those overtaken often enough that
        have waited out the reordering allowance are lost."""
        threshold = self.fast_retransmit_after
        allowance = self._reorder_allowance()
        lost = []
        for frame in self._active.values():
            if frame.seq > seq:
                break  # in send order: the rest were sent later
            frame.overtaken += 1
            if frame.overtaken >= threshold:
                due = frame.sent_at + allowance
                if now >= due:
                    lost.append(frame)
                elif self._reorder_deadline is None or due < self._reorder_deadline:
                    self._reorder_deadline = due
        for frame in lost:
            self._fast_loss(frame, now)

    def _fast_loss(self, frame: _Frame, now: float) -> None:
        """Take a frame proven lost out of the window and queue it to be resent at once."""
        del self._active[frame.tag]
        self._deferred[frame.tag] = frame
        frame.fast = True
        self._fast.append(frame)
        self.stats.fast_losses += 1
        # one cut per window of frames: only a frame sent after the last cut makes another
        cut = frame.seq > self._recover
        if cut:
            self._recover = self._seq
            self.stats.fast_recoveries += 1
        self.window.on_fast_loss(now, cut)

    def _unmatched(self, raw: bytes, verflags: int, tag: int, now: float) -> Optional[IoRequest]:
        frame = self._deferred.pop(tag, None)
        if frame is None:
            if tag in self._superseded or tag in self._superseded_old:
                self.stats.late_replies += 1
                self._late_sample(tag, now)
            elif tag in self._answered or tag in self._answered_old:
                self.stats.duplicate_replies += 1
                self._late_sample(tag, now)
            else:
                self.stats.unknown_replies += 1
            return None
        # out of the window but not yet resent: the answer still counts
        (self._fast if frame.fast else self._rexmit).remove(frame)
        self.rtt.sample(int((now - frame.sent_at) * 1_000_000))
        return self._answered_frame(frame, raw, verflags, tag, now)

    def _answered_frame(self, frame: _Frame, raw: bytes, verflags: int, tag: int, now: float) -> Optional[IoRequest]:
        answered = self._answered
        answered.add(tag)
        if len(answered) >= SPENT_TAGS_REMEMBERED:
            self._answered_old, self._answered = answered, set()
        self.stats.replies += 1
        request = frame.request
        request.frames_left -= 1
        if request.done:
            return None  # already failed; the rest of its frames drain quietly
        if verflags & FLAG_ERROR or raw[27] & ATA_STATUS_FAILURE_MASK or request.kind is IoRequest.COMMAND:
            return self._complete(frame, raw, verflags, tag, now)
        if request.kind is IoRequest.READ:
            end = ATA_HEADER_END + frame.nbytes
            if len(raw) < end:
                return self._complete(frame, raw, verflags, tag, now)
            request.chunks[frame.index] = memoryview(raw)[ATA_HEADER_END:end]
        if request.frames_left:
            return None
        request.done = True
        request.completed_at = now
        return request

    def _complete(self, frame: _Frame, raw: bytes, verflags: int, tag: int, now: float) -> Optional[IoRequest]:
        """The slow path: errors, runts and single commands."""
        request = frame.request
        status = raw[27]
        error: Optional[BaseException] = None
        if verflags & FLAG_ERROR:
            self.stats.aoe_errors += 1
            error = AoEErrorReply(raw[15], tag, frame.lba, request.opcode)
        elif status & ATA_STATUS_FAILURE_MASK:
            self.stats.ata_errors += 1
            error = AtaError(status, raw[25], request.opcode, frame.lba, tag)
        elif frame.nbytes and request.kind != IoRequest.WRITE:
            end = ATA_HEADER_END + frame.nbytes
            if len(raw) < end:
                self.stats.runts += 1
                error = RuntReply(frame.nbytes, len(raw) - ATA_HEADER_END, request.opcode, frame.lba, tag)
            elif request.kind == IoRequest.READ:
                request.chunks[frame.index] = memoryview(raw)[ATA_HEADER_END:end]
        if request.kind == IoRequest.COMMAND:
            request.status = status
            request.err_feature = raw[25]
            request.reply_data = bytes(raw[ATA_HEADER_END:])
        if error is not None:
            request.error = error
        elif request.frames_left:
            return None
        request.done = True
        request.completed_at = now
        return request

    # --- time ------------------------------------------------------------------
    def next_deadline(self) -> Optional[float]:
        """When the oldest frame on the wire times out (None if nothing is out).

        Uses the timeout computed at the last ``on_tick``: like the driver's
        timer, the estimate is read once per tick, so call ``on_tick``
        regularly (the driver does every 100 ms) as well as at deadlines.
        With ``fast_retransmit`` this is earlier when a frame already
        overtaken often enough will have waited out the reordering allowance.
        """
        reorder = self._reorder_deadline
        for frame in self._active.values():
            deadline = frame.sent_at + self._timeout
            return reorder if reorder is not None and reorder < deadline else deadline
        return reorder

    def on_tick(self, now: float) -> Optional[TargetDead]:
        """Time out old frames (they are resent by ``poll_sends``) and detect a dead target.

        Returns the ``TargetDead`` event the first time the target is declared dead.
        """
        self._timeout = timeout = self.rtt.retransmit_timeout()
        self._reorder_deadline = None
        if self.dead is not None or not (self._active or self._rexmit or self._fast):
            return None
        dead_after = self.dead_after
        expired = []
        for frame in self._active.values():
            # the same sum as next_deadline(), so a tick at a deadline always finds it due
            if now < frame.sent_at + timeout:
                break  # in send order: the rest are younger
            expired.append(frame)
        for frame in list(self._rexmit) + list(self._fast) + expired:
            waited = frame.waited + (now - frame.sent_at)
            if dead_after and waited > dead_after:
                return self._declare_dead(frame, waited, now)
        window = self.window
        for frame in expired:
            del self._active[frame.tag]
            self._deferred[frame.tag] = frame
            self._rexmit.append(frame)
            frame.fast = False
            window.on_timeout(now)
            self.stats.timeouts += 1
        if expired:
            # the frames out now belong to the window the timeout just cut
            self._recover = self._seq
        if self.fast_retransmit and self._active:
            self._check_overtaken(now)
        return None

    def _check_overtaken(self, now: float) -> None:
        """Frames overtaken often enough whose reordering allowance ran out
        while no reply came: lost (the replies that would tell may never come)."""
        threshold = self.fast_retransmit_after
        allowance = self._reorder_allowance()
        lost = []
        for frame in self._active.values():
            if frame.overtaken < threshold:
                break  # older frames are overtaken at least as often as newer ones
            due = frame.sent_at + allowance
            if now >= due:
                lost.append(frame)
            elif self._reorder_deadline is None or due < self._reorder_deadline:
                self._reorder_deadline = due
        for frame in lost:
            self._fast_loss(frame, now)

    def _declare_dead(self, frame: _Frame, waited: float, now: float) -> TargetDead:
        dead = TargetDead(waited, self.dead_after, self.shelf, self.slot, frame.sends)
        self.dead = dead
        for group in (self._active.values(), self._rexmit, self._fast, self._pending):
            for f in group:
                request = f.request
                if not request.done:
                    request.error = dead
                    request.done = True
                    request.completed_at = now
        for tag in list(self._active) + list(self._deferred):
            self._spend(tag, self._superseded)
        self._active.clear()
        self._deferred.clear()
        self._rexmit.clear()
        self._fast.clear()
        self._reorder_deadline = None
        self._pending.clear()
        self.window.nout = 0
        return dead

    def revive(self, now: float) -> None:
        """Forget a dead verdict (after the target answered IDENTIFY again)."""
        self.dead = None
        self.window.reset(now)
        self.rtt.reset()
        self._timeout = self.rtt.retransmit_timeout()

    # --- reporting ----------------------------------------------------------------
    def counters(self) -> Dict[str, object]:
        """Everything a report wants: counters, RTT estimate, current window."""
        out: Dict[str, object] = dict(self.stats.as_dict())
        out.update(
            rtt_avg_us=self.rtt.avg_us,
            rtt_dev_us=self.rtt.dev_us,
            retransmit_timeout_us=self.rtt.retransmit_timeout_us(),
            maxout=self.window.maxout,
            ssthresh=self.window.ssthresh,
            nframes=self.window.nframes,
        )
        return out

    @property
    def window_history(self) -> List[Tuple[float, int]]:
        return self.window.history


def describe_frame(raw: bytes) -> str:
    """One line for a frame, for error messages and logs (uses the full codec)."""
    try:
        return Frame.decode(raw).describe()
    except Exception as exc:  # a malformed frame is still worth naming
        return f"undecodable frame of {len(raw)} bytes ({exc})"
