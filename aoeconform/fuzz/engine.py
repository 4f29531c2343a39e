"""The fuzzing loop: pipelined sending, oracles, fences, restarts, shrinking.

Cases go out with several requests outstanding (at most the target's
Buffer Count, rule 19) and replies are matched by tag alone (rule 20).
Nothing waits per case for silence. A reply settles every case sent
before it: a target that answers in order (vblade, the reference target)
will never answer those, so they keep only a short grace for a late reply
(still checked) and free their place in the window at once. When the
loop cannot send (the window is full, a state-changing case is in
flight, the run is ending) it sends a *fence*, a Query Config read
(rule 36), whose answer settles everything sent before it; a fence is also
the health check, sent in line every ``health_every`` cases. A case that
may change the target's state (``Fuzzer.serialise``) goes out alone,
followed by a fence, so that what it changed is settled before the next.

The loop stops to drain and run the serial checkpoint only when there is
something to settle: a finding to shrink, an expected reply that never
came (sent again to confirm), a fence left unanswered (the health check
then decides whether the target stopped answering: the frames since the
last answered fence are saved, the restart hook is run and the sequence is
shrunk, ddmin then each frame; without a restart hook the run ends there).

Same seed, same target, same options: the same cases, in the same order.
"""

from __future__ import annotations

import collections
import multiprocessing
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Collection, Dict, List, Optional, Sequence, TextIO, Tuple

from aoeconform.errors import TargetUnreachable
from aoeconform.session import Session, TargetFacts, TargetState, requests
from aoeconform.transport.base import Transport
from aoeconform.wire.constants import (
    CCMD_FORCE_SET,
    CCMD_SET,
    CMD_MAC_MASK,
    CMD_QUERY_CONFIG,
    CMD_RESERVE_RELEASE,
    ETH_P_AOE,
    FLAG_ERROR,
    FLAG_RESPONSE,
    RCMD_SET,
    TAG_TOOL_BIT,
)

from . import findings as findings_mod
from .charge import command_rule, field_rule, owed_rule
from .context import WritePolicy
from .feed import CaseFeed
from .findings import TAG_KINDS, Finding, command_class, group_of
from .admin_requests import AdminRequests
from .model import MODEL_KINDS, SETUP_TAG_BASE, TargetModel
from .mutate import Case, CaseGenerator, ata_request, case_tag, changes_state
from .oracle import Anomaly, check_reply, is_advertisement
from .seeds import Seed, generated_seeds
from .together import contended_sets, step_groups, step_together, together
from .shrink import BURST_KINDS, HEALTH_TAG_BASE, PRIME_TAG_BASE, REPLAY_TAG_BASE, Budget, Replayer, ddmin, health_tags, shrink_frame

_AOE = ETH_P_AOE.to_bytes(2, "big")
#: how many answered or given-up cases are remembered, to check late replies
RECENT_CASES = 4096
#: how long after a replay a reply with its tag is taken for the replay's
REPLAY_ECHO_SECONDS = 5.0
#: tags of the loop's fences and in-line canary reads (cases whose tag falls
#: in a reserved range go out only when nothing else is outstanding)
FENCE_TAG_BASE = 0x7D000000
CANARY_TAG_BASE = 0x7E000000
#: tags of the buffer-count bursts and of what two initiators do at once (``_burst``, ``_contend``)
BURST_TAG_BASE = 0x7B000000
#: tags of the one-sector READs that settle a sector the model is in doubt about (``TargetModel.doubts``)
DOUBT_TAG_BASE = 0x78000000
RESERVED_TAG_RANGES = frozenset((HEALTH_TAG_BASE, CANARY_TAG_BASE, FENCE_TAG_BASE, BURST_TAG_BASE, PRIME_TAG_BASE, SETUP_TAG_BASE,
                                 REPLAY_TAG_BASE, DOUBT_TAG_BASE))
#: how many frames sent back to back are remembered, to keep a finding's together (a few bursts' worth)
SENT_TOGETHER_KEPT = 512
#: the ``seed`` of the requests the periodic checks make (``_burst``, ``_serial``): not fuzz cases
HARNESS_CASES = frozenset({"burst", "contend"})
#: how many tags that are not their case's own number are remembered (``Fuzzer._foreign_tags``)
FOREIGN_TAGS_KEPT = 1 << 20
#: runs at least this long make their cases ahead in a helper process (its start costs a few hundred ms of the other core)
FEED_MIN_SECONDS = 2.0
FEED_MIN_CASES = 20_000
#: the commands whose replies tell the config string, the Mac Mask list and the reservation
ADMIN_COMMANDS = frozenset((CMD_QUERY_CONFIG, CMD_MAC_MASK, CMD_RESERVE_RELEASE))
#: how long an in-process target (``--in-memory``, selftest) is waited for at least (``Fuzzer.patience``)
IN_PROCESS_PATIENCE = 1.0
#: a burst after the second health fence sent, then after every BURST_EVERY-th
BURST_EVERY = 8
#: header anomalies after which a reply may answer another request: the model does not read it
NOT_ITS_OWN = frozenset({"tag-not-echoed", "command-not-echoed", "undecodable-reply", "wrong-address", "wrong-reply-dst",
                         "wrong-reply-src", "r-not-set", "oversize-reply", "stale-reply"})


def is_setup(frame: bytes) -> bool:
    """A request a semantic finding starts its replay with (``TargetModel._setup``)."""
    return len(frame) >= 24 and frame[20] == SETUP_TAG_BASE >> 24


@dataclass
class _Pending:
    case: Case
    sent: float
    deadline: float
    #: place in the send order (cases and fences share it)
    seq: int = 0
    replies: int = 0
    #: the model has judged it (answered, or settled unanswered)
    judged: bool = False


@dataclass
class _Fence:
    """A Query Config read sent in line: its answer settles what was sent before it."""

    tag: int
    seq: int
    deadline: float
    #: how many of the cases since the last answered fence went out before it
    since: int


@dataclass
class FuzzResult:
    seed: int
    cases: int = 0
    replies: int = 0
    silent: int = 0
    send_errors: int = 0
    health_checks: int = 0
    restarts: int = 0
    seconds: float = 0.0
    findings: List[Finding] = field(default_factory=list)
    stopped_early: str = ""
    #: the case index to give --start-index to go on where this run stopped
    next_index: int = 0
    #: the first case index, and the one it was to stop before (None: timed)
    start_index: int = 0
    end_index: Optional[int] = None
    #: "random", or "stateful" (then ``cases`` counts examples and ``steps`` their steps)
    engine: str = "random"
    steps: int = 0
    #: cases the helper process made ahead of the loop (``feed``); the rest the loop made
    made_ahead: int = 0

    @property
    def cases_per_second(self) -> float:
        return self.cases / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        if self.engine == "stateful":
            text = (f"{self.cases} examples ({self.steps} steps) in {self.seconds:.1f} s ({self.cases_per_second:.0f} examples/s), "
                    f"{self.replies} replies, {len(self.findings)} finding(s); seed {self.seed}")
            return text + (f"; stopped early: {self.stopped_early}" if self.stopped_early else "")
        text = (
            f"{self.cases} cases in {self.seconds:.1f} s ({self.cases_per_second:.0f}/s), {self.replies} replies, "
            f"{self.silent} unanswered, {self.health_checks} health checks, {self.restarts} restarts, "
            f"{len(self.findings)} finding(s); seed {self.seed}"
        )
        if self.stopped_early:
            text += f"; stopped early: {self.stopped_early}"
        return text


class Fuzzer:
    def __init__(
        self,
        transport: Transport,
        info: TargetFacts,
        *,
        seed: int = 0,
        seeds: Optional[Sequence[Seed]] = None,
        policy: WritePolicy = WritePolicy(),
        out_dir: Optional[str] = None,
        restart: Optional[Callable[[], None]] = None,
        health_every: int = 100,
        window: Optional[int] = None,
        deadline: Optional[float] = None,
        patience: float = 0.0,
        shrink: bool = True,
        shrink_kinds: Optional[Collection[str]] = None,
        shrink_budget: int = 300,
        shrink_seconds: float = 60.0,
        context_frames: int = 16,
        max_findings: int = 100,
        log: Optional[TextIO] = None,
        target_extra: Optional[dict] = None,
        expectations: Optional[dict] = None,
        feed: Optional[bool] = None,
    ):
        self.transport = transport
        self.info = info
        self.seed = seed
        self.policy = policy
        self.out_dir = out_dir
        self.restart_hook = restart
        self.health_every = max(1, health_every)
        self.window = window if window is not None else max(1, min(16, info.bufcnt))
        self.fixed_deadline = deadline
        #: how long at least a case waits for its reply (a fence a quarter of it, the health
        #: check's last try half): a target in this process answers in order whatever the
        #: machine's load, only later, so a silence judged by the clock would change with the
        #: load (the in-memory target gets a second; a case sent before an answered one is
        #: settled at once, so only a stop pays for it)
        self.patience = patience
        self.shrink_enabled = shrink
        #: only findings of these kinds are shrunk (None: every kind)
        self.shrink_kinds = None if shrink_kinds is None else frozenset(shrink_kinds)
        self.shrink_budget = shrink_budget
        self.shrink_seconds = shrink_seconds
        self.context_frames = context_frames
        self.max_findings = max_findings
        self.log = log
        #: added to each finding's target record (the in-memory target's quirks, for its replay command)
        self.target_extra = dict(target_extra or {})
        #: the target's expectations file (``fuzz/<signature glob>: reason``): its known deviations are not shrunk
        self.expectations = dict(expectations or {})
        self.generator = CaseGenerator(seed, list(seeds) if seeds is not None else generated_seeds(), info, policy)
        #: make cases ahead in a helper process (``feed.CaseFeed``): True, False, or None for
        #: long runs on a machine with a core to spare
        self.feed = feed
        #: what the target holds, as far as its acknowledgements tell; judges each reply's meaning
        self.model = TargetModel(info, policy)
        self._model_evaluations = self._model_restarts = 0
        self._bursts = 0
        #: frames sent back to back (``_together``): frame -> (which send, place in it)
        self._sent_together: "collections.OrderedDict[bytes, Tuple[int, int]]" = collections.OrderedDict()
        self._groups = 0
        self._doubt_reads = 0
        self._health_fences = 0
        self._burst_due = False
        self._advertisements = 0
        self._fresh: set = set()  # findings that reproduce only from a restarted target
        # frames seen during probes and replays may answer cases still outstanding
        self.session = Session(transport, info, restart=restart, new_tag=health_tags(), on_frame=self._on_stray_frame)
        self.replayer = Replayer(self.session)
        self.result = FuzzResult(seed)
        #: (kind, command class) -> the finding that stands for it (several groups
        #: may share one finding once their shrunk triggers are classified alike)
        self.by_group: Dict[tuple, Finding] = {}
        #: signature -> finding, once classified
        self.by_final: Dict[str, Finding] = {}
        self._outstanding: Dict[int, _Pending] = {}
        #: cases and fences not yet settled, in send order
        self._inflight: "collections.deque" = collections.deque()
        self._fences: Dict[int, _Fence] = {}
        self._fence_count = 0
        #: in-line canary reads: tag -> LBA
        self._canary_reads: Dict[int, int] = {}
        self._seq = 0
        #: the earliest deadline of anything outstanding (a lower bound)
        self._earliest = float("inf")
        #: the cases between the last two answered fences (a canary read at a
        #: fence reflects them, and those since)
        self._previous_segment: List[Case] = []
        #: which cases may change target state and so go out alone (the model's say, when there is one)
        self.serialise: Callable[[bytes], bool] = lambda frame: changes_state(frame) or self.model.changes_state(frame)
        self._recent: "collections.OrderedDict[int, _Pending]" = collections.OrderedDict()
        self._history: "collections.deque[Case]" = collections.deque(maxlen=max(1, context_frames) + 64)
        #: tags cases carried that are not their own number (mutated): a later case whose number it is may meet a cache keyed on the tag
        self._foreign_tags: set = set()
        self._since_health: List[Case] = []
        self._unanswered: List[Case] = []
        self._queued: List[Finding] = []
        self._need_checkpoint = False
        self._serial_in_flight = False
        #: cases sent since the last health fence went out
        self._since_probe = 0
        self._commands_sent: set = set()
        self.deadline = 0.1
        self.grace = 0.002
        self.quiet = 0.005
        self.confirm_wait = 0.25
        #: the config string, Mac Mask list and reservation before the first case
        self._snapshot = TargetState()
        self._end: Optional[float] = None
        self._shrink_allowance: Optional[float] = None
        self._started: Optional[float] = None

    # -- output -------------------------------------------------------------------

    def _say(self, text: str) -> None:
        if self.log is not None:
            print(f"aoeconform fuzz: {text}", file=self.log, flush=True)

    # -- timing -------------------------------------------------------------------

    def _baseline(self) -> None:
        """Check the target answers, measure its round trip, set the deadlines."""
        session = self.session
        session.drain(0.0)
        session.probe_timeout = 1.0
        start = time.monotonic()
        if not session.probe(attempts=3):
            raise TargetUnreachable(
                f"target {self.info.address} ({self.info.mac.hex(':')}) did not answer a Query Config read "
                f"within 3 s; check that it is running and reachable before fuzzing"
            )
        rtt = time.monotonic() - start
        for _ in range(4):  # the first exchange may include warm-up; take the best of a few
            t = time.monotonic()
            if session.probe(attempts=1):
                rtt = min(rtt, time.monotonic() - t)
        deadline = self.fixed_deadline or min(1.0, max(0.05, 50 * rtt))
        self.deadline = max(self.patience, deadline)  # the loop's cases only: replays and probes keep the measured one
        self.grace = min(deadline, max(0.001, 5 * rtt))
        self.quiet = min(deadline, max(0.001, 10 * rtt))
        self.confirm_wait = max(0.25, 5 * deadline)
        self.replayer.deadline = deadline
        self.replayer.fence_grace = self.grace
        session.probe_timeout = min(1.0, max(0.05, 20 * rtt, deadline))
        self._snapshot = session.snapshot(attempts=1)
        self.replayer.record_canaries(self._canary_lbas())
        self._prime_admin(self._snapshot)

    def _prime_admin(self, snapshot) -> None:
        """What the snapshot read is what the admin oracles start from."""
        self.model.admin.prime(snapshot.config, snapshot.mask, snapshot.reservation)

    def _canary_lbas(self) -> List[int]:
        if not self.policy.allow_write:
            return []
        lbas = {0, self.policy.start - 1, self.policy.end}
        if self.info.capacity:
            lbas.add(self.info.capacity - 1)
        return sorted(lba for lba in lbas if lba >= 0 and (self.info.capacity is None or lba < self.info.capacity) and not self.policy.start <= lba < self.policy.end)

    # -- the loop -----------------------------------------------------------------

    def run(self, cases: Optional[int] = None, seconds: Optional[float] = None, start_index: int = 0) -> FuzzResult:
        """Fuzz until ``cases`` cases have been sent or ``seconds`` have passed
        (whichever comes first; with neither, 1000 cases)."""
        if cases is None and seconds is None:
            cases = 1000
        result = self.result
        self._baseline()
        self._say(f"seed {self.seed} (rerun with --seed {self.seed}); target {self.info.address} at {self.info.mac.hex(':')} "
                  f"on {self.transport.name}, window {self.window}, deadline {self.deadline * 1000:.0f} ms"
                  + (f", findings to {self.out_dir}" if self.out_dir else ""))
        started = self._started = time.monotonic()
        if self.restart_hook is not None:
            self._restart_and_listen()
        # --seconds counts fuzzing: time spent shrinking moves the end, but
        # shrinking in a timed run has a budget of its own (the run's length, at least 10 s)
        self._end = None if seconds is None else started + seconds
        self._shrink_allowance = None if seconds is None else max(10.0, seconds)
        last_index = None if cases is None else start_index + cases
        result.start_index, result.end_index = start_index, last_index
        index = start_index
        outstanding = self._outstanding
        inflight = self._inflight
        transport = self.transport
        recv_many = transport.recv_many
        monotonic = time.monotonic
        feed = self._start_feed(cases, seconds)
        generate = self.generator.case if feed is None else feed.case
        serialise = self.serialise
        window = self.window
        # one place in the window is kept for the fence
        room = max(1, window - 1)
        health_every = self.health_every
        grace = self.grace
        # the next case, made but not yet sent (it waits for a free slot)
        case: Optional[Case] = None
        serial = False
        last_sent = 0.0
        try:
            while True:
                now = monotonic()
                stopping = (
                    (last_index is not None and index >= last_index)
                    or (self._end is not None and now >= self._end)
                    or bool(result.stopped_early)
                )
                sent = 0
                # nothing goes out past an unanswered fence: a target that
                # stopped answering gets the same cases whatever the timing
                blocked = (stopping or self._need_checkpoint or self._serial_in_flight
                           or bool(inflight and isinstance(inflight[-1], _Fence)))
                while not blocked and len(inflight) < room and self._since_probe < health_every:
                    if case is None:
                        case = generate(index)
                        serial = serialise(case.frame)
                    tag = case.tag
                    if (serial and inflight) or (
                        (tag in outstanding or (tag ^ TAG_TOOL_BIT) in outstanding)
                        # the same tag, or one a reply with bit 31 changed would be taken for
                        and not self._give_up_settled((tag, tag ^ TAG_TOOL_BIT), now)
                    ) or (
                        (tag & 0x7F000000) in RESERVED_TAG_RANGES
                        and (inflight or self._fences or not self._give_up_settled(list(outstanding), now))
                    ):
                        blocked = True  # goes out once what is in flight is settled
                        break
                    index += 1
                    self._send(case, now)
                    self._since_probe += 1
                    sent += 1
                    last_sent = now
                    case = None
                    if serial:
                        self._serial_in_flight = blocked = True
                    if last_index is not None and index >= last_index:
                        break
                wait = max(0.0, self._earliest - now)
                if not inflight:
                    if self._need_checkpoint or self._queued or self._unanswered:
                        self._checkpoint()
                        continue
                    if stopping:
                        break
                    if not outstanding:
                        continue
                    # only cases in their grace are left, one of whose tags the next case reuses
                elif not isinstance(inflight[-1], _Fence):
                    if self._since_probe >= health_every:
                        # the health check, every health_every cases (a deterministic
                        # boundary: the suspects of a hang are the cases since one)
                        self._since_probe = 0
                        self._send_fence(now, health=True)
                        self._health_fences += 1
                        if self._health_fences % BURST_EVERY == 2:
                            # the burst follows this fence, before any case more: counted in
                            # cases, not in checkpoints (how many a run stops for is timing)
                            self._burst_due = self._need_checkpoint = True
                    elif blocked and now - last_sent < grace and self._answer_due(inflight[-1]):
                        # the last case out must be answered, and its answer settles
                        # all before it as a fence's would: a fence costs a round trip
                        # more, so it waits for the grace first
                        wait = min(wait, last_sent + grace - now)
                    elif blocked or (len(inflight) >= room and now - last_sent >= grace):
                        # nothing more can go out: settle what is in flight now
                        # rather than wait for each silent case's deadline
                        self._send_fence(now)
                    elif len(inflight) >= room:
                        wait = min(wait, last_sent + grace - now)
                    elif sent:
                        wait = 0.0  # room for more: take what has arrived and go on
                frames = recv_many(64, wait)
                now = monotonic()
                for frame in frames:
                    self._on_frame(frame, now)
                if now >= self._earliest:
                    self._expire(now)
            if self._since_health and not result.stopped_early:
                self._checkpoint()
        finally:
            if feed is not None:
                feed.close()
                result.made_ahead += feed.made_ahead
            result.seconds = monotonic() - started
            result.next_index = index
            result.restarts = self.session.restarts
            if not result.stopped_early or result.stopped_early.startswith("reached"):
                self._restore()
        return result

    def _start_feed(self, cases: Optional[int], seconds: Optional[float]) -> Optional[CaseFeed]:
        wanted = self.feed
        if wanted is None:
            long_run = (seconds is None or seconds >= FEED_MIN_SECONDS) and (cases is None or cases >= FEED_MIN_CASES)
            # (a pool's daemon workers already share out the cores; a campaign's workers are told so)
            wanted = long_run and (os.cpu_count() or 1) >= 2 and not multiprocessing.current_process().daemon
        if not wanted:
            return None
        try:
            return CaseFeed(self.generator)
        except (OSError, AssertionError, RuntimeError, ValueError):
            return None  # the loop makes its cases itself, as it would anyway

    def _send(self, case: Case, now: float) -> None:
        try:
            self.transport.send(case.frame)
        except OSError:
            self.result.send_errors += 1
            return
        self.result.cases += 1
        self._history.append(case)
        self._since_health.append(case)
        if len(case.frame) >= 20:
            self._commands_sent.add(case.frame[19])
        tag = case.tag
        # (a case no mutation touched carries its own number)
        if case.mutations and tag >= 0 and tag != case_tag(case.index) and len(self._foreign_tags) < FOREIGN_TAGS_KEPT:
            self._foreign_tags.add(tag)
        self._seq += 1
        deadline = now + self.deadline
        pending = _Pending(case, now, deadline, self._seq)
        self._outstanding[case.tag] = pending
        self._inflight.append(pending)
        if deadline < self._earliest:
            self._earliest = deadline

    def _answer_due(self, item) -> bool:
        """True for a case every reading says the target answers (a fence is not one: it is waited for anyway)."""
        return isinstance(item, _Pending) and item.case.expect_reply

    def _send_fence(self, now: float, health: bool = False) -> None:
        """A Query Config read (rule 36) after what is in flight: its answer
        settles every case sent before it and shows the target alive. With
        writes allowed, the canary sectors are read with the periodic (health) fence."""
        self._fence_count += 1
        tag = FENCE_TAG_BASE | (self._fence_count & 0xFFFFFF)
        while tag in self._outstanding or (tag ^ TAG_TOOL_BIT) in self._outstanding:
            self._fence_count += 1
            tag = FENCE_TAG_BASE | (self._fence_count & 0xFFFFFF)
        replayer = self.replayer
        try:
            for lba in replayer.canaries if health else ():
                canary_tag = CANARY_TAG_BASE | ((self._fence_count * 8 + len(self._canary_reads)) & 0xFFFFFF)
                self.transport.send(requests.read_sector(self.info, lba, canary_tag).encode(pad=True))
                self._canary_reads[canary_tag] = lba
            self.transport.send(requests.config_read(self.info, tag).encode(pad=True))
        except OSError:
            self.result.send_errors += 1
            self._need_checkpoint = True
            return
        self._seq += 1
        # (a quarter of the patience: an expired fence only calls the health check, which waits longer)
        deadline = now + max(self.patience / 4, self.session.probe_timeout or self.session.timeout())
        fence = _Fence(tag, self._seq, deadline, len(self._since_health) if health else 0)
        self._fences[tag] = fence
        self._inflight.append(fence)
        if deadline < self._earliest:
            self._earliest = deadline

    def _settle_before(self, seq: int, now: float, answered: bool = True) -> None:
        """Something sent as ``seq`` was answered: what went out before it and
        is still unanswered will not be answered by an in-order target; it
        keeps a short grace for a late reply and leaves the window.

        ``answered`` False: the fence sent as ``seq`` went unanswered. What
        went out before it leaves the window too, but its silence proves
        nothing yet (the target may have stopped at an earlier case): it
        waits out its own deadline and the health check, which judge it."""
        inflight = self._inflight
        cutoff = now + self.grace
        while inflight and inflight[0].seq <= seq:
            item = inflight.popleft()
            if isinstance(item, _Pending):
                if answered and item.case.tag in self._outstanding and not item.judged:
                    # settled unanswered: something sent after it was answered, so
                    # the model judges it silent now, before anything sent after it
                    # (a late reply is still checked by the header oracles)
                    item.judged = True
                    self._judge(item.case, [], True)
                if answered and item.case.tag in self._outstanding and item.deadline > cutoff:
                    item.deadline = cutoff
                    if cutoff < self._earliest:
                        self._earliest = cutoff
                if self._serial_in_flight and self.serialise(item.case.frame):
                    self._serial_in_flight = False

    def _remember(self, tag: int, pending: _Pending) -> None:
        recent = self._recent
        recent[tag] = pending
        if len(recent) > RECENT_CASES:
            recent.popitem(last=False)

    def _on_frame(self, frame: bytes, now: float) -> None:
        if len(frame) < 24 or frame[12:14] != _AOE:
            return
        if not frame[14] & FLAG_RESPONSE and frame[6:12] != self.info.mac:
            return  # someone's request, not a reply
        if is_advertisement(frame):
            self._advertisements += 1
            return
        tag = int.from_bytes(frame[20:24], "big")
        pending = self._outstanding.get(tag)
        if pending is not None and not self._for_case(frame, pending.case):
            pending = None  # a late answer to an earlier case of the other MAC that had this tag
        if pending is not None:
            del self._outstanding[tag]
            self.result.replies += 1
            pending.replies += 1
            self._remember(tag, pending)
            self._settle_before(pending.seq, now)
            own = self._check(pending.case, frame)
            if not pending.judged:
                pending.judged = True
                # a reply that lost bit 31 of its tag may be another case's: not read as this one's
                flipped = tag ^ TAG_TOOL_BIT
                own = own and flipped not in self._recent and flipped not in self._outstanding
                self._judge(pending.case, [frame] if own else [], own)
            return
        top = tag & 0xFF000000
        if top == FENCE_TAG_BASE and tag in self._fences:
            self._on_fence(self._fences.pop(tag), now)
            return
        if top == CANARY_TAG_BASE and tag in self._canary_reads:
            self._on_canary(self._canary_reads.pop(tag), frame)
            return
        self._on_late_frame(frame)

    def _on_fence(self, fence: _Fence, now: float) -> None:
        """The target answered a fence: the cases before it are settled. A
        health fence shows it alive: the cases after it are the new suspects."""
        self._settle_before(fence.seq, now)
        if not fence.since:
            return
        self.result.health_checks += 1
        self._previous_segment = self._since_health[:fence.since]
        del self._since_health[:fence.since]
        for later in self._fences.values():
            later.since = max(0, later.since - fence.since)

    def _on_canary(self, lba: int, frame: bytes) -> None:
        data = bytes(frame[36:36 + 512]) if len(frame) >= 36 + 512 and not frame[14] & 0x04 else None
        recorded = self.replayer.canaries.get(lba)
        if data is not None and recorded is not None and data != recorded:
            # the serial checkpoint reads it again and makes the finding
            self._need_checkpoint = True

    def _for_case(self, frame: bytes, case: Case) -> bool:
        """Whether ``frame`` may answer ``case``: not when it goes to the one of
        our two MACs (the host's, the second initiator's) that did not send it.
        Tags repeat (the tag mutations), so a late reply to one MAC's case may
        meet the other MAC's case with the same tag in flight."""
        dst = frame[0:6]
        return dst == case.frame[6:12] or dst not in (self.info.host_mac, self.info.second_mac)

    def _on_stray_frame(self, frame: bytes) -> None:
        """A frame received outside the main loop (during a probe or a replay)."""
        self._on_frame(frame, time.monotonic())

    def _on_late_frame(self, frame: bytes) -> None:
        """A frame that is not the reply to an outstanding case."""
        if len(frame) < 24 or is_advertisement(frame):
            return
        tag = int.from_bytes(frame[20:24], "big")
        # A reply with bit 31 changed answers the case that carries the other
        # tag, if one is outstanding: checked before the answered cases, so that
        # one defect (the tag not echoed) is not also read as a second reply to
        # an earlier case with the same tag.
        flipped = tag ^ TAG_TOOL_BIT
        pending = self._outstanding.pop(flipped, None)
        if pending is None:
            if self.replayer.replayed and self.replayer.replayed_since(tag, time.monotonic() - REPLAY_ECHO_SECONDS):
                return  # a late answer to a replay while shrinking (same tag as a case): neither a second reply nor the case's
            if tag not in self._recent:
                pending = self._recent.get(flipped)
        if pending is not None:
            pending.replies += 1
            self._remember(flipped, pending)
            self._settle_before(pending.seq, time.monotonic())
            self._anomaly(Anomaly("tag-not-echoed", f"request tag 0x{flipped:08x}, reply tag 0x{tag:08x}"), pending.case, frame)
            self._check(pending.case, frame)
            if not pending.judged:  # answered, but under another tag: what it did is uncertain
                pending.judged = True
                self._judge(pending.case, [], False)
            return
        pending = self._recent.get(tag)
        if pending is not None and not self._for_case(frame, pending.case):
            return  # the tag's latest case came from our other MAC: whose reply this is cannot be told
        if pending is not None:
            pending.replies += 1
            if pending.replies > 1:
                self._anomaly(Anomaly("duplicate-reply", f"reply number {pending.replies} to one request"), pending.case, frame)
            else:
                self._check(pending.case, frame)  # late, but checked all the same
            return
        if frame[19] == CMD_QUERY_CONFIG or (tag & 0xFF000000) in RESERVED_TAG_RANGES:
            return  # an advertisement, or a late answer to a probe
        waiting = self._outstanding.get(tag)
        stale = None if waiting is None else self._cached_reply_finding(waiting.case)
        if stale is not None:
            # the cache answered the case in flight with the old reply, sent to
            # the old requester (our other MAC): that defect again
            stale.count += 1
            return
        self._anomaly(Anomaly("unmatched-reply", f"tag 0x{tag:08x} matches no request"), None, frame)

    def _check(self, case: Case, reply: bytes) -> bool:
        """The header oracles; False when the reply may not be this case's own
        (then the semantic oracles do not read it: one defect, one finding)."""
        anomalies = check_reply(case.frame, reply, self.info)
        if anomalies:
            # the reply an earlier request with this tag got: one defect (rule 18), not several
            stale = self.model.stale_reply(case.frame, reply)
            if stale is not None:
                anomalies = [stale]
            elif len(case.frame) >= 20 and case.frame[19] in ADMIN_COMMANDS:
                # a reply about the config string, the mask or the reservation depends
                # on them: its replay starts by setting them as they are now
                setup = self.model.setup()
                anomalies = [Anomaly(a.kind, a.detail, setup) if setup and not a.evidence else a for a in anomalies]
        # whatever it is judged, a cache keyed on the tag would give it out again
        self.model.remember_reply(case.frame, reply)
        for anomaly in anomalies:
            self._anomaly(anomaly, case, reply)
        if self.replayer.fresh_tags and self._tag_reused(case):
            return False  # the target answers from a cache keyed on the tag: this may be an old reply
        return not any(a.kind in NOT_ITS_OWN for a in anomalies)

    def _judge(self, case: Case, replies: List[bytes], in_time: bool) -> None:
        """The semantic oracles: the replies against the model, which then learns from them."""
        for anomaly in self.model.step(case.frame, replies, answered_in_time=in_time):
            self._anomaly(anomaly, case, replies[0] if replies else None)
        if self.model.doubts:
            self._need_checkpoint = True  # a READ of the sector alone settles it

    def _give_up(self, tag: int, now: float) -> None:
        """No reply to this case: it was silent (confirmed at the checkpoint if it must be answered)."""
        pending = self._outstanding.pop(tag)
        self._remember(tag, pending)
        self._settle_before(pending.seq, now)
        if not pending.judged:
            pending.judged = True
            self._judge(pending.case, [], False)
        self.result.silent += 1
        if pending.case.expect_reply and len(pending.case.frame) >= 20:
            known = self.by_group.get(("no-reply", command_class(pending.case.frame[19])))
            if known is not None:
                known.count += 1  # found already: no need to stop and confirm it again
            else:
                self._unanswered.append(pending.case)
                self._need_checkpoint = True

    def _give_up_settled(self, tags, now: float) -> bool:
        """Give up at once the settled cases (answered after them, waiting only
        out their grace) that carry these tags; False if one is still in flight."""
        inflight_from = self._inflight[0].seq if self._inflight else self._seq + 1
        for tag in tags:
            pending = self._outstanding.get(tag)
            if pending is not None:
                if pending.seq >= inflight_from:
                    return False
                self._give_up(tag, now)
        return True

    def _expire(self, now: float) -> None:
        """Give up the cases and fences whose deadline has passed."""
        earliest = float("inf")
        expired = []
        for tag, p in self._outstanding.items():
            if p.deadline <= now:
                expired.append(tag)
            elif p.deadline < earliest:
                earliest = p.deadline
        for tag in expired:
            self._give_up(tag, now)
        for tag, fence in list(self._fences.items()):
            if fence.deadline <= now:
                del self._fences[tag]
                if self._inflight and self._inflight[0].seq <= fence.seq:
                    # nothing answered since it was sent: the serial health check decides
                    self._settle_before(fence.seq, now, answered=False)
                    self._need_checkpoint = True
            elif fence.deadline < earliest:
                earliest = fence.deadline
        self._earliest = earliest

    # -- anomalies and findings ------------------------------------------------------

    def _anomaly(self, anomaly: Anomaly, case: Optional[Case], reply: Optional[bytes]) -> None:
        command = case.frame[19] if case is not None and len(case.frame) >= 20 else None
        signature = group_of(anomaly.kind, command)
        known = self.by_group.get(signature)
        if known is None and case is not None and anomaly.kind not in TAG_KINDS:
            # Once the target is known to answer from a cache keyed on the tag,
            # whatever goes wrong with a request whose tag an earlier one had
            # may be that cache (an old reply, or one sent to the old requester):
            # the same defect, counted, not a finding of another rule.
            # (a second reply to a request sent once more under its tag may be the cache's too)
            known = self._cached_reply_finding(case, anomaly.kind == "duplicate-reply")
        if known is not None:
            known.count += 1
            return
        frames: List[bytes] = []
        steps: Optional[List[int]] = None
        context = self.model.context
        if case is not None and (anomaly.evidence or context):
            # what the verdict rests on (the write the READ was compared with, ...),
            # what the check sent before the case, then the case
            frames = [f for f in anomaly.evidence if f != case.frame and f not in context] + list(context) + [case.frame]
            frames, steps = self._steps(frames)
        elif case is not None:
            history = list(self._history)
            position = next((i for i in range(len(history) - 1, -1, -1) if history[i] is case), len(history))
            frames = [c.frame for c in history[max(0, position - self.context_frames):position]] + [case.frame]
        finding = Finding(
            kind=anomaly.kind,
            detail=anomaly.detail,
            seed=self.seed,
            frames=frames,
            replies=[reply] if reply is not None else [],
            case_index=None if case is None else case.index,
            mutations=() if case is None else case.mutations,
            target=self._target_dict(),
            rule_number=anomaly.rule_number,
            steps=steps,
        )
        if anomaly.kind in TAG_KINDS:
            finding.trigger_command, finding.trigger_field = "any", "tag"
            self.replayer.fresh_tags = True  # replays with the cases' tags would be answered from the cache
        self.by_group[signature] = finding
        self._queued.append(finding)
        self._need_checkpoint = True

    def _cached_reply_finding(self, case: Case, same_too: bool = False) -> Optional[Finding]:
        """The stale-reply finding when the target is known to answer from a
        cache keyed on the tag and ``case``'s tag may be in it; else None."""
        stale = self.by_group.get(group_of("stale-reply", None))
        return stale if stale is not None and self._tag_reused(case, same_too) else None

    def _tag_reused(self, case: Case, same_too: bool = False) -> bool:
        """Whether another request with ``case``'s tag (``same_too``: or this one)
        may have been answered before: a case the model remembers, a replay
        (whose replies the model never saw), or any earlier case when the tag
        is not the case's own number (a tag mutation; the bursts' and the
        contention checks' requests carry tags of their own, never reused)."""
        frame = case.frame
        if self.model.tag_reused(frame, same_too):
            return True
        tag = case.tag
        if tag < 0:
            return False
        if case.seed in HARNESS_CASES:
            return tag in self.replayer.replayed
        # a case's own number was another case's tag when a mutation (a bit flip,
        # a boundary byte) turned that one's into it, maybe thousands of cases ago
        return tag in self.replayer.replayed or tag != case_tag(case.index) or tag in self._foreign_tags

    def _target_dict(self) -> dict:
        info = self.info
        return {
            "iface": self.transport.name,
            "mac": info.mac.hex(":"),
            "host_mac": info.host_mac.hex(":"),
            "second_mac": info.second_mac.hex(":"),
            "shelf": info.shelf,
            "slot": info.slot,
            "mtu": info.mtu,
            **self.target_extra,
        }

    def _checkpoint(self) -> None:
        """Nothing outstanding: run the health check, confirm silences, and deal
        with the findings queued since the last checkpoint."""
        self._need_checkpoint = False
        self._serial_in_flight = False
        self.result.health_checks += 1
        replayer = self.replayer
        # a loaded machine can hold a live target up for longer than the usual
        # timeout: one slow last try before it is called unresponsive
        session = self.session
        alive = session.probe() or session.probe(attempts=1, timeout=max(0.25, self.patience / 2, 2 * (session.probe_timeout or session.timeout())))
        self._settle(alive)
        if alive and self.model.doubts:
            for lba in sorted(self.model.doubts):
                self._doubt_reads += 1
                self._serial(ata_request(self.info, DOUBT_TAG_BASE | (self._doubt_reads & 0xFFFFFF), 0x40, 1, 0x24, lba), "doubt-read")
            self.model.doubts.clear()  # a READ that got no answer settles nothing: leave it
        crash_rule = None  # the rule a stop is charged to, when the checkpoint knows what caused it
        burst, self._burst_due = self._burst_due, False  # not kept for a later checkpoint: its place is fixed
        if alive and burst:
            self._burst()
            # a burst one beyond Buffer Count must not have hurt it (rule 19): asked before anything else goes out
            alive = session.probe()
            if not alive:
                crash_rule = 19
            else:
                if self.policy.allow_write:
                    self._write_over_async()
                if self.info.second_mac:
                    self._contend()
                alive = session.probe()
        if alive and replayer.canaries:
            changed = replayer.changed_canaries()
            if changed:
                self._new_finding(Finding(
                    kind="write-outside-window",
                    detail=f"sector(s) {', '.join(map(str, changed))} outside [{self.policy.start}, {self.policy.end}) changed",
                    seed=self.seed,
                    frames=[c.frame for c in self._previous_segment + self._since_health],
                    case_index=self._since_health[-1].index if self._since_health else None,
                    target=self._target_dict(),
                ))
        if not alive:
            suspects = list(self._since_health)
            # a burst among them goes out back to back again when it is replayed (a queue overrun needs it)
            frames, steps = self._steps([c.frame for c in suspects])
            finding = Finding(
                kind="unresponsive",
                detail=f"no answer to a Query Config read after {len(suspects)} case(s) since the last good health check",
                seed=self.seed,
                frames=frames,
                case_index=suspects[-1].index if suspects else None,
                target=self._target_dict(),
                rule_number=crash_rule,
                steps=steps,
            )
            self._unanswered.clear()
            self._queued = [f for f in self._queued if f.kind != "no-reply"]
            # the target starts over: the next suspects are the cases from here
            self._since_health = []
            for fence in self._fences.values():
                fence.since = 0
            self._new_finding(finding)
        else:
            for case in self._unanswered:
                known = self.by_group.get(("no-reply", command_class(case.frame[19])))
                if known is not None:
                    known.count += 1  # already found; confirming again costs a second each
                    continue
                matched, others = self.session.exchange(case.frame, self.confirm_wait)
                for frame in others:
                    self._on_stray_frame(frame)
                if not matched:
                    self._anomaly(Anomaly("no-reply", f"no reply within {self.confirm_wait:g} s to a well-formed request, sent twice",
                                          rule_number=owed_rule(case.frame, self.info)), case, None)
                else:
                    self._check(case, matched[0])
                self._judge(case, matched, bool(matched))
            self._unanswered.clear()
        queued, self._queued = self._queued, []
        for finding in queued:
            self._process_finding(finding)
        self._sync_model()

    def _burst(self) -> None:
        """Buffer Count requests back to back must all be answered (rule 19);
        one more may be dropped but must not hurt the target (the health check
        that follows sees that). The burst holds a request repeated with a new
        tag, which must be answered like the first (rule 18), and, when writes
        are allowed, two writes to the same sectors, which may land in either
        order but never mixed (rule 20): a READ after the burst checks that."""
        info, policy = self.info, self.policy
        count = max(1, min(info.bufcnt, 64))
        if info.capacity is not None and info.capacity <= count:
            return
        self._bursts += 1
        serial = (self._bursts & 0xFFF) << 8

        def tag(i: int) -> int:
            return BURST_TAG_BASE | serial | i

        # one-sector reads of distinct sectors, the second the same request as the first
        frames = [ata_request(info, tag(i), 0x40, 1, 0x24, 0 if i == 1 else i) for i in range(count + 1)]
        overlap: Tuple[int, ...] = ()
        m = min(info.max_sectors, 2)
        if policy.allow_write and count >= 4 and m >= 2 and policy.count >= m:
            rng = self.generator.rng((1 << 63) + self._bursts)  # apart from every case index
            overlap = (count - 2, count - 1)
            for i in overlap:
                data = rng.getrandbits(4096 * m).to_bytes(512 * m, "little")
                frames[i] = ata_request(info, tag(i), 0x41, m, 0x34, policy.start, data)
        cases = [Case(self.result.cases, frame, ("burst",), "burst", True) for frame in frames]
        for case in cases:
            self._history.append(case)
            self._since_health.append(case)
        replies = self._together(frames)
        for case, got in zip(cases, replies):
            for reply in got[:1]:
                self._check(case, reply)
        self._judge_together(cases, replies)
        missing = [i for i in range(count) if not replies[i]]
        if len(missing) == count:
            pass  # nothing answered: the health check that follows says whether it still lives
        elif missing == [1]:
            # the finding keeps what its replay must send back to back: the request and its repeat
            self._anomaly(Anomaly("duplicate-dropped", "a request repeated in a burst with a new tag got no reply",
                                  (frames[0],)), cases[1], None)
        elif missing:
            self._anomaly(Anomaly("bufcnt-not-honoured", f"{len(missing)} of {count} requests sent back to back "
                                                         f"(Buffer Count {info.bufcnt}) got no reply",
                                  tuple(frames[:count])), cases[missing[0]], None)
        if overlap:
            check = Case(self.result.cases, ata_request(info, tag(0xFF), 0x40, m, 0x24, policy.start), ("burst-read-back",), "burst", True)
            matched, others = self.session.exchange(check.frame, self.confirm_wait)
            for frame in others:
                self._on_stray_frame(frame)
            self._history.append(check)
            self._since_health.append(check)
            for reply in matched[:1]:
                self._check(check, reply)
            self._judge(check, matched, bool(matched))

    def _together(self, frames: Sequence[bytes]) -> List[List[bytes]]:
        """Send ``frames`` back to back; the replies to each (a duplicate stays
        with its request). What else the target sent may answer earlier cases."""
        self._groups += 1
        sent_together = self._sent_together
        for position, frame in enumerate(frames):
            sent_together[bytes(frame)] = (self._groups, position)
        while len(sent_together) > SENT_TOGETHER_KEPT:
            sent_together.popitem(last=False)
        replies, others = self.session.burst(frames, self.confirm_wait)
        for other in others:
            self._on_stray_frame(other)
        return replies

    def _judge_together(self, cases: Sequence[Case], replies: Sequence[List[bytes]]) -> None:
        """The semantic oracles on cases sent back to back (``together.step_together``)."""
        for case, got, found in zip(cases, replies, step_together(self.model, [c.frame for c in cases], replies)):
            for anomaly in found:
                self._anomaly(anomaly, case, got[0] if got else None)

    def _steps(self, frames: List[bytes]) -> Tuple[List[bytes], Optional[List[int]]]:
        """A finding's frames, those that went out back to back together (in
        the order sent) as one step, and the steps' sizes; None when every
        frame went out alone."""
        out: List[bytes] = []
        steps: List[int] = []
        done: set = set()
        for frame in frames:
            group = self._sent_together.get(frame)
            if group is None:
                out.append(frame)
                steps.append(1)
            elif group[0] not in done:
                done.add(group[0])
                members = sorted((self._sent_together[f][1], f) for f in frames if self._sent_together.get(f, (None,))[0] == group[0])
                out += [f for _, f in members]
                steps.append(len(members))
        return out, (steps if max(steps, default=1) > 1 else None)

    def _serial(self, frame: bytes, name: str, context: Sequence[bytes] = ()) -> List[bytes]:
        """One request outside the case sequence, checked and judged like a
        case; its findings keep ``context`` (what the check sent before it)."""
        case = Case(self.result.cases, frame, (name,), "contend", False)
        matched, others = self.session.exchange(frame, self.confirm_wait)
        for other in others:
            self._on_stray_frame(other)
        self._history.append(case)
        self._since_health.append(case)
        self._commands_sent.add(frame[19])
        self.model.context = tuple(context)
        try:
            for reply in matched[:1]:
                self._check(case, reply)
            self._judge(case, matched, True)
        finally:
            self.model.context = ()
        return matched

    def _write_over_async(self) -> None:
        """An A=1 write, at once a write of other data to the same sector, FLUSH,
        a READ: the later write must be what stays (rule 33: an acknowledged
        write lands before what follows it, not over it)."""
        info, policy = self.info, self.policy
        tag = BURST_TAG_BASE | ((self._bursts & 0xFFF) << 8) | 0xD0
        rng = self.generator.rng((1 << 62) + self._bursts)
        lba = policy.start + (self._bursts % policy.count)
        first, second = (rng.getrandbits(4096).to_bytes(512, "little") for _ in range(2))
        sent: List[bytes] = []
        for frame, name in ((ata_request(info, tag, 0x43, 1, 0x34, lba, first), "async-write"),
                            (ata_request(info, tag + 1, 0x41, 1, 0x34, lba, second), "write-over"),
                            (ata_request(info, tag + 2, 0, 0, 0xE7, 0), "flush"),
                            (ata_request(info, tag + 3, 0x40, 1, 0x24, lba), "read-back")):
            # a finding keeps the whole sequence: the A=1 write it rests on is not the model's evidence
            self._serial(frame, name, sent)
            sent.append(frame)

    def _contend(self) -> None:
        """What two initiators do at once. Two config sets of different strings
        from the host and the second MAC, back to back on an empty string:
        exactly one may win, and the string is the winner's whole (rule 44).
        Then a reservation by the host: a READ from the second MAC must be
        refused with Error 6 (rule 57, judged by model_admin); then released."""
        info = self.info
        reads = AdminRequests(info, BURST_TAG_BASE | ((self._bursts & 0xFFF) << 8) | 0xE0)
        clear = reads.config(CCMD_FORCE_SET, b"")
        cleared = self._serial(clear, "contend-clear")
        if not cleared or cleared[0][14] & FLAG_ERROR:
            # a force set refused (rule 40, judged on its own) leaves a string that sets
            # must not overwrite: nothing to contend for, whatever the sets get
            return
        sets = [reads.config(CCMD_SET, b"aoeconform-host"), reads.config(CCMD_SET, b"aoeconform-second-initiator", src=info.second_mac)]
        cases = [Case(self.result.cases, frame, ("contend-set",), "contend", False) for frame in sets]
        for case in cases:
            self._history.append(case)
            self._since_health.append(case)
        replies = self._together(sets)
        self._commands_sent.add(CMD_QUERY_CONFIG)
        for case, got in zip(cases, replies):
            for reply in got[:1]:
                self._check(case, reply)
        self._judge_together(cases, replies)  # which set won is what the read says
        sent = (clear, *sets)
        read_frame = reads.config_read()
        read = self._serial(read_frame, "contend-read", sent)
        if read and self.model.admin.read_echoes and read[0][30:32] == b"\0\0":
            read = []  # the empty string of a target whose reads echo the request's (rule 36): who won is unknown
        mixed = contended_sets(sets, [got[0] if got else None for got in replies], read[0]) if read else None
        if mixed is not None:
            # the finding keeps the clear, the sets (one step, back to back) and the read
            read_case = Case(self.result.cases, read_frame, ("contend-read",), "contend", False)
            self._anomaly(Anomaly(mixed.kind, mixed.detail, sent), read_case, read[0])
        # a reservation the second initiator must meet with Error 6
        if self._serial(reads.reserve(RCMD_SET, [info.host_mac]), "contend-reserve"):
            self._serial(reads.read(0, src=info.second_mac), "contend-read-reserved")
            self._serial(reads.reserve(RCMD_SET, []), "contend-release")

    def _restart_and_listen(self) -> None:
        """With a restart hook, the run starts from a freshly started target,
        which must announce itself with an unsolicited config reply (rule 46)."""
        before = self._advertisements
        if not self.session.restart():
            return
        self.session.drain(self.quiet)
        self.model.restarted()
        self._model_restarts = self.session.restarts
        self._prime_admin(self.session.snapshot(attempts=1))
        if self._advertisements == before:
            self._anomaly(Anomaly("no-advertisement", "no unsolicited config reply after the restart hook started the target"), None, None)

    def _sync_model(self) -> None:
        """Frames the model did not see (replays while shrinking or confirming)
        or a restart leave what it knew uncertain."""
        replayer = self.replayer
        uncertain = True
        if replayer.evaluations != self._model_evaluations:
            self.model.forget()
        elif self.session.restarts != self._model_restarts:
            self.model.restarted()
        else:
            uncertain = False
        if uncertain:
            # read back what the admin oracles compare with, so that they go on judging at once
            self._prime_admin(self.session.snapshot(attempts=1))
        self._model_evaluations, self._model_restarts = replayer.evaluations, self.session.restarts

    def _settle(self, alive: bool) -> None:
        """Wait out the cases still outstanding. Once the probe, sent after
        all of them, has been answered, they only get the grace period."""
        outstanding = self._outstanding
        monotonic = time.monotonic
        if alive:
            cutoff = monotonic() + self.grace
            for pending in outstanding.values():
                pending.deadline = min(pending.deadline, cutoff)
        while outstanding:
            now = monotonic()
            wait = max(0.0, min(p.deadline for p in outstanding.values()) - now)
            frame = self.transport.recv(wait)
            now = monotonic()
            if frame is not None:
                self._on_frame(frame, now)
            self._expire(now)

    def _new_finding(self, finding: Finding) -> None:
        signature = finding.group
        known = self.by_group.get(signature)
        if known is not None:
            # Seen before: count it, bring the target back, go on. (A second
            # cause of the same kind is found again once the first is fixed.)
            known.count += 1
            if finding.kind == "unresponsive" and not self.session.restart():
                self.result.stopped_early = (
                    "target stopped answering (give --restart-cmd to go on after a hang)"
                    if self.restart_hook is None else self._not_back()
                )
            return
        self.by_group[signature] = finding
        self._process_finding(finding)

    def _process_finding(self, finding: Finding) -> None:
        result = self.result
        result.findings.append(finding)
        if self._started is not None:
            finding.found_after = time.monotonic() - self._started
        self._say(f"finding: {finding.summary()}")
        if finding.kind == "unresponsive":
            if self.restart_hook is None:
                finding.note = "target stopped answering and no restart hook was given; not shrunk"
                result.stopped_early = "target stopped answering (give --restart-cmd to go on after a hang)"
                self._finish(finding)
                return
            if not self.session.restart():
                finding.note = f"the restart failed: {self.session.restart_error}"
                result.stopped_early = self._not_back()
                self._finish(finding)
                return
        findings_mod.mark_known([finding], self.expectations)
        if finding.known:
            finding.note = finding.note or f"a known deviation of the target ({finding.known}): not shrunk"
        elif not self.shrink_enabled or not finding.frames or (self.shrink_kinds is not None and finding.kind not in self.shrink_kinds):
            pass
        elif self._shrink_allowance is not None and self._shrink_allowance <= 0:
            finding.note = finding.note or "not shrunk: this run's shrinking time was used up (rerun with --seconds larger, or --replay)"
        else:
            began = time.monotonic()
            state, restarts = self.model.setup(), self.session.restarts
            self._shrink(finding)
            if finding.shrunk is not None and all(is_setup(f) for f in finding.shrunk[:-1]):
                self._classify(finding)
            # (a stop after a burst stays charged to the burst, rule 19: its frames went out together)
            if finding.shrunk and finding.reproduced and (finding.kind == "no-reply" or (finding.kind == "unresponsive" and not finding.rule_number)):
                # the shrunk trigger, and the one field of it that makes the difference
                # when classifying found it, name the rule at stake (fuzz.charge)
                # (a stop no one field explains: what its request asks for; shrinking zeroes the
                # header's tag and Ver, so those say nothing of the cause)
                trigger = finding.shrunk[-1]
                rule = field_rule(finding.trigger_command or "", finding.trigger_field, trigger, self.info) if finding.trigger_field else None
                if rule is None and finding.kind == "unresponsive":
                    rule = command_rule(trigger, self.info)
                if rule is not None:
                    finding.rule_number = rule
            if self.session.restarts != restarts:
                self._reinstate(state)
            # replays reuse the cases' tags: their late replies are not the loop's
            self.session.drain(self.grace, discard=True)
            spent = time.monotonic() - began
            if self._end is not None and self._shrink_allowance is not None:  # both set in a timed run
                self._end += spent
                self._shrink_allowance -= spent
            self._say(f"  shrunk: {finding.summary()}")
        self._finish(finding)
        if self.restart_hook is not None and not self.session.probe(attempts=2) and not self.session.restart():
            result.stopped_early = self._not_back()
        if len(result.findings) >= self.max_findings:
            result.stopped_early = f"reached {self.max_findings} findings"

    def _reinstate(self, setup: Sequence[bytes]) -> None:
        """Shrinking restarted the target: set the config string, the mask and
        the reservation as they were, so that the run goes on from the state
        it had reached (a fresh target's empty ones hide what edits do)."""
        for frame in setup:
            self.session.exchange(frame, self.confirm_wait)

    def _classify(self, finding: Finding) -> None:
        """Name the field the shrunk trigger changes (see ``signature``)."""
        from .signature import classify

        kind = finding.kind
        restart = kind == "unresponsive" or id(finding) in self._fresh
        replayer = self.replayer
        assert finding.shrunk is not None
        setup = list(finding.shrunk[:-1])  # what brings the target to the state the trigger needs
        finding.trigger_command, finding.trigger_field = classify(
            finding.shrunk[-1], self.info, lambda frame: replayer.fires(kind, setup + [frame], restart=restart))
        if restart:
            self.session.restart()

    def _finish(self, finding: Finding) -> None:
        """One finding per signature: a second group whose trigger is classified
        like an earlier finding's is counted into it, not kept."""
        known = self.by_final.get(finding.signature)
        if known is not None and known is not finding:
            known.count += finding.count
            self.by_group[finding.group] = known
            self.result.findings.remove(finding)
            self._say(f"  same defect as {known.signature}: counted, not kept")
            return
        self.by_final[finding.signature] = finding
        if self.out_dir:
            findings_mod.store(finding, self.out_dir)

    # -- shrinking ----------------------------------------------------------------------

    def _shrink(self, finding: Finding) -> None:
        replayer = self.replayer
        seconds = self.shrink_seconds
        if self._shrink_allowance is not None:  # a timed run: shrinking has its own budget
            seconds = min(seconds, max(1.0, self._shrink_allowance / 4))
        budget = Budget(self.shrink_budget, seconds)
        kind = finding.kind
        stateful = kind in ("unresponsive", "write-outside-window")
        can_restart = self.restart_hook is not None
        frames = list(finding.frames)
        if kind == "unresponsive" and together(finding.steps):
            # some of the frames went out back to back: replayed so, and kept whole
            if not replayer.fires(kind, frames, restart=True, steps=finding.steps):
                finding.reproduced = False
                finding.note = "replaying the frames after a restart, back to back where they went so, did not make the target stop answering"
                self.session.restart()
                return
            finding.reproduced = True
            finding.note = "replayed after a restart with the frames sent back to back where they went so; not minimised"
            self.session.restart()
        elif kind == "unresponsive":
            def test_sequence(candidate):
                budget.spend()
                return bool(candidate) and replayer.fires(kind, candidate, restart=True)
            if not test_sequence(frames):
                finding.reproduced = False
                finding.note = "replaying the frames after a restart did not make the target stop answering (timing or state outside these frames)"
                self.session.restart()
                return
            finding.reproduced = True
            frames = ddmin(frames, test_sequence, budget)
            last = frames[-1]
            prefix = frames[:-1]
            shrunk_last = shrink_frame(last, lambda c: replayer.fires(kind, prefix + [c], restart=True), budget)
            frames = prefix + [shrunk_last]
            self.session.restart()
        elif kind in BURST_KINDS or together(finding.steps):
            # requests sent back to back: replayed so, and kept whole (each owes a
            # reply, and what was in flight together must be in flight together again)
            if not replayer.fires(kind, frames, steps=finding.steps):
                finding.reproduced = False
                finding.note = "did not reproduce when its requests were sent again, back to back as before"
                return
            finding.reproduced = True
            finding.note = "replayed as sent, what went out back to back again back to back; not minimised"
        elif kind in MODEL_KINDS:
            # a semantic finding replays its frames through a fresh model; from a
            # restarted target when the state before them matters (it starts with
            # requests that set the config, mask or reservation) or nothing else reproduces it
            fresh = can_restart and any(is_setup(f) for f in frames)

            def test_model(candidate):
                budget.spend()
                return bool(candidate) and replayer.fires(kind, candidate, restart=fresh)
            if not test_model(frames):
                fresh = can_restart and not fresh
                if not fresh or not test_model(frames):
                    finding.reproduced = False
                    finding.note = "did not reproduce on replay (the target's state outside these frames mattered)"
                    if fresh:
                        self.session.restart()
                    return
            finding.reproduced = True
            frames = ddmin(frames, test_model, budget)
            prefix = frames[:-1]
            frames = prefix + [shrink_frame(frames[-1], lambda c: replayer.fires(kind, prefix + [c], restart=fresh), budget)]
            stateful = fresh
            if fresh:
                self._fresh.add(id(finding))  # classifying it needs a restarted target too
        elif stateful:
            finding.note = "not shrunk: canary changes are replayed but not minimised"
            finding.reproduced = None
            return
        else:
            culprit = frames[-1]
            context = frames[:-1]
            # a reply that depends on the target's state is replayed from a restarted target set to it
            # (tried alone from a restarted target first: most such findings need no state,
            # and shrinking one on the target as it is costs no restarts)
            set_first = can_restart and bool(context) and is_setup(context[0])
            if replayer.fires(kind, [culprit], restart=set_first):
                finding.reproduced = True
                frames = [shrink_frame(culprit, lambda c: replayer.fires(kind, [c]), budget)]
                if set_first and frames[0] != culprit and not replayer.fires(kind, frames, restart=True):
                    frames = [culprit]  # what was cut needed the state the target had
            elif can_restart and context and replayer.fires(kind, frames, restart=True):
                finding.reproduced = True

                def test_context(candidate):
                    budget.spend()
                    return replayer.fires(kind, candidate + [culprit], restart=True)

                context = ddmin(context, test_context, budget)
                shrunk = shrink_frame(culprit, lambda c: replayer.fires(kind, context + [c], restart=True), budget)
                frames = context + [shrunk]
                self.session.restart()
                if set_first:
                    stateful = True  # its replies are recorded from a restarted target too
                    self._fresh.add(id(finding))
            else:
                finding.reproduced = False
                finding.note = "did not reproduce on replay" + ("" if can_restart else " (no restart hook, so preceding frames were not replayed)")
                return
        finding.shrunk = frames
        finding.shrunk_replies = self._replies_for(kind, frames, restart=stateful, steps=finding.steps)
        if budget.left():
            finding.note = finding.note or f"shrunk with {budget.used} replays"
        else:
            finding.note = finding.note or f"shrink stopped at its budget ({budget.used} replays); the reproducer may not be minimal"

    def _replies_for(self, kind: str, frames: List[bytes], restart: bool, steps: Optional[List[int]] = None) -> List[bytes]:
        """Replay the shrunk frames once more to record what the target says."""
        session = self.session
        if restart and not session.restart():
            return []
        replies: List[bytes] = []
        for group in step_groups(frames, steps):
            if len(group) > 1:
                replies += [r for got in self.replayer.together(group) for r in got]
                continue
            self.replayer.note(group[0])
            matched, others = session.exchange(group[0], self.replayer.deadline / 4, first_only=False)
            replies += matched + others
        if restart:
            session.restart()
        return replies

    # -- leaving the target as it was ------------------------------------------------------

    def _restore(self) -> None:
        """Undo what the fuzz cases may have changed: the Mac Mask list, the
        reservation and the config string, as the snapshot before the first case."""
        sent = self._commands_sent
        parts = {part for part, command in (("mask", CMD_MAC_MASK), ("reserve", CMD_RESERVE_RELEASE), ("config", CMD_QUERY_CONFIG))
                 if command in sent}
        try:
            if parts:
                self.session.restore(self._snapshot, parts)
            self.session.drain(0.0)
        except OSError:
            pass

    def _not_back(self) -> str:
        error = self.session.restart_error
        return "target did not come back after a restart" + (f" ({error})" if error else "")


def replay_finding(transport: Transport, info: TargetFacts, finding: Finding, *, restart=None, use_shrunk: bool = True, deadline: float = 0.25) -> bool:
    """Send a saved finding's frames again; True if the oracle still fires."""
    from .shrink import readdress

    frames = finding.shrunk if (use_shrunk and finding.shrunk) else finding.frames
    frames = readdress(frames, finding.target, info)
    session = Session(transport, info, restart=restart, new_tag=health_tags())
    session.probe_timeout = deadline
    session.drain(0.0)
    stateful = finding.kind == "unresponsive" or any(is_setup(f) for f in frames)
    return Replayer(session, deadline=deadline).fires(finding.kind, frames, restart=stateful and restart is not None, steps=finding.steps)
