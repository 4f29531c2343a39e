"""The scenario engine: runs cases against a target endpoint.

It knows the step kinds of the scenario format and nothing about particular
requirements. A case runs its steps in order and stops at the first step
that fails; afterwards the engine puts back target state the case may have
changed (config string, Mac Mask list, reservation) and checks that the
target still answers. Every wait is bounded: by the adaptive timeout, by
the step watchdog and by the case watchdog.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional

from aoeconform.errors import TargetUnreachable
from aoeconform.session import UNANSWERED, Session, TargetFacts, TargetState, requests
from aoeconform.session.session import PROBE_ATTEMPTS
from aoeconform.wire import AtaArg, ConfigArg, Frame, Header, MacMaskArg, ReserveArg
from aoeconform.wire.constants import (
    AFLAG_A,
    AFLAG_E,
    AFLAG_W,
    AOE_HEADER_LEN,
    ATA_CHECK_POWER_MODE,
    ATA_ERROR_ABRT,
    ATA_FLUSH_CACHE,
    ATA_FLUSH_CACHE_EXT,
    ATA_READ_SECTORS,
    ATA_READ_SECTORS_EXT,
    ATA_STATUS_ERR,
    ATA_STATUS_FAILURE_MASK,
    ATA_WRITE_SECTORS,
    ATA_WRITE_SECTORS_EXT,
    BROADCAST_MAC,
    CMD_ATA,
    COMMAND_BYTE,
    LBA28_MAX_SECTORS,
    SECTOR_SIZE,
    SHELF_BYTES,
    SLOT_BYTE,
    frame_tag,
)

from . import results as R
from .build import Built, build, changes_state
from .endpoint import TargetEndpoint
from .expect import CheckError, Env, ReplyView, Request, Verdict, accepts_silence, evaluate, silence_seconds, waits_for_all
from .expr import ExprError
from .model import Case, Step, weaker_level
from .rules import RULES, charge
from .shadow import ShadowDisk
from .values import ValueError_, byte_value, integer
from .wire import Timing, Watchdog, Wire, WireLink

OK_REPLY = {"reply": {"header": {"error_flag": False}, "ata": {"cmd_status": {"bits_clear": ATA_STATUS_FAILURE_MASK}}}}
ASYNC_OK = {"any_of": [OK_REPLY, {"silence": True}]}
ANY_REPLY = {"reply": {"header": {"error_flag": False}}}
LIVENESS_ATTEMPTS = PROBE_ATTEMPTS

#: the results observed_results() adds to a run (they can be named in an expectations file)
OBSERVED_IDS = ("observed/probe/real-address", "observed/probe/padded", "observed/run/tags-returned")

#: skip reason for each missing capability
CAPABILITY_SKIP = {"writes": R.NOT_PERMITTED, "config": R.NOT_PERMITTED}


class CaseStop(Exception):
    """Ends a case early with an outcome other than failed."""

    def __init__(self, outcome: str, message: str, skip_reason: Optional[str] = None):
        super().__init__(message)
        self.outcome = outcome
        self.message = message
        self.skip_reason = skip_reason


@dataclass
class RunOptions:
    seed: int = 0
    allow_write: bool = True
    lba_window: Optional[tuple[int, int]] = None
    #: (also on a quick lab link: a reply that comes ends the wait at once, and a target on
    #: a loaded machine can take longer than 50 ms to answer a FLUSH, which failed a MUST case)
    timeout_floor: float = 0.25
    timeout_factor: float = 8.0
    timeout_ceiling: float = 5.0
    step_timeout: float = 30.0
    case_timeout: float = 120.0
    repeat: int = 1
    #: case id -> reason, from --expectations
    expected_failures: dict = field(default_factory=dict)
    allow_config_changes: bool = True
    #: after the cases, report what the harness noticed on its own (observed/...):
    #: "all" of it, only "failures" (a filtered run keeps its list of cases), or nothing
    observe: str = ""
    #: --linux: cases with `linux` steps boot the kernel's AoE driver (user-mode Linux)
    linux: bool = False


@dataclass
class _Exchange:
    built: Built
    spec: Optional[Mapping]
    copies: int = 1
    #: extra frames (duplicates with fresh tags) belong to their own exchanges
    async_write: bool = False
    #: learn/compare with the shadow as a verifying read
    verify_read: bool = False
    replies: list = field(default_factory=list)
    sent_at: float = 0.0
    deadline: float = 0.0
    waited: float = 0.0


class Engine:
    def __init__(self, endpoint: TargetEndpoint, options: Optional[RunOptions] = None, *, clock: Callable[[], float] = time.monotonic):
        self.endpoint = endpoint
        self.options = options or RunOptions()
        self.clock = clock
        timing = Timing(self.options.timeout_floor, self.options.timeout_factor, self.options.timeout_ceiling)
        self.wire = Wire(endpoint.transport, endpoint.second, timing, clock)
        # until the probe, the session knows the target's address and our MAC
        self.session = Session(WireLink(self.wire), TargetFacts(endpoint.mac, endpoint.shelf, endpoint.slot, endpoint.transport.mac, endpoint.mtu),
                               endpoint.restart, second_mac=endpoint.second_mac or None, new_tag=self.new_tag, clock=clock)
        self.shadow = ShadowDisk()
        self.facts: Optional[TargetFacts] = None
        self.rng = random.Random(self.options.seed)
        self._tag = self.rng.getrandbits(31)
        self.dead_since: Optional[str] = None
        self.started = 0.0
        self.elapsed = 0.0
        self.results: list[R.CaseResult] = []
        self.load_available = True
        self._linux_problem: Optional[str] = None
        #: raw replies to the start-up probes, judged by observed_results()
        self.probe_replies: list[bytes] = []

    # -- tags and timeouts ---------------------------------------------------------

    def new_tag(self) -> int:
        """Fresh tags with bit 31 clear, unique within the run."""
        self._tag = (self._tag + 1) & 0x7FFFFFFF or 1
        return self._tag

    def timeout(self) -> float:
        return self.wire.timing.timeout()

    def silence_window(self) -> float:
        return self.wire.timing.silence()

    # -- the start-up probe ----------------------------------------------------------

    def _header(self, command: int, src: Optional[bytes] = None) -> Header:
        return requests.header(self.session.facts, command, self.new_tag(), src)

    def query_config(self, src: Optional[bytes] = None, attempts: int = LIVENESS_ATTEMPTS) -> Optional[Frame]:
        return self.session.request(requests.config_read(self.session.facts, src=src), attempts)

    def probe(self) -> TargetFacts:
        """Query Config, IDENTIFY, Mac Mask read and Reserve read (the run's baseline)."""
        self.session.observe = self.probe_replies.append
        try:
            return self._probe()
        finally:
            self.session.observe = None

    def _probe(self) -> TargetFacts:
        ep, session = self.endpoint, self.session
        self.wire.drain()
        reply = self.query_config(attempts=LIVENESS_ATTEMPTS)
        if reply is None or not isinstance(reply.arg, ConfigArg):
            raise TargetUnreachable(
                f"target {ep.shelf}.{ep.slot} ({ep.mac.hex(':')}) did not answer Query Config on {ep.transport.name}; "
                f"check that it runs and that no Mac Mask list excludes {ep.transport.mac.hex(':')}"
            )
        # the address asked for, whatever the reply says: wrong addresses are observed/probe/real-address
        facts = TargetFacts.from_config(reply, ep.transport.mac, ep.mtu)
        facts.mac, facts.shelf, facts.slot = ep.mac, ep.shelf, ep.slot
        ident = session.request(requests.identify(facts), 2)
        if ident is not None:
            facts.apply_identify(ident)
        else:
            facts.identify_error = "no reply to IDENTIFY DEVICE"
        facts.check_power = not self._refused(ATA_CHECK_POWER_MODE)
        facts.flush = not self._refused(ATA_FLUSH_CACHE)
        mask = session.request(requests.mask_read(facts), 2)
        # an answer without E is support, even a garbled one: the cases judge its fields
        if mask is not None and not mask.header.error_flag:
            facts.mask = [d.mac for d in mask.arg.directives] if isinstance(mask.arg, MacMaskArg) else []
        res = session.request(requests.reserve_read(facts), 2)
        if res is not None and not res.header.error_flag:
            facts.reservation = list(res.arg.macs) if isinstance(res.arg, ReserveArg) else []
        self.facts = session.facts = facts
        return facts

    @property
    def known(self) -> TargetFacts:
        """What the probe learned; cases run only after it."""
        if self.facts is None:
            raise RuntimeError("the target has not been probed")
        return self.facts

    def _refused(self, opcode: int) -> bool:
        """Whether an optional ATA command is answered as unsupported (ERR with
        ABRT). Silence proves nothing, so it counts as supported and the cases
        that use the command judge it."""
        reply = self.session.request(requests.ata_command(self.session.facts, opcode), 2)
        if reply is None or reply.header.error_flag or not isinstance(reply.arg, AtaArg):
            return False
        return bool(reply.arg.cmd_status & ATA_STATUS_ERR) and bool(reply.arg.err_feature & ATA_ERROR_ABRT)

    # -- capabilities and variables -----------------------------------------------------

    def capabilities(self) -> dict[str, bool]:
        f = self.known
        return {
            "writes": self.options.allow_write,
            "lba48": f.lba48,
            "mask": f.mask is not None,
            "reserve": f.reservation is not None,
            "config": self.options.allow_config_changes,
            "second_mac": bool(self.endpoint.second_mac),
            "capacity_above_2_28": (f.capacity or 0) > LBA28_MAX_SECTORS + 1,
            "identify": f.identified,
            "restart": self.session.can_restart,
            "readonly": self.endpoint.readonly,
            "load": self.load_available,
            "check_power": f.check_power,
            "flush": f.flush,
            "linux": self.linux_available,
        }

    @property
    def linux_available(self) -> bool:
        if not self.options.linux:
            return False
        if self._linux_problem is None:
            from .linux import linux_problem

            self._linux_problem = linux_problem(self.endpoint)
        return not self._linux_problem

    def window(self) -> tuple[int, int]:
        if self.options.lba_window is not None:
            return self.options.lba_window
        return (0, self.known.capacity or 0)

    def base_variables(self) -> dict:
        f, ep = self.known, self.endpoint
        base, count = self.window()
        return {
            "shelf": f.shelf, "slot": f.slot, "mac": ep.transport.mac, "second_mac": ep.second_mac,
            "target_mac": f.mac, "max_sectors": f.max_sectors, "capacity": f.capacity or 0, "bufcnt": f.bufcnt,
            "lba_base": base, "lba_count": count, "config": f.config, "mtu": f.mtu, "lba48": int(f.lba48),
            "firmware": f.firmware, "seed": self.options.seed, "last_tag": 0,
        }

    def roles(self) -> dict:
        ep = self.endpoint
        return {"mac": ep.transport.mac, "second_mac": ep.second_mac, "target": ep.mac, "target_mac": ep.mac,
                "broadcast": BROADCAST_MAC}

    # -- running ------------------------------------------------------------------------

    def run(self, cases: list[Case], listener=None, skips: Optional[dict] = None) -> list[R.CaseResult]:
        """Run ``cases`` (already selected); ``skips`` maps ids to (reason, message)
        for cases deselected before sending that should still be reported."""
        if self.facts is None:
            self.probe()
        self.started = self.clock()
        try:
            for case in cases:
                for repeat in range(max(1, self.options.repeat)):
                    if listener is not None:
                        listener.case_started(case, repeat)
                    result = self.run_case(case, repeat, (skips or {}).get(case.id))
                    self.results.append(result)
                    if listener is not None:
                        listener.case_finished(result)
            if self.options.observe:
                for result in self.observed_results():
                    if self.options.observe != "all" and result.outcome == R.PASSED:
                        continue
                    self.results.append(result)
                    if listener is not None:
                        listener.case_finished(result)
        finally:
            self.elapsed = self.clock() - self.started
        return self.results

    def observed_results(self) -> list[R.CaseResult]:
        """What the harness noticed without a case asking, as results of their
        own: the start-up probes' replies (real shelf and slot, padding) and
        replies, all run long, that carried a tag the harness never sent."""
        ep = self.endpoint
        probes = self.probe_replies
        wrong_address = [r for r in probes if len(r) >= AOE_HEADER_LEN and (_shelf(r), r[SLOT_BYTE]) != (ep.shelf, ep.slot)]
        runts = [r for r in probes if len(r) < 60]
        strangers = self.wire.strangers
        checks = [
            ("observed/probe/real-address", 11, "The replies to the start-up probes (Query Config, IDENTIFY, Mac Mask and Reserve reads, CHECK POWER, FLUSH) carry the target's real shelf and slot.",
             wrong_address, lambda r: f"shelf {_shelf(r)} slot {r[SLOT_BYTE]} instead of {ep.shelf}.{ep.slot}"),
            ("observed/probe/padded", 16, "The replies to the start-up probes are padded to at least 60 bytes.",
             runts, lambda r: f"a {len(r)}-byte reply to command {r[COMMAND_BYTE]}"),
            ("observed/run/tags-returned", 4, "No reply to the harness, all run long, carries a tag the harness never sent.",
             strangers, lambda r: f"tag 0x{frame_tag(r):08x} in a reply to command {r[COMMAND_BYTE]}"),
        ]
        out = []
        for case_id, rule, requirement, bad, describe in checks:
            section, level, _ = RULES[rule]
            result = R.CaseResult(case_id, requirement, section, level, R.PASSED, rule=[rule], tags=["observed"],
                                  suite="observed", file="(harness)", start=time.time(), checked_rules=[rule])
            if bad:
                result.outcome, result.failed_rule, result.failed_level = R.FAILED, rule, level
                result.message = f"{len(bad)} reply(ies) seen: {describe(bad[0])}" + (f"; and {len(bad) - 1} more" if len(bad) > 1 else "")
                result.frames = [R.FrameRecord(time.time(), "in", ep.transport.name, raw) for raw in bad[:16]]
            xfail = self.options.expected_failures.get(case_id)
            if xfail is not None:
                result.expected_failure = xfail
                result.outcome = R.XFAILED if result.outcome == R.FAILED else R.XPASSED
                if result.outcome == R.XPASSED:
                    result.message = f"expected to fail ({xfail}) but passed"
            out.append(result)
        return out

    def run_case(self, case: Case, repeat: int = 0, skip: Optional[tuple] = None) -> R.CaseResult:
        result = R.CaseResult(case.id, case.requirement, case.section, case.level, R.PASSED, rule=case.rule, tags=case.tags,
                              suite=case.suite, file=case.file, line=case.line, repeat=repeat, start=time.time(),
                              checked_rules=case.rules_checked)
        xfail = self.options.expected_failures.get(case.id)
        if skip is not None:
            result.outcome, result.skip_reason, result.message = R.SKIPPED, skip[0], skip[1]
            return result
        caps = self.capabilities()
        missing = [need for need in case.requires if not caps.get(need, False)]
        if missing:
            reason = CAPABILITY_SKIP.get(missing[0], R.UNSUPPORTED)
            result.outcome, result.skip_reason = R.SKIPPED, reason
            result.message = f"{reason}: needs {', '.join(missing)}" + (" (add --allow-write)" if "writes" in missing and not self.options.allow_write else "")
            if "linux" in missing:
                result.skip_reason = R.NOT_PERMITTED if not self.options.linux else R.UNSUPPORTED
                result.message = (f"{result.skip_reason}: boots the Linux AoE driver in user-mode Linux (add --linux)"
                                  if not self.options.linux else f"{R.UNSUPPORTED}: {self._linux_problem}")
            return result
        if self.dead_since is not None:
            if self.session.probe(attempts=1):  # one try per case while it stays dead
                self.dead_since = None
            else:
                result.outcome, result.skip_reason = R.ERROR, R.PREREQUISITE_FAILED
                result.message = f"not run: the target has not answered since case {self.dead_since}"
                return result

        records = self.wire.start_recording()
        exchanges_before = self.wire.exchanges
        samples_before = len(self.wire.timing.all_samples)
        started = self.clock()
        ctx = _CaseContext(case, self, result)
        case_deadline = started + (case.timeout or self.options.case_timeout)
        try:
            for index, step in enumerate(case.steps):
                record = R.StepRecord(index, step.action, step.line, step.label)
                result.steps.append(record)
                lacking = [need for need in step.requires if not caps.get(need, False)]
                if lacking:
                    # the rest of the case still says something about the target
                    record.message = f"{R.UNSUPPORTED}: step skipped, needs {', '.join(lacking)}"
                    result.notes.append(f"step {index + 1} ({step.label or step.action}, line {step.line}) skipped: {record.message}")
                    continue
                step_deadline = self.clock() + (step.timeout or self.options.step_timeout)
                if step_deadline < case_deadline:
                    self.wire.deadline, self.wire.deadline_what = step_deadline, f"step {index + 1} ({step.action}) ran past its {step.timeout or self.options.step_timeout:g} s watchdog"
                else:
                    self.wire.deadline, self.wire.deadline_what = case_deadline, f"case ran past its {case.timeout or self.options.case_timeout:g} s watchdog"
                ok = ctx.run_step(step, record)
                if not ok:
                    result.failed_step = index
                    self._charge(result, case, index, ctx.failed_checks)
                    result.outcome = R.TIMEOUT if ctx.last_no_reply else R.FAILED
                    result.message = f"step {index + 1} ({step.label or step.action}, line {step.line}): {record.message}"
                    break
                if self.clock() > case_deadline:
                    raise Watchdog(f"case ran past its {case.timeout or self.options.case_timeout:g} s watchdog")
        except Watchdog as exc:
            result.outcome, result.message = R.TIMEOUT, str(exc)
            result.failed_step = len(result.steps) - 1
            self._charge(result, case, result.failed_step)
        except CaseStop as stop:
            result.outcome, result.message, result.skip_reason = stop.outcome, stop.message, stop.skip_reason
        except (CheckError, ValueError_, ExprError) as exc:
            last = result.steps[-1] if result.steps else None
            where = f"{case.file}:{last.line}" if last else case.where
            result.outcome, result.message = R.ERROR, f"{where}: {exc}"
        finally:
            self.wire.deadline = None
        try:
            self._after_case(ctx, result)
        except Watchdog as exc:
            result.notes.append(f"after the case: {exc}")
        result.duration = self.clock() - started
        result.frames = list(records)
        result.sent = [f.raw for f in records if f.direction == "out"]
        result.exchanges = self.wire.exchanges - exchanges_before
        result.rtts = self.wire.timing.all_samples[samples_before:]
        self.wire.records = None
        if xfail is not None:
            result.expected_failure = xfail
            if result.outcome in (R.FAILED, R.TIMEOUT):
                result.outcome = R.XFAILED
            elif result.outcome == R.PASSED:
                result.outcome = R.XPASSED
                result.message = f"expected to fail ({xfail}) but passed"
        return result

    @staticmethod
    def _charge(result: R.CaseResult, case: Case, step_index: Optional[int], checks: Optional[list] = None) -> None:
        """Charge a failure to the rule the failing step checks, at that rule's
        level when it is weaker than the case's (notes §10, "Levels")."""
        step_rules = case.steps[step_index].rule if step_index is not None and 0 <= step_index < len(case.steps) else []
        rule = charge(step_rules, case.rule, checks)
        result.failed_rule = rule
        result.failed_level = weaker_level(case.level, RULES[rule][1]) if rule in RULES else case.level

    # -- after each case: restore, liveness ---------------------------------------------

    def _after_case(self, ctx: "_CaseContext", result: R.CaseResult) -> None:
        self.wire.deadline = self.clock() + self.options.step_timeout
        self.wire.deadline_what = "restoring target state"
        try:
            unanswered = ctx.unanswered
            if ctx.touched:
                problems = self.restore(ctx.touched)
                result.notes += problems
                unanswered = any(p.startswith(UNANSWERED) for p in problems)
            if result.outcome == R.SKIPPED:
                return
            # restore already met silence: one more try decides (saves a timeout per dead target)
            alive = self.session.probe(attempts=1 if unanswered else LIVENESS_ATTEMPTS)
            if alive:
                self._late_replies(ctx, result)
            else:
                note = "the target stopped answering Query Config after this case"
                result.notes.append(note)
                if result.outcome in (R.PASSED, R.XPASSED):
                    result.outcome, result.message = R.FAILED, note
                    self._charge(result, ctx.case, None)
                restarted = self._restart(result)
                if not restarted:
                    self.dead_since = result.id
        finally:
            self.wire.deadline = None

    def _late_replies(self, ctx: "_CaseContext", result: R.CaseResult) -> None:
        """Replies to requests judged by silence that came after the silence
        window (the liveness probe has been answered, so a target that works
        in order has sent them by now). A late reply the expectation accepts
        anyway is a note; any other fails the case."""
        for step_index, ex, waited in ctx.silent:
            late = self.wire.take(ex.built.tag)
            if not late:
                continue
            views = [ReplyView(r) for r in late]
            verdict = evaluate(ex.spec, views, ctx._request(ex.built), ctx.env, waited)
            what = f"step {step_index + 1}: {len(late)} reply(ies) to tag 0x{ex.built.tag:08x} came after the {waited:.3g} s silence window"
            if verdict.ok:
                result.notes.append(f"{what}; the expectation accepts {'it' if len(late) == 1 else 'them'}")
                continue
            result.notes.append(f"{what}: {verdict.message}")
            if result.outcome in (R.PASSED, R.XPASSED):
                result.outcome = R.FAILED
                result.failed_step = step_index
                self._charge(result, ctx.case, step_index, None if verdict.alternatives else verdict.failures())
                result.message = f"{what}: {verdict.message}"
                if 0 <= step_index < len(result.steps):
                    record = result.steps[step_index]
                    record.ok, record.message = False, result.message
                    record.verdicts = list(record.verdicts or []) + [verdict.as_dict()]

    def _restart(self, result: R.CaseResult) -> bool:
        session = self.session
        if not session.can_restart:
            result.notes.append("no restart hook (--restart-cmd); later cases will not run until it answers again")
            return False
        if not session.restart(wait=False):
            result.notes.append(f"restart failed: {session.restart_error}")
            return False
        self.shadow.forget_all()  # a restarted target may have lost unflushed writes
        alive = session.wait_alive(session.ready_seconds)
        result.notes.append("target restarted" + ("" if alive else ", but it still does not answer"))
        if alive:
            self.restore({"config", "mask", "reserve"})
        return alive

    def restore(self, parts) -> list[str]:
        """Put back config string, mask list and reservation as they were at the
        start of the run; returns problems found (empty when all is back)."""
        return self.session.restore(TargetState.of(self.known), parts)

    @property
    def exchanges_per_second(self) -> float:
        return self.wire.exchanges / self.elapsed if self.elapsed > 0 else 0.0


class _CaseContext:
    """State of one running case: variables, what it touched, its steps."""

    def __init__(self, case: Case, engine: Engine, result: R.CaseResult):
        self.case = case
        self.engine = engine
        self.result = result
        self.variables = engine.base_variables()
        self.env = Env(self.variables, engine.roles(), engine.options.seed, engine.shadow)
        self.touched: set[str] = set()
        self.last_no_reply = False
        self.last: Optional[_Exchange] = None
        self.sent_any = False
        self._pattern = 0
        #: (step index, exchange, seconds waited) for requests judged by silence
        self.silent: list = []
        #: a restore step met a target that did not answer
        self.unanswered = False
        #: the failing field checks of the last step (None: not a matter of fields)
        self.failed_checks: Optional[list] = None

    @property
    def wire(self) -> Wire:
        return self.engine.wire

    @property
    def facts(self) -> TargetFacts:
        return self.engine.known

    # -- steps --------------------------------------------------------------------

    def run_step(self, step: Step, record: R.StepRecord) -> bool:
        handler = getattr(self, "step_" + step.action)
        self.last_no_reply = False
        self.failed_checks = None
        verdicts = handler(step.body, step) or []
        record.verdicts = [v.as_dict() for v in verdicts]
        failed = [v for v in verdicts if not v.ok]
        if failed:
            record.ok = False
            record.message = failed[0].message
            self.last_no_reply = all(v.no_reply for v in failed)
            decisive = [_decisive_checks(v) for v in failed]
            if all(d is not None for d in decisive):
                self.failed_checks = [c for d in decisive if d is not None for c in d]
            return False
        return True

    def step_send(self, body, step: Step) -> list[Verdict]:
        ex = _Exchange(self._build(body), step.raw.get("expect"))
        return self._run_exchanges([ex])

    def step_expect(self, body, step: Step) -> list[Verdict]:
        """More replies: to the last request's tag (match: tag), or any frame at all (match: any)."""
        quiet = accepts_silence(body) and body.get("match") != "any"
        base = self.engine.silence_window() if quiet else self.engine.timeout()
        timeout = max(body.get("timeout", 0) or 0, base, silence_seconds(body))
        until = self.engine.clock() + timeout
        if body.get("match") == "any":
            self.wire.wait(lambda: bool(self._unsolicited()) and not waits_for_all(body), until)
            replies = self._unsolicited()
            self.wire.arrivals.clear()
            self.wire.unsolicited.clear()
            request = None
        else:
            if self.last is None:
                raise CheckError("expect without an earlier send: nothing to match replies to (use match: any)")
            tag = self.last.built.tag
            self.wire.wait(lambda: bool(self.wire.replies(tag)) and not waits_for_all(body), until)
            replies = self.wire.take(tag)
            request = self._request(self.last.built)
            if quiet and not replies:
                self.silent.append((len(self.result.steps) - 1, _Exchange(self.last.built, body), timeout))
        return [evaluate(body, [ReplyView(r) for r in replies], request, self.env, timeout)]

    def _unsolicited(self) -> list[bytes]:
        """Frames that arrived for the harness (broadcast, or one of its MACs) and
        answer none of its requests: what `match: any` judges. Late replies, and
        replies to readiness probes a restart hook sent from another MAC, are not."""
        ours = {self.engine.endpoint.transport.mac, self.engine.endpoint.second_mac}
        return [raw for raw in self.wire.unsolicited if raw[0] & 1 or bytes(raw[:6]) in ours]

    def step_duplicate(self, body, step: Step) -> list[Verdict]:
        copies = body.get("copies", 2)
        first = self._build(body["send"])
        spec = body.get("expect")
        if body.get("same_tag", True):
            ex = _Exchange(first, spec, copies=copies)
            exchanges = [ex]
        else:
            exchanges = [_Exchange(first, spec)]
            for _ in range(copies - 1):
                tag = self.engine.new_tag()
                raw = first.raw[:20] + tag.to_bytes(4, "big") + first.raw[24:]
                exchanges.append(_Exchange(Built(raw, tag, lba=first.lba, sectors=first.sectors, opcode=first.opcode,
                                                 write_data=first.write_data), spec))
        verdicts = self._run_exchanges(exchanges, send_all_first=True)
        if body.get("equivalent", False):
            replies = [r for ex in exchanges for r in ex.replies]
            verdicts.append(_equivalence(replies, copies))
        return verdicts

    def step_batch(self, body, step: Step) -> list[Verdict]:
        exchanges = []
        default = body.get("expect_each")
        for item in body["sends"]:
            if "send" in item:
                exchanges.append(_Exchange(self._build(item["send"]), item.get("expect", default)))
            elif "write" in item:
                exchanges += self._write_exchanges(item["write"], default_spec=default)
            else:
                exchanges += self._read_exchanges(item["read_verify"])
        order = body.get("order", "as_written")
        indices = list(range(len(exchanges)))
        if order == "reversed":
            indices.reverse()
        elif order == "shuffled":
            random.Random(f"{self.engine.options.seed}:{self.case.id}:{step.line}").shuffle(indices)
        elif isinstance(order, list):
            if len(exchanges) != len(order):
                raise CheckError(f"batch order lists {len(order)} positions for {len(exchanges)} frames (a write or read of several frames counts each)")
            indices = list(order)
        window = integer(body.get("window", len(exchanges)), self.variables, "batch.window")
        return self._run_exchanges([exchanges[i] for i in indices], window=max(1, window), send_all_first=window >= len(exchanges))

    def step_write(self, body, step: Step) -> list[Verdict]:
        return self._run_exchanges(self._write_exchanges(body))

    def step_read_verify(self, body, step: Step) -> list[Verdict]:
        return self._run_exchanges(self._read_exchanges(body))

    def step_flush(self, body, step: Step) -> list[Verdict]:
        body = body or {}
        extended = body.get("extended", "auto")
        if extended == "auto":
            extended = self.facts.lba48
        arg = {"aflags": AFLAG_E if extended else 0, "cmd_status": ATA_FLUSH_CACHE_EXT if extended else ATA_FLUSH_CACHE}
        ex = _Exchange(self._build({"command": "ata", "ata": arg}), body.get("expect", ANY_REPLY))
        return self._run_exchanges([ex])

    def step_liveness(self, body, step: Step) -> list[Verdict]:
        alive = self.engine.query_config(attempts=LIVENESS_ATTEMPTS) is not None
        return [Verdict(alive, "ok" if alive else f"no answer to Query Config in {LIVENESS_ATTEMPTS} attempts", no_reply=not alive)]

    def step_restore(self, body, step: Step) -> list[Verdict]:
        body = body or {}
        parts = {p for p in ("config", "mask", "reserve") if body.get(p, True)}
        problems = self.engine.restore(parts)
        self.touched -= parts
        self.unanswered = self.unanswered or any(p.startswith(UNANSWERED) for p in problems)
        return [Verdict(not problems, "; ".join(problems) or "restored")]

    def step_restart(self, body, step: Step) -> list[Verdict]:
        session = self.engine.session
        if not session.can_restart:
            raise CaseStop(R.SKIPPED, "unsupported: no way to restart the target (give --restart-cmd)", R.UNSUPPORTED)
        self.wire.drain()  # what was on its way before the restart is not the target's start-up
        self.wire.arrivals.clear()
        self.wire.unsolicited.clear()
        # no waiting for an answer here: the steps after it judge the start-up
        restarted = session.restart(wait=False)
        self.engine.shadow.forget_all()
        return [] if restarted else [Verdict(False, f"restart failed: {session.restart_error}")]

    def step_sleep(self, body, step: Step) -> list[Verdict]:
        self.wire.sleep(float(body))
        return []

    def step_set(self, body, step: Step) -> list[Verdict]:
        for name, value in body.items():
            if isinstance(value, (int, str)) and not isinstance(value, bool):
                self.variables[name] = integer(value, self.variables, f"set.{name}")
            else:
                self.variables[name] = byte_value(value, self.variables, seed=self.engine.options.seed, what=f"set.{name}")
        return []

    def step_linux(self, body, step: Step) -> list[Verdict]:
        from .linux import run_linux_step

        region = self._region(body.get("lba", "$lba_base"), body.get("sectors", 64))
        self._check_write_allowed(*region)
        return run_linux_step(self.engine, body, region, body.get("timeout") or step.timeout)

    def step_load(self, body, step: Step) -> list[Verdict]:
        from .load import run_load

        region = self._region(body.get("lba", "$lba_base"), body.get("sectors", 64))
        self._check_write_allowed(*region)
        ok, message = run_load(self.engine, body, region)
        self.engine.shadow.forget(*region)
        return [Verdict(ok, message)]

    # -- building and running exchanges ----------------------------------------------

    def _build(self, spec: Mapping) -> Built:
        built = build(spec, self.env, {"shelf": self.facts.shelf, "slot": self.facts.slot}, self.engine.new_tag)
        self.variables["last_tag"] = built.tag
        return built

    def _request(self, built: Built) -> Request:
        return Request(built.raw, built.tag, built.lba, built.sectors)

    def _region(self, lba, sectors) -> tuple[int, int]:
        return integer(lba, self.variables, "lba"), integer(sectors, self.variables, "sectors")

    def _next_pattern(self) -> int:
        self._pattern += 1
        return self._pattern

    def _write_exchanges(self, body: Mapping, default_spec=None) -> list[_Exchange]:
        lba, sectors = self._region(body["lba"], body.get("sectors", 1))
        extended = body.get("extended", "auto")
        if extended == "auto":
            extended = self.facts.lba48
        data_spec = body.get("data", {"pattern": self._next_pattern() + _stable_number(self.case.id) * 1000, "sectors": sectors})
        data = byte_value(data_spec, self.variables, seed=self.engine.options.seed, lba=lba, what="write.data", default_sectors=sectors)
        if len(data) != sectors * SECTOR_SIZE:
            raise CheckError(f"write.data is {len(data)} bytes; {sectors} sector(s) need {sectors * SECTOR_SIZE}")
        aflags = AFLAG_W | (AFLAG_E if extended else 0) | (AFLAG_A if body.get("async") else 0)
        opcode = ATA_WRITE_SECTORS_EXT if extended else ATA_WRITE_SECTORS
        spec = body.get("expect", default_spec or (ASYNC_OK if body.get("async") else OK_REPLY))
        out = []
        step = self.facts.max_sectors
        for offset in range(0, sectors, step):
            n = min(step, sectors - offset)
            send = {"command": "ata", "ata": {"aflags": aflags, "sector_count": n, "cmd_status": opcode, "lba": lba + offset,
                                              "data": data[offset * SECTOR_SIZE:(offset + n) * SECTOR_SIZE].hex()}}
            if "tag" in body and offset == 0:
                send["header"] = {"tag": body["tag"]}
            out.append(_Exchange(self._build(send), spec, async_write=bool(body.get("async"))))
        return out

    def _read_exchanges(self, body: Mapping) -> list[_Exchange]:
        lba, sectors = self._region(body["lba"], body.get("sectors", 1))
        extended = self.facts.lba48
        out = []
        step = self.facts.max_sectors
        for offset in range(0, sectors, step):
            n = min(step, sectors - offset)
            send = {"command": "ata", "ata": {"aflags": AFLAG_E if extended else 0, "sector_count": n,
                                              "cmd_status": ATA_READ_SECTORS_EXT if extended else ATA_READ_SECTORS, "lba": lba + offset}}
            if "tag" in body and offset == 0:
                send["header"] = {"tag": body["tag"]}
            spec = body.get("expect")
            if spec is None:
                spec = {"reply": {**OK_REPLY["reply"], "data": {"shadow": True}}}
            out.append(_Exchange(self._build(send), spec, verify_read=True))
        return out

    def _check_write_allowed(self, lba: int, sectors: int) -> None:
        engine = self.engine
        if not engine.options.allow_write:
            raise CaseStop(R.SKIPPED, "not_permitted: the case writes to the target (add --allow-write)", R.NOT_PERMITTED)
        start, count = engine.window()
        capacity = engine.known.capacity or 0
        lo, hi = max(lba, 0), min(lba + max(sectors, 1), capacity)
        if lo < hi and (lo < start or hi > start + count):
            message = f"excluded_by_window: writes LBA {lba}..{lba + max(sectors, 1) - 1}, outside --lba-window {start}:{count}"
            if self.sent_any:
                raise CaseStop(R.ERROR, message)
            raise CaseStop(R.SKIPPED, message, R.EXCLUDED_BY_WINDOW)

    def _prepare_writes(self, exchanges: list[_Exchange]) -> None:
        """Window check, and read every unknown sector a write may touch, so the
        shadow disk knows what "unchanged" means."""
        capacity = self.facts.capacity or 0
        for ex in exchanges:
            b = ex.built
            if not b.is_write:
                continue
            self._check_write_allowed(b.lba, b.sectors)
            lo, hi = max(b.lba, 0), min(b.lba + max(b.sectors, 1), capacity)
            unknown = self.engine.shadow.unknown_in(lo, max(0, hi - lo))
            for sector in unknown:
                if self.engine.shadow.known(sector):
                    continue
                self._learn(sector, min(self.facts.max_sectors, hi - sector))

    def _learn(self, lba: int, count: int) -> None:
        extended = self.facts.lba48
        arg = AtaArg(aflags=AFLAG_E if extended else 0, sector_count=count,
                     cmd_status=ATA_READ_SECTORS_EXT if extended else ATA_READ_SECTORS, lba=lba)
        reply = self.engine.session.request(Frame(self.engine._header(CMD_ATA), arg), 2)
        if reply is not None and not reply.header.error_flag and isinstance(reply.arg, AtaArg) \
                and not reply.arg.cmd_status & ATA_STATUS_FAILURE_MASK and len(reply.arg.data) >= count * SECTOR_SIZE:
            self.engine.shadow.learn(lba, reply.arg.data[:count * SECTOR_SIZE])
        else:
            self.result.notes.append(f"could not read LBA {lba}+{count} before writing it; its old content is unknown")

    def _run_exchanges(self, exchanges: list[_Exchange], window: Optional[int] = None, send_all_first: bool = False) -> list[Verdict]:
        wire, engine = self.wire, self.engine
        self._prepare_writes(exchanges)
        window = window or len(exchanges)
        pending = list(exchanges)
        active: list[_Exchange] = []

        def finished(ex: _Exchange) -> bool:
            got = len(wire.replies(ex.built.tag))
            return (got >= ex.copies and not waits_for_all(ex.spec)) or engine.clock() >= ex.deadline

        while pending or active:
            while pending and len(active) < window:
                ex = pending.pop(0)
                for touched in changes_state(ex.built.raw):
                    self.touched.add(touched)
                # nothing to check: do not wait (a later `expect` step may still collect replies)
                timeout = 0.0
                if ex.spec:
                    base = engine.silence_window() if accepts_silence(ex.spec) else engine.timeout()
                    timeout = max(base, silence_seconds(ex.spec), ex.spec.get("timeout", 0) or 0)
                for _ in range(ex.copies):
                    wire.send(ex.built.raw)
                self.sent_any = True
                ex.sent_at = engine.clock()
                ex.deadline = ex.sent_at + timeout
                ex.waited = timeout
                active.append(ex)
                self.last = ex
            if not active:
                break
            wire.wait(lambda: any(finished(a) for a in active), min(a.deadline for a in active))
            if wire.synchronous:
                wire.drain()  # every reply is queued already
            still = []
            for a in active:
                if finished(a) or engine.clock() >= a.deadline or wire.synchronous:
                    a.replies = wire.take(a.built.tag)
                else:
                    still.append(a)
            active = still
        # judge in send order, updating the shadow disk as a FIFO target would
        verdicts = []
        for ex in exchanges:
            views = [ReplyView(r) for r in ex.replies]
            request = self._request(ex.built)
            if ex.copies > 1:
                for i in range(ex.copies):
                    v = evaluate(ex.spec, views[i:i + 1], request, self.env, ex.waited)
                    if ex.copies > 1:
                        v.message = f"copy {i + 1}: {v.message}"
                    verdicts.append(v)
            else:
                verdicts.append(evaluate(ex.spec, views, request, self.env, ex.waited))
                if not views and accepts_silence(ex.spec):
                    self.silent.append((len(self.result.steps) - 1, ex, ex.waited))
            self._update_shadow(ex, views)
        return verdicts

    def _update_shadow(self, ex: _Exchange, views: list[ReplyView]) -> None:
        b, shadow = ex.built, self.engine.shadow
        first = views[0] if views else None
        succeeded = first is not None and not first.header.error_flag and first.frame is not None \
            and isinstance(first.frame.arg, AtaArg) and not first.frame.arg.cmd_status & ATA_STATUS_FAILURE_MASK
        if b.is_write:
            need = b.sectors * SECTOR_SIZE
            data = b.write_data or b""
            if succeeded and len(data) >= need:
                shadow.write(b.lba, data[:need])
            elif succeeded:
                shadow.forget(b.lba, b.sectors)  # accepted a short payload: content unknown
            elif first is None:
                if ex.async_write and len(data) >= need:
                    shadow.write(b.lba, data[:need])  # rule 33: readable afterwards unless an error came
                else:
                    shadow.forget(b.lba, b.sectors)
        elif b.is_read and succeeded and first is not None and not ex.verify_read:
            data = first.data
            if len(data) >= b.sectors * SECTOR_SIZE and b.lba + b.sectors <= (self.facts.capacity or 0):
                # learn only; a read that disagrees with the model is the job of checks
                shadow.learn(b.lba, data[:b.sectors * SECTOR_SIZE])


def _decisive_checks(verdict: Verdict) -> Optional[list]:
    """The failing field checks that say which rule a failed verdict breaks.
    Of several alternatives, the one reply that came is judged against the
    alternative it missed by the fewest fields (a served request whose only
    fault is its Ver breaks rule 7, not the rule of the refusal it might have
    been); a tie, or no reply at all, leaves it to the step or the case (None)."""
    if not verdict.alternatives:
        return verdict.failures()
    answered = [a for a in verdict.alternatives if not a.no_reply and not any(c.path == "reply" for c in a.failures())]
    if not answered:
        return None
    fewest = min(len(a.failures()) for a in answered)
    best = [a for a in answered if len(a.failures()) == fewest]
    return best[0].failures() if len(best) == 1 else None


def _shelf(frame: bytes) -> int:
    return int.from_bytes(frame[SHELF_BYTES], "big")


def _stable_number(text: str) -> int:
    """A number from text that is the same in every process (hash() is salted)."""
    import zlib

    return zlib.crc32(text.encode()) & 0xFFFF


def _equivalence(replies: list[bytes], copies: int) -> Verdict:
    from .expect import FieldCheck, show

    if len(replies) < 2:
        return Verdict(False, f"equivalent replies: expected {copies}, got {len(replies)}", no_reply=True)
    a, b = ReplyView(replies[0]), ReplyView(replies[1])
    checks = []
    for name in ("ver", "flags", "error", "shelf", "slot", "command", "src", "dst"):
        x, y = getattr(a.header, name), getattr(b.header, name)
        checks.append(FieldCheck(f"header.{name}", show(x, name), show(y, name), x == y))
    arg_a = a.raw[24:36] if a.header.command == CMD_ATA else a.raw[24:]
    arg_b = b.raw[24:36] if b.header.command == CMD_ATA else b.raw[24:]
    checks.append(FieldCheck("arg", arg_a.hex(), arg_b.hex(), arg_a == arg_b))
    if a.header.command == CMD_ATA:
        checks.append(FieldCheck("data", f"{len(a.data)} bytes", f"{len(b.data)} bytes{'' if a.data == b.data else ', different'}", a.data == b.data))
    bad = [c for c in checks if not c.ok]
    return Verdict(not bad, "replies equivalent" if not bad else "second reply differs: " + "; ".join(f"{c.path} {c.expected} vs {c.actual}" for c in bad), checks)
