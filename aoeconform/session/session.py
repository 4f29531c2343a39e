"""``Session``: the one conversation every runner has with a target.

It sends requests and waits for their replies (by tag, with the link's
adaptive timeout), checks that the target is alive (a Query Config read must
be answered, §10 rule 36), restarts it with the runner's hook and waits
until it answers again, and takes and puts back the state a run may change
(config string, Mac Mask list, reservation), every frame built with the
codec. The scenario engine, the fuzzer, its shrinker and ``replay`` all go
through it.
"""

from __future__ import annotations

import random
import time
from typing import Callable, Collection, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from aoeconform.transport.base import Transport
from aoeconform.wire import ConfigArg, DecodeError, Frame, MacMaskArg, ReserveArg
from aoeconform.wire.constants import AOE_HEADER_LEN, DST_BYTES, SRC_BYTES, TAG_TOOL_BIT, frame_tag

from . import requests
from .facts import TargetFacts
from .link import Link, TransportLink
from .restart import RESTART_READY_SECONDS
from .state import PARTS, TargetState, mask_directives

#: how ``Session.restore`` problems start when the target did not answer at all
UNANSWERED = "no answer while restoring"
#: a liveness probe's tries before the target counts as not answering
PROBE_ATTEMPTS = 3


def tool_tags(rng: Optional[random.Random] = None) -> Callable[[], int]:
    """Tags with bit 31 set, the bit left to user tools (reference §2), so a
    Linux initiator on the same segment never takes our replies for its own."""
    state = [(rng or random.Random()).getrandbits(31)]

    def new_tag() -> int:
        state[0] = (state[0] + 1) & 0x7FFFFFFF
        return state[0] | TAG_TOOL_BIT

    return new_tag


class Session:
    """``Session(transport, facts, restart=None)``: ``facts`` says where the
    target is and from which MAC we speak (``host_mac``); ``restart`` is the
    runner's restart hook (``restart.restart_command`` for ``--restart-cmd``,
    or the bundled target's own)."""

    def __init__(
        self,
        link: Union[Transport, Link],
        facts: TargetFacts,
        restart: Optional[Callable[[], None]] = None,
        *,
        second_mac: Optional[bytes] = None,
        new_tag: Optional[Callable[[], int]] = None,
        on_frame: Optional[Callable[[bytes], None]] = None,
        ready_seconds: float = RESTART_READY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.link: Link = link if isinstance(link, Link) else TransportLink(link, facts.mac, clock=clock)
        self.facts = facts
        self.restart_hook = restart
        #: a second source MAC the liveness probe and restore also speak from (a Mac Mask list may exclude ours)
        self.second_mac = second_mac
        self.new_tag = new_tag or tool_tags()
        #: frames from the target that answer none of the session's requests (the fuzzer checks them as late replies)
        self.on_frame = on_frame
        #: sees every reply to ``request`` (the scenario engine keeps its start-up probes' replies)
        self.observe: Optional[Callable[[bytes], None]] = None
        self.ready_seconds = ready_seconds
        self.clock = clock
        #: a fixed wait for the liveness probe instead of the adaptive one (None: adaptive)
        self.probe_timeout: Optional[float] = None
        self.last_probe_reply: Optional[bytes] = None
        self.restarts = 0
        #: why the last restart failed
        self.restart_error = ""

    # -- exchanges ------------------------------------------------------------------

    def timeout(self) -> float:
        return self.link.timeout()

    def exchange(self, raw: bytes, wait: Optional[float] = None, *, first_only: bool = True,
                 tags: Iterable[int] = ()) -> Tuple[List[bytes], List[bytes]]:
        """Send ``raw`` as it is; return (replies with its tag, or one of ``tags``;
        other frames from the target) seen within ``wait`` seconds (default: the
        adaptive timeout), or until the first reply with ``first_only``."""
        wanted = set(tags)
        if len(raw) >= AOE_HEADER_LEN:
            wanted.add(frame_tag(raw))
        try:
            self.link.send(raw)
        except OSError:
            return [], []
        return self.link.wait(wanted, self.timeout() if wait is None else wait, first_only)

    def burst(self, frames: Sequence[bytes], wait: Optional[float] = None) -> Tuple[List[List[bytes]], List[bytes]]:
        """Send ``frames`` back to back, each as it is (no wait between them:
        what two initiators, or one with several requests outstanding, do at
        once); return (the replies to each frame, in the order of ``frames``;
        other frames from the target) seen within ``wait`` seconds (default:
        the adaptive timeout), or until every frame has a reply.

        A reply goes to the request with its tag (rule 20: by tag, never by
        order); of requests sharing a tag, to the first one it is addressed to
        that has none yet. A second reply to a request stays with it (the
        caller judges duplicates), never among the others."""
        replies: List[List[bytes]] = [[] for _ in frames]
        by_tag: Dict[int, List[int]] = {}
        for i, frame in enumerate(frames):
            if len(frame) >= AOE_HEADER_LEN:
                by_tag.setdefault(frame_tag(frame), []).append(i)
        others: List[bytes] = []
        try:
            for frame in frames:
                self.link.send(frame)
        except OSError:
            return replies, others
        clock = self.clock
        end = clock() + (self.timeout() if wait is None else wait)
        owed = [i for indices in by_tag.values() for i in indices]
        while any(not replies[i] for i in owed):
            remaining = end - clock()
            if remaining <= 0:
                break
            # every tag of the burst, answered or not: a duplicate is matched, not handed back as another's
            matched, other = self.link.wait(by_tag, remaining)
            others += other
            if not matched:
                break
            for reply in matched:
                replies[self._requester(reply, frames, by_tag[frame_tag(reply)], replies)].append(reply)
        return replies, others

    @staticmethod
    def _requester(reply: bytes, frames: Sequence[bytes], candidates: List[int], replies: List[List[bytes]]) -> int:
        """Which of the requests with ``reply``'s tag it answers: of those whose
        source MAC it goes to (all of them, if none), the first without a reply
        yet, else the last."""
        addressed = [i for i in candidates if frames[i][SRC_BYTES] == reply[DST_BYTES]] or candidates
        return next((i for i in addressed if not replies[i]), addressed[-1])

    def request(self, frame: Frame, attempts: int = 1, wait: Optional[float] = None) -> Optional[Frame]:
        """Send ``frame`` (a fresh tag each try, padded) and return its decoded
        reply, or None after ``attempts`` unanswered tries."""
        for _ in range(attempts):
            frame.header.tag = self.new_tag()
            matched, others = self.exchange(frame.encode(pad=True), wait)
            self._pass_on(others)
            for reply in matched:
                if self.observe is not None:
                    self.observe(bytes(reply))
                try:
                    return Frame.decode(reply)
                except DecodeError:
                    continue
        return None

    def drain(self, quiet: float = 0.0, discard: bool = False) -> None:
        """Take what is queued (and what arrives within ``quiet`` seconds);
        ``discard`` drops it instead of passing it to ``on_frame``."""
        frames = self.link.drain(quiet)
        if not discard:
            self._pass_on(frames)

    def _pass_on(self, frames: Sequence[bytes]) -> None:
        if self.on_frame is not None:
            for frame in frames:
                self.on_frame(frame)

    # -- liveness and restart ----------------------------------------------------------

    def probe(self, attempts: int = PROBE_ATTEMPTS, timeout: Optional[float] = None) -> bool:
        """A Query Config read answered (§10 rule 36): the target is alive. Each
        try goes out from our MAC and the second one together, one wait for both."""
        sources = [self.facts.host_mac] + ([self.second_mac] if self.second_mac else [])
        wait = timeout if timeout is not None else self.probe_timeout
        for _ in range(attempts):
            tags = []
            for src in sources:
                frame = requests.config_read(self.facts, self.new_tag(), src)
                tags.append(frame.header.tag)
                try:
                    self.link.send(frame.encode(pad=True))
                except OSError:
                    pass
            matched, others = self.link.wait(tags, self.timeout() if wait is None else wait)
            self._pass_on(others)
            if matched:
                self.last_probe_reply = matched[0]
                return True
        return False

    def wait_alive(self, seconds: float) -> bool:
        """Probe until the target answers or ``seconds`` pass."""
        until = self.clock() + seconds
        while True:
            if self.probe(attempts=1):
                return True
            if self.clock() >= until or self.link.synchronous:
                return False

    @property
    def can_restart(self) -> bool:
        return self.restart_hook is not None

    def restart(self, wait: bool = True) -> bool:
        """Run the restart hook, then (``wait``) probe until the target answers
        again, at most ``ready_seconds``: the hook may return before the target
        is up. False when there is no hook, it failed (``restart_error`` says
        why) or the target stays silent."""
        if self.restart_hook is None:
            self.restart_error = "no restart hook (--restart-cmd)"
            return False
        self.restarts += 1
        try:
            self.restart_hook()
        except Exception as exc:  # the hook is the user's command, or a bundled target's
            self.restart_error = str(exc) or type(exc).__name__
            return False
        self.restart_error = ""
        if not wait:
            return True
        if self.wait_alive(self.ready_seconds):
            self.drain(0.0)
            return True
        self.restart_error = f"the target did not answer within {self.ready_seconds:g} s of the restart"
        return False

    # -- target state ---------------------------------------------------------------------

    def snapshot(self, attempts: int = 2) -> TargetState:
        """Read the config string, the Mac Mask list and the reservation (None for
        a part the target refuses or does not answer)."""
        facts = self.facts
        config = self.request(requests.config_read(facts), attempts)
        mask = self.request(requests.mask_read(facts), attempts)
        reserve = self.request(requests.reserve_read(facts), attempts)
        return TargetState(
            config=config.arg.config if config is not None and not config.header.error_flag and isinstance(config.arg, ConfigArg) else None,
            mask=tuple(d.mac for d in mask.arg.directives)
            if mask is not None and not mask.header.error_flag and isinstance(mask.arg, MacMaskArg) else None,
            reservation=tuple(reserve.arg.macs)
            if reserve is not None and not reserve.header.error_flag and isinstance(reserve.arg, ReserveArg) else None,
        )

    def restore(self, state: TargetState, parts: Collection[str] = PARTS) -> List[str]:
        """Put back the ``parts`` of ``state`` (config, mask, reserve) that are
        known; returns the problems found (empty when all is back). One that
        starts with ``UNANSWERED`` means the target did not answer at all, and
        nothing after it was tried."""
        facts = self.facts
        problems: List[str] = []
        if "mask" in parts and state.mask is not None:
            wanted = list(state.mask)
            reply, src = None, facts.host_mac
            for src in [facts.host_mac] + ([self.second_mac] if self.second_mac else []):
                reply = self.request(requests.mask_read(facts, src=src), 1)
                if reply is not None:
                    break
            if reply is None:
                # neither MAC gets an answer: dead, or locked out; nothing else can be put back
                return problems + [f"{UNANSWERED}: could not read the Mac Mask list to restore it (locked out?)"]
            if not isinstance(reply.arg, MacMaskArg):
                problems.append("could not read the Mac Mask list to restore it")
            else:
                directives = mask_directives([d.mac for d in reply.arg.directives], wanted, src)
                if directives:
                    if self.request(requests.mask_edit(facts, directives, src=src), 2) is None:
                        return problems + [f"{UNANSWERED}: no answer to the Mac Mask edit that restores the list"]
                    check = self.request(requests.mask_read(facts), 2)
                    if check is None or not isinstance(check.arg, MacMaskArg) or \
                            sorted(d.mac for d in check.arg.directives) != sorted(wanted):
                        problems.append("the Mac Mask list could not be restored")
        if "reserve" in parts and state.reservation is not None:
            wanted = list(state.reservation)
            if self.request(requests.reserve_force_set(facts, wanted), 2) is None:
                return problems + [f"{UNANSWERED}: no answer to the Reserve/Release force set that restores the reservation"]
            check = self.request(requests.reserve_read(facts), 2)
            if check is None or not isinstance(check.arg, ReserveArg) or sorted(check.arg.macs) != sorted(wanted):
                problems.append("the reservation could not be restored")
        if "config" in parts and state.config is not None:
            config = state.config
            done = self.request(requests.config_force_set(facts, config), 2)
            if done is None:
                return problems + [f"{UNANSWERED}: no answer to the Query Config force set that restores the config string"]
            check = done if isinstance(done.arg, ConfigArg) and not done.header.error_flag else self.request(requests.config_read(facts), 2)
            if check is None or not isinstance(check.arg, ConfigArg) or check.arg.config != config:
                problems.append(f"the config string could not be restored to {config!r}")
        return problems
