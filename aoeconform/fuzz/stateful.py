"""Stateful sequences: hypothesis's rule-based state machine against a target.

One-request oracles cannot see a defect that needs a history: a reservation
forgotten after a config set, a write that shows only after a later read.
Here each hypothesis example is a sequence of steps, each step one or a few
requests built with the codec and sent back to back: writes and reads
inside the write window, reads outside it, a request sent twice (same tag,
new tag), two requests in flight before either is answered, asynchronous
writes, flushes, config reads and sets, Mac Mask and reservation edits, each
spoken from the host's MAC or from a second one. Every reply goes to the
model of the target (``model.TargetModel``), which judges it against what
the earlier acknowledged requests imply and then learns from it; the
machine's invariant is that the model found nothing.

When the invariant fails, hypothesis shrinks the sequence (fewer steps,
simpler arguments) and reruns the smallest one; that run's frames and
replies become an ordinary ``Finding`` (engine "stateful", with the grouping
of its frames into steps and the steps' descriptions), saved and counted in
``--out`` like the random fuzzer's, and replayed by ``replay_stateful``.
A defect already found is counted, not failed on again, so a run goes on to
find the next one.

Each example starts from a known target: in memory a fresh reference target
on a fresh disk, over the wire the Mac Mask list emptied, the reservation
released and the config string put back (checked by reading them), and the
write window written with zeros, so that an example replays the same way
however many ran before it. Same seed, same target, same options: the same
examples, so the same findings.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Protocol, Sequence, TextIO, Tuple

from hypothesis import HealthCheck, Phase, Verbosity
from hypothesis import seed as hypothesis_seed
from hypothesis import settings as Settings
from hypothesis import strategies as st
from hypothesis import reject
from hypothesis.errors import Flaky, Unsatisfiable
from hypothesis.stateful import RuleBasedStateMachine, get_state_machine_test, invariant, rule

from aoeconform.errors import TargetUnreachable, UsageError
from aoeconform.session import Session
from aoeconform.session.facts import TargetFacts
from aoeconform.session.state import TargetState
from aoeconform.transport.base import Transport
from aoeconform.wire import AtaArg, ConfigArg, DecodeError, Directive, Frame, Header, MacMaskArg, ReserveArg
from aoeconform.wire.constants import (
    AFLAG_A,
    AFLAG_E,
    AFLAG_W,
    ATA_FLUSH_CACHE,
    ATA_FLUSH_CACHE_EXT,
    ATA_IDENTIFY_DEVICE,
    ATA_READ_SECTORS,
    ATA_READ_SECTORS_EXT,
    ATA_WRITE_SECTORS,
    ATA_WRITE_SECTORS_EXT,
    CCMD_FORCE_SET,
    CCMD_READ,
    CCMD_SET,
    CMD_ATA,
    CMD_MAC_MASK,
    CMD_QUERY_CONFIG,
    CMD_RESERVE_RELEASE,
    DCMD_ADD,
    DCMD_DELETE,
    ETH_P_AOE,
    LBA_MODE_BITS,
    MCMD_EDIT,
    MCMD_READ,
    RCMD_FORCE_SET,
    RCMD_READ,
    RCMD_SET,
    SECTOR_SIZE,
)

from .context import WritePolicy
from .engine import FuzzResult
from .findings import Finding, mark_known, store
from .oracle import Anomaly

ENGINE = "stateful"
#: steps in one example at most (hypothesis's stateful_step_count)
DEFAULT_STEPS = 12
#: examples per hypothesis run; a run that finds something ends early, the next goes on
BATCH = 25
#: in memory: the disk and the write window of each example's fresh target
MEMORY_IMAGE_BYTES = 1 << 20
MEMORY_WINDOW = (64, 8)
#: over the wire, how long a missing reply is waited for before the model may call the silence wrong
PATIENCE = 1.0
#: tags of one example count up from here (the random fuzzer's tags are random)
TAG_BASE = 0x53000000
RESET_TAG_BASE = 0x53FF0000
#: config strings the sets choose from: empty, short, a prefix of another, longer
CONFIG_STRINGS = (b"", b"a", b"ab", b"aoeconform stateful", b"b\x00z")
WHO = ("host", "second")


class Judge(Protocol):
    """What the machine needs of the model (``model.TargetModel``)."""

    def step(self, request: bytes, replies: Sequence[bytes], *, answered_in_time: bool = True) -> list: ...


# -- talking to the target --------------------------------------------------------


@dataclass
class Setup:
    """What one stateful run talks to, and how each example gets a known target."""

    transport: Transport
    info: TargetFacts
    second_mac: bytes
    #: a second interface for the second MAC; None: spoofed on ``transport``
    second: Optional[Transport] = None
    restart: Optional[Callable[[], None]] = None
    #: liveness probe, restart, and taking and putting back the config, Mac Mask and reservation
    session: Optional[Session] = None
    #: in memory: a fresh setup (target, disk and session) for each example
    fresh: Optional[Callable[[], "Setup"]] = None
    #: how long a request may take to be answered; in memory nothing arrives late
    deadline: float = 0.25
    #: after the last awaited reply, how long to wait for duplicates
    grace: float = 0.002
    close: Callable[[], None] = lambda: None

    def __post_init__(self) -> None:
        if self.session is None:
            self.session = Session(self.transport, self.info, self.restart, second_mac=self.second_mac,
                                   new_tag=_counter(RESET_TAG_BASE))

    @property
    def macs(self) -> Tuple[bytes, bytes]:
        return self.info.host_mac, self.second_mac


def _counter(base: int) -> Callable[[], int]:
    state = [base]

    def next_tag() -> int:
        state[0] += 1
        return state[0]

    return next_tag


class Conversation:
    """Send a step's frames back to back and sort the replies by request.

    A reply answers the request whose source MAC it is addressed to and whose
    tag it carries (rule 20: by tag, never by order); replies to two requests
    with the same source and tag (a duplicate) are handed out in order."""

    def __init__(self, setup: Setup) -> None:
        self.setup = setup
        self.replies = 0
        self.strays: List[bytes] = []

    def _port(self, frame: bytes) -> Transport:
        second = self.setup.second
        return second if second is not None and Header.decode(frame).src == self.setup.second_mac else self.setup.transport

    def _reply_key(self, frame: bytes) -> Optional[Tuple[bytes, int]]:
        """(the requester it goes to, its tag) for a reply from the target, else None."""
        try:
            header = Header.decode(frame)
        except DecodeError:
            return None
        if header.response and header.src == self.setup.info.mac and header.ethertype == ETH_P_AOE:
            return header.dst, header.tag
        return None

    def drain(self) -> None:
        for port in self._ports():
            while port.recv(0) is not None:
                pass

    def _ports(self) -> List[Transport]:
        return [self.setup.transport] + ([self.setup.second] if self.setup.second is not None else [])

    @property
    def synchronous(self) -> bool:
        """In memory: every reply is there when ``send`` returns."""
        return bool(getattr(self.setup.transport, "synchronous", False))

    def exchange(self, frames: Sequence[bytes]) -> Tuple[List[List[bytes]], bool]:
        """(replies per frame, whether the whole deadline was waited out)."""
        for frame in frames:
            self._port(frame).send(frame)
        replies: List[List[bytes]] = [[] for _ in frames]
        return replies, self.collect(frames, replies, self.setup.deadline)

    def collect(self, frames: Sequence[bytes], replies: List[List[bytes]], wait: float) -> bool:
        """Add to ``replies`` what arrives for ``frames`` within ``wait`` seconds (less
        once every frame has one); True if the whole wait passed."""
        keys: Dict[Tuple[bytes, int], List[int]] = {}
        for i, frame in enumerate(frames):
            header = Header.decode(frame)
            keys.setdefault((header.src, header.tag), []).append(i)
        ports = self._ports()
        deadline = time.monotonic() + wait
        settled: Optional[float] = None
        waited_out = True
        while True:
            now = time.monotonic()
            end = deadline if settled is None else min(deadline, settled)
            if now >= end and not getattr(ports[0], "synchronous", False):
                waited_out = settled is None
                break
            got = None
            for port in ports:
                got = port.recv(0 if len(ports) > 1 else max(0.0, end - now))
                if got is not None:
                    break
            if got is None:
                if getattr(ports[0], "synchronous", False):
                    break  # in memory: nothing more can come
                if len(ports) > 1:
                    time.sleep(0.0005)
                continue
            key = self._reply_key(got)
            if key is None:
                continue
            waiting = keys.get(key)
            if waiting is None:
                self.strays.append(bytes(got))
                continue
            self.replies += 1
            # the first of these requests still unanswered gets it; an extra reply goes to the last
            target = next((i for i in waiting if not replies[i]), waiting[-1])
            replies[target].append(bytes(got))
            if settled is None and all(replies):
                settled = time.monotonic() + self.setup.grace
        return waited_out


# -- building requests with the codec -----------------------------------------------


class Builder:
    def __init__(self, setup: Setup) -> None:
        self.info = setup.info
        self.macs = dict(zip(WHO, setup.macs))
        self.tag = TAG_BASE

    def next_tag(self) -> int:
        self.tag += 1
        return self.tag

    def frame(self, who: str, command: int, arg, tag: Optional[int] = None) -> bytes:
        info = self.info
        header = Header(dst=info.mac, src=self.macs[who], shelf=info.shelf, slot=info.slot, command=command,
                        tag=self.next_tag() if tag is None else tag)
        return Frame(header, arg).encode(pad=True)

    def ata(self, who: str, opcode: int, lba: int, count: int, *, extended: bool, data: bytes = b"", asynchronous: bool = False,
            tag: Optional[int] = None) -> bytes:
        aflags = (AFLAG_E if extended else 0) | (AFLAG_W if data else 0) | (AFLAG_A if asynchronous else 0)
        if not extended and opcode in (ATA_READ_SECTORS, ATA_WRITE_SECTORS):
            lba |= LBA_MODE_BITS << 24  # as Linux sends them: the device bits are not address (rule 26)
        return self.frame(who, CMD_ATA, AtaArg(aflags=aflags, sector_count=count, cmd_status=opcode, lba=lba, data=data), tag)

    def write(self, who: str, lba: int, count: int, fill: int, *, extended: bool, asynchronous: bool = False) -> bytes:
        return self.ata(who, ATA_WRITE_SECTORS_EXT if extended else ATA_WRITE_SECTORS, lba, count, extended=extended,
                        data=sector_data(fill, count), asynchronous=asynchronous)

    def read(self, who: str, lba: int, count: int, *, extended: bool) -> bytes:
        return self.ata(who, ATA_READ_SECTORS_EXT if extended else ATA_READ_SECTORS, lba, count, extended=extended)

    def config(self, who: str, ccmd: int, string: bytes = b"") -> bytes:
        return self.frame(who, CMD_QUERY_CONFIG, ConfigArg(ccmd=ccmd, config=string))

    def mask(self, who: str, mcmd: int, directives: Sequence[Tuple[int, str]] = ()) -> bytes:
        return self.frame(who, CMD_MAC_MASK, MacMaskArg(mcmd=mcmd, directives=[Directive(dcmd, self.macs[m]) for dcmd, m in directives]))

    def reserve(self, who: str, rcmd: int, macs: Sequence[str] = ()) -> bytes:
        return self.frame(who, CMD_RESERVE_RELEASE, ReserveArg(rcmd=rcmd, macs=[self.macs[m] for m in macs]))


def sector_data(fill: int, count: int) -> bytes:
    """``count`` sectors, each one byte value (fill, fill+1, ...; never 0, the fresh disk's)."""
    return b"".join(bytes((((fill + k - 1) % 255) + 1,)) * SECTOR_SIZE for k in range(count))


def retag(frame: bytes, tag: int) -> bytes:
    parsed = Frame.decode(frame)
    parsed.header.tag = tag
    return parsed.encode(pad=True)


# -- one example's record, and the failure that carries it ---------------------------


@dataclass
class Step:
    label: str
    frames: List[bytes]
    replies: List[List[bytes]] = field(default_factory=list)


class ModelDisagrees(AssertionError):
    """The invariant: the model found an anomaly in a reply (or a silence)."""

    def __init__(self, anomaly, steps: List[Step]) -> None:
        super().__init__(f"{anomaly.kind}: {anomaly.detail}")
        self.anomaly = anomaly
        self.steps = steps


def _rule_of(anomaly) -> int:
    try:
        return int(anomaly.rule)
    except (AttributeError, KeyError, TypeError, ValueError):
        return 0


# -- the run ------------------------------------------------------------------------------


class StatefulFuzzer:
    """``StatefulFuzzer(setup, policy, seed=1).run(examples=200)``: a FuzzResult whose findings are shrunk sequences."""

    def __init__(
        self,
        setup: Setup,
        policy: WritePolicy,
        *,
        seed: int = 0,
        steps: int = DEFAULT_STEPS,
        out_dir: Optional[str] = None,
        log: Optional[TextIO] = None,
        target_extra: Optional[dict] = None,
        model_factory: Optional[Callable[..., Judge]] = None,
        max_findings: int = 20,
        expectations: Optional[dict] = None,
    ) -> None:
        self.setup = setup
        self.policy = policy
        self.seed = seed
        self.steps = max(1, steps)
        self.out_dir = out_dir
        self.log = log
        self.target_extra = dict(target_extra or {})
        self.model_factory = model_factory or default_model_factory
        self.max_findings = max_findings
        #: the target's expectations file (``fuzz/<signature glob>: reason``): its known deviations are marked so
        self.expectations = dict(expectations or {})
        self.result = FuzzResult(seed, engine=ENGINE)
        self.examples = 0
        self.steps_run = 0
        self.by_signature: Dict[tuple, Finding] = {}
        self.original_config = b""
        #: over the wire: what each example starts from (the target's state when the run began)
        self.start_state: Optional[TargetState] = None
        self._first_failure: Optional[List[Step]] = None
        self._started = time.monotonic()
        #: why the run cannot go on (the target stopped answering, or cannot be put back); raised by ``run``'s caller
        self.stop: Optional[Exception] = None

    def _say(self, text: str) -> None:
        if self.log is not None:
            print(f"aoeconform fuzz: {text}", file=self.log, flush=True)

    def close(self) -> None:
        """Close the setup (in memory: the last example's target); the fuzzer owns it."""
        self.setup.close()

    # -- examples ----------------------------------------------------------------------

    def new_example(self, in_hypothesis: bool = True) -> "Example":
        """A known target and a fresh model, for one hypothesis example (or a replay)."""
        self.examples += 1
        setup = self.setup
        if setup.fresh is not None:
            setup.close()
            setup = self.setup = setup.fresh()
        if self.stop is not None:
            if not in_hypothesis:
                raise self.stop
            reject()  # the target is gone: the rest of the batch is skipped, not failed
        if setup.fresh is None:
            problems, hint = self._put_back(), ""
            if problems:
                session = self.setup.session
                assert session is not None
                if not session.can_restart:
                    hint = "restart it (or give --restart-cmd) and fuzz again"
                elif not self._restart():
                    hint = f"the restart did not help: {session.restart_error}"
                else:
                    problems = self._put_back()
                    hint = "not even after a restart"
            if problems:
                self.stop = UsageError(f"could not put the target back between examples ({'; '.join(problems)}); {hint}")
                if not in_hypothesis:
                    raise self.stop
                reject()
        return Example(self, setup)

    def _put_back(self) -> List[str]:
        """Over the wire: the state the run started from (config string, Mac Mask
        list, reservation: through the session), the write window zeroed;
        the problems, if any."""
        session = self.setup.session
        assert session is not None and self.start_state is not None
        session.drain(0.0, discard=True)
        problems = session.restore(self.start_state)
        if not problems and self.policy.allow_write:
            build = Builder(self.setup)
            build.tag = RESET_TAG_BASE + 0x4000
            conversation = Conversation(self.setup)
            most = max(1, self.setup.info.max_sectors)
            spans = [(lba, min(most, self.policy.end - lba)) for lba in range(self.policy.start, self.policy.end, most)]
            for lba, count in spans:
                (reply,), _ = conversation.exchange([build.ata("host", ATA_WRITE_SECTORS_EXT, lba, count, extended=True,
                                                               data=bytes(count * SECTOR_SIZE))])
                if not reply:
                    return problems + [f"no answer to the write that zeroes sector {lba} of the window"]
            # read back, twice at most: what the last example left must not reach the next one
            # (a target that shows a write late shows it by the second read)
            for lba, count in spans:
                for _ in range(2):
                    (reply,), _ = conversation.exchange([build.read("host", lba, count, extended=True)])
                    if reply and _data(reply[0]) == bytes(count * SECTOR_SIZE):
                        break
                else:
                    problems.append(f"sectors {lba}-{lba + count - 1} of the window do not read back as the zeros just written")
        return problems

    def _restart(self) -> bool:
        session = self.setup.session
        assert session is not None
        if not session.can_restart:
            return False
        self.result.restarts += 1
        return session.restart()

    def known(self, anomaly) -> bool:
        """Found already in this run: counted, and the example goes on."""
        finding = self.by_signature.get((anomaly.kind, _rule_of(anomaly)))
        if finding is None:
            return False
        finding.count += 1
        return True

    # -- the loop ------------------------------------------------------------------------

    def run(self, examples: Optional[int] = None, seconds: Optional[float] = None) -> FuzzResult:
        """Run hypothesis in batches until ``examples`` examples (generated,
        not counting shrinking) or ``seconds`` have passed; with neither, 200 examples."""
        if examples is None and seconds is None:
            examples = 200
        result = self.result
        started = self._started = time.monotonic()
        self._baseline()
        self._say(f"stateful engine, seed {self.seed} (rerun with --seed {self.seed}); target {self.setup.info.address} "
                  f"at {self.setup.info.mac.hex(':')}, second MAC {self.setup.second_mac.hex(':')}, "
                  f"up to {self.steps} steps per example"
                  + (f", writes in [{self.policy.start}, {self.policy.end})" if self.policy.allow_write else ", no writes"))
        end = None if seconds is None else started + seconds
        generated = 0
        batch = 0
        try:
            while True:
                if examples is not None and generated >= examples:
                    break
                if end is not None and time.monotonic() >= end:
                    break
                if self.stop is not None:
                    result.stopped_early = str(self.stop)
                    break
                if len(result.findings) >= self.max_findings:
                    result.stopped_early = f"reached {self.max_findings} findings"
                    break
                size = BATCH if examples is None else min(BATCH, examples - generated)
                before = self.examples
                self._batch(batch, size)
                generated += size
                batch += 1
                if self.examples == before:
                    break  # hypothesis ran nothing: nothing more to learn
        finally:
            result.seconds = time.monotonic() - started
            result.cases = generated
            result.steps = self.steps_run
            result.next_index = generated
            if self.setup.fresh is None and self.stop is None:
                self._put_back()
        return result

    def _settings(self, size: int) -> Settings:
        return Settings(
            max_examples=size, stateful_step_count=self.steps, deadline=None, database=None,
            derandomize=False, suppress_health_check=list(HealthCheck), report_multiple_bugs=False,
            phases=[Phase.generate, Phase.shrink], verbosity=Verbosity.quiet, print_blob=False,
        )

    def _batch(self, index: int, size: int) -> None:
        self._first_failure = None
        test = get_state_machine_test(machine_class(self), settings=self._settings(size))
        # the user's seed and the batch number decide every example of the batch
        hypothesis_seed((self.seed * 1_000_003 + index) & ((1 << 64) - 1))(test)
        try:
            test()
        except Unsatisfiable:
            pass  # every example rejected: the run stops (self.stop says why)
        except ModelDisagrees as failure:
            self._record(failure.anomaly, failure.steps, reproduced=True)
        except Flaky as flaky:
            inner = _first_disagreement(flaky)
            if inner is not None and self._first_failure is not None:
                self._record(inner.anomaly, self._first_failure, reproduced=False)

    def _remember_failure(self, steps: List[Step]) -> None:
        if self._first_failure is None:
            self._first_failure = list(steps)

    def _record(self, anomaly, steps: List[Step], *, reproduced: bool) -> None:
        first = self._first_failure or steps
        flat = [f for s in steps for f in s.frames]
        finding = Finding(
            kind=anomaly.kind,
            detail=anomaly.detail,
            seed=self.seed,
            frames=[f for s in first for f in s.frames],
            replies=[r for s in first for rs in s.replies for r in rs],
            case_index=None,
            shrunk=flat,
            shrunk_replies=[r for s in steps for rs in s.replies for r in rs],
            reproduced=reproduced,
            note=(f"shrunk by hypothesis to {len(steps)} step(s), {len(flat)} frame(s)" if reproduced
                  else "the failure did not repeat when hypothesis reran it (timing, or state outside the sequence)"),
            target=self._target_dict(),
            engine=ENGINE,
            steps=[len(s.frames) for s in steps],
            program=[s.label for s in steps],
            rule_number=_rule_of(anomaly) or None,
            trigger_field="sequence",
        )
        finding.found_after = time.monotonic() - self._started  # shrinking included
        mark_known([finding], self.expectations)
        self.by_signature[(anomaly.kind, _rule_of(anomaly))] = finding
        self.result.findings.append(finding)
        self._say(f"finding: {finding.summary()}")
        for line in finding.program:
            self._say(f"    {line}")
        if self.out_dir:
            store(finding, self.out_dir)

    def _target_dict(self) -> dict:
        info = self.setup.info
        return {
            "iface": getattr(self.setup.transport, "name", ""),
            "mac": info.mac.hex(":"), "host_mac": info.host_mac.hex(":"), "second_mac": self.setup.second_mac.hex(":"),
            "shelf": info.shelf, "slot": info.slot, "mtu": info.mtu,
            "window": [self.policy.start, self.policy.count] if self.policy.allow_write else None,
            "config": self.original_config.hex(),
            **self.target_extra,
        }

    def _baseline(self) -> None:
        """The target answers; over the wire its state is what each example starts from."""
        session = self.setup.session
        assert session is not None
        session.drain(0.0, discard=True)
        if not session.probe():
            raise TargetUnreachable(f"target {self.setup.info.address} ({self.setup.info.mac.hex(':')}) did not answer a "
                                    f"Query Config read; check that it is running and reachable before fuzzing")
        if self.setup.fresh is None:
            # a part the target does not say (Mac Mask or Reserve/Release refused) is not put back
            self.start_state = session.snapshot()
            self.original_config = self.start_state.config or b""


def _data(reply: bytes) -> bytes:
    try:
        arg = Frame.decode(reply).arg
    except DecodeError:
        return b""
    return arg.data if isinstance(arg, AtaArg) else b""


def _first_disagreement(error: BaseException) -> Optional[ModelDisagrees]:
    if isinstance(error, ModelDisagrees):
        return error
    for inner in getattr(error, "exceptions", ()):
        found = _first_disagreement(inner)
        if found is not None:
            return found
    return None


def default_model_factory(info: TargetFacts, policy: WritePolicy, *, config: bytes, host_macs: Sequence[bytes]) -> Judge:
    """``model.TargetModel``, looked up when first needed: the model is its own module
    (and landed after this engine), so a build without it says so instead of failing to import."""
    try:
        model = importlib.import_module("aoeconform.fuzz.model")
    except ModuleNotFoundError as exc:
        if exc.name != "aoeconform.fuzz.model":
            raise
        raise UsageError("--engine stateful needs the target model (aoeconform.fuzz.model), which this build does not have") from None
    factory: Callable[..., Judge] = model.TargetModel
    return factory(info, policy, config=config, host_macs=tuple(host_macs))


class Example:
    """One hypothesis example: the target, the model, the steps so far."""

    def __init__(self, fuzzer: StatefulFuzzer, setup: Setup) -> None:
        self.fuzzer = fuzzer
        self.setup = setup
        self.conversation = Conversation(setup)
        self.build = Builder(setup)
        self.model = fuzzer.model_factory(setup.info, fuzzer.policy, config=fuzzer.original_config, host_macs=setup.macs)
        self.steps: List[Step] = []
        self.anomaly = None
        #: every kind the model reported in this example (replay looks for the finding's)
        self.kinds: set = set()

    def send(self, label: str, frames: List[bytes]) -> None:
        step = Step(label, frames)
        self.steps.append(step)
        self.fuzzer.steps_run += 1
        replies, _ = self.conversation.exchange(frames)
        step.replies = replies
        if not all(replies) and not self.conversation.synchronous:
            # a reply later than the deadline is not silence: before the model may call
            # a silence wrong, the missing replies get a patient wait
            if self._judge(frames, replies, copy.deepcopy(self.model))[0]:
                self.conversation.collect(frames, replies, PATIENCE)
        self.fuzzer.result.replies += sum(len(r) for r in replies)
        found, self.model = self._judge(frames, replies, self.model)
        if not any(replies) and not self._alive():
            found.append(Anomaly("unresponsive", f"no answer to a Query Config read from either MAC after: {label}"))
        for anomaly in found:
            self.kinds.add(anomaly.kind)
            if self.anomaly is None and not self.fuzzer.known(anomaly):
                self.anomaly = anomaly

    def _alive(self) -> bool:
        """A step went unanswered: is the target still there? (The session's probe
        goes out from both MACs: the Mac Mask list may silence one of them.)"""
        session = self.setup.session
        assert session is not None
        # patient, unlike a step: a slow answer here must not be called a dead target
        return session.probe(attempts=3, timeout=max(0.25, 5 * self.setup.deadline))

    @staticmethod
    def _judge(frames: List[bytes], replies: List[List[bytes]], model: Judge) -> Tuple[list, Judge]:
        """The model's verdict on one step, and the model that goes on (``model``
        itself or a copy). Requests in flight together may be served in either
        order (rule 20: a concurrent target may), so a step of two is wrong only
        if neither order explains the replies; the model goes on from the order
        that did, or from the order sent."""
        order = list(range(len(frames)))
        orders = [order] + ([order[::-1]] if len(frames) == 2 and frames[0] != frames[1] else [])
        first: Optional[Tuple[list, Judge]] = None
        for k, chosen in enumerate(orders):
            trial = model if k == len(orders) - 1 else copy.deepcopy(model)
            found: list = []
            for i in chosen:
                found += trial.step(frames[i], replies[i], answered_in_time=True)
            if not found:
                return [], trial
            if first is None:
                first = (found, trial)
        assert first is not None
        return first

    def check(self) -> None:
        if self.anomaly is not None:
            self.fuzzer._remember_failure(self.steps)
            raise ModelDisagrees(self.anomaly, list(self.steps))


def machine_class(fuzzer: StatefulFuzzer) -> type:
    """The rule-based state machine for this target and write window."""
    info, policy = fuzzer.setup.info, fuzzer.policy
    most = max(1, min(info.max_sectors, 0xFF))
    capacity = info.capacity or 0
    who = st.sampled_from(WHO)
    extended = st.booleans()
    fill = st.integers(1, 255)
    if policy.allow_write:
        inside_first, inside_end = policy.start, policy.end
    else:
        inside_first, inside_end = (capacity // 2, capacity // 2 + 8) if capacity > 16 else (0, max(1, capacity))
    inside = st.integers(inside_first, inside_end - 1)
    outside_lbas = sorted({lba for lba in (0, 1, inside_first - 1, inside_end, inside_end + 1, capacity - 1)
                           if 0 <= lba < capacity and not inside_first <= lba < inside_end}) if capacity else []
    writable = policy.allow_write

    def count_for(lba: int, end: int, wanted: int) -> int:
        return max(1, min(wanted, most, end - lba))

    class AoEStateMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.example = fuzzer.new_example()

        def _send(self, label: str, *frames: bytes) -> None:
            self.example.send(label, list(frames))

        def _io(self, kind: str, speaker: str, lba: int, count: int, ext: bool, fill_value: int = 0) -> bytes:
            build = self.example.build
            if kind == "read":
                return build.read(speaker, lba, count_for(lba, inside_end, count), extended=ext)
            return build.write(speaker, lba, count_for(lba, inside_end, count), fill_value, extended=ext,
                               asynchronous=(kind == "async-write"))

        @rule(speaker=who, lba=inside, count=st.integers(1, most), ext=extended)
        def read(self, speaker, lba, count, ext):
            count = count_for(lba, inside_end, count)
            self._send(f"read {count} at {lba} ({'48' if ext else '28'}-bit) from {speaker}", self._io("read", speaker, lba, count, ext))

        if outside_lbas:
            @rule(speaker=who, lba=st.sampled_from(outside_lbas), ext=extended)
            def read_outside(self, speaker, lba, ext):
                self._send(f"read 1 at {lba} outside the window ({'48' if ext else '28'}-bit) from {speaker}",
                           self.example.build.read(speaker, lba, 1, extended=ext))

        if writable:
            @rule(speaker=who, lba=inside, count=st.integers(1, most), value=fill, ext=extended)
            def write(self, speaker, lba, count, value, ext):
                count = count_for(lba, inside_end, count)
                self._send(f"write {count} at {lba} fill {value} ({'48' if ext else '28'}-bit) from {speaker}",
                           self._io("write", speaker, lba, count, ext, value))

            @rule(speaker=who, lba=inside, count=st.integers(1, most), value=fill)
            def async_write(self, speaker, lba, count, value):
                count = count_for(lba, inside_end, count)
                self._send(f"asynchronous write {count} at {lba} fill {value} from {speaker}",
                           self._io("async-write", speaker, lba, count, True, value))

            @rule(speaker=who, ext=extended)
            def flush(self, speaker, ext):
                self._send(f"flush ({'EXT' if ext else '28-bit'}) from {speaker}",
                           self.example.build.ata(speaker, ATA_FLUSH_CACHE_EXT if ext else ATA_FLUSH_CACHE, 0, 0, extended=ext))

        kinds = ["read", "write"] if writable else ["read"]

        @rule(speaker=who, kind=st.sampled_from(kinds), lba=inside, count=st.integers(1, most), value=fill, same_tag=st.booleans())
        def duplicate(self, speaker, kind, lba, count, value, same_tag):
            first = self._io(kind, speaker, lba, count, True, value)
            second = first if same_tag else retag(first, self.example.build.next_tag())
            self._send(f"{kind} at {lba} twice back to back ({'same' if same_tag else 'new'} tag) from {speaker}", first, second)

        @rule(first_speaker=who, first_kind=st.sampled_from(kinds), first_lba=inside, first_value=fill,
              second_speaker=who, second_kind=st.sampled_from(kinds), second_lba=inside, second_value=fill)
        def reorder(self, first_speaker, first_kind, first_lba, first_value, second_speaker, second_kind, second_lba, second_value):
            a = self._io(first_kind, first_speaker, first_lba, 1, True, first_value)
            b = self._io(second_kind, second_speaker, second_lba, 1, True, second_value)
            self._send(f"{first_kind} at {first_lba} from {first_speaker} and {second_kind} at {second_lba} "
                       f"from {second_speaker}, both in flight", a, b)

        @rule(speaker=who)
        def identify(self, speaker):
            self._send(f"IDENTIFY from {speaker}", self.example.build.ata(speaker, ATA_IDENTIFY_DEVICE, 0, 1, extended=False))

        @rule(speaker=who)
        def config_read(self, speaker):
            self._send(f"config read from {speaker}", self.example.build.config(speaker, CCMD_READ))

        @rule(speaker=who, force=st.booleans(), string=st.sampled_from(CONFIG_STRINGS))
        def config_set(self, speaker, force, string):
            ccmd = CCMD_FORCE_SET if force else CCMD_SET
            self._send(f"config {'force ' if force else ''}set {string!r} from {speaker}", self.example.build.config(speaker, ccmd, string))

        @rule(speaker=who, directives=st.lists(st.tuples(st.sampled_from((DCMD_ADD, DCMD_DELETE)), who), min_size=0, max_size=2))
        def mask_edit(self, speaker, directives):
            build = self.example.build
            if not directives:
                self._send(f"Mac Mask read from {speaker}", build.mask(speaker, MCMD_READ))
                return
            words = ", ".join(f"{'add' if d == DCMD_ADD else 'delete'} {m}" for d, m in directives)
            self._send(f"Mac Mask edit ({words}) from {speaker}", build.mask(speaker, MCMD_EDIT, directives))

        @rule(speaker=who, rcmd=st.sampled_from((RCMD_READ, RCMD_SET, RCMD_FORCE_SET)), macs=st.lists(who, max_size=2, unique=True))
        def reserve_edit(self, speaker, rcmd, macs):
            name = {RCMD_READ: "read", RCMD_SET: "set", RCMD_FORCE_SET: "force set"}[rcmd]
            listed = macs if rcmd != RCMD_READ else []
            self._send(f"reservation {name} [{', '.join(listed)}] from {speaker}", self.example.build.reserve(speaker, rcmd, listed))

        @invariant()
        def model_agrees(self):
            self.example.check()

    AoEStateMachine.__name__ = "AoEStateMachine"
    return AoEStateMachine


# -- setups ------------------------------------------------------------------------------------


def memory_setup(quirks: Sequence[str] = (), *, image_bytes: int = MEMORY_IMAGE_BYTES) -> Setup:
    """The reference target in this process, answering inside send (no waiting);
    each example gets a fresh one on a fresh disk."""
    from aoeconform.scenario import endpoint as ep

    def fresh() -> Setup:
        endpoint = ep.bundled_loopback(tuple(quirks), image_bytes=image_bytes)
        transport = endpoint.transport
        capacity = image_bytes // SECTOR_SIZE
        from aoeconform.wire.constants import sectors_per_frame

        info = TargetFacts(mac=endpoint.mac, shelf=endpoint.shelf, slot=endpoint.slot, host_mac=transport.mac, mtu=transport.mtu,
                          bufcnt=16, sector_count=min(sectors_per_frame(transport.mtu), 0xFF), capacity=capacity,
                          second_mac=endpoint.second_mac)
        while transport.recv(0) is not None:
            pass  # the start-up advertisement
        return Setup(transport, info, endpoint.second_mac, restart=endpoint.restart, fresh=fresh, deadline=0.0, grace=0.0,
                     close=endpoint.close)

    return fresh()


def memory_policy() -> WritePolicy:
    start, count = MEMORY_WINDOW
    return WritePolicy(True, start, count)


def wire_setup(transport: Transport, info: TargetFacts, *, second: Optional[Transport] = None,
               restart: Optional[Callable[[], None]] = None) -> Setup:
    """A target over the wire: the second MAC is ``second``'s, or a spoofed one on
    ``transport``. The setup owns both transports (``close`` closes them)."""
    from .context import second_mac as spoofed

    second_mac = second.mac if second is not None else (info.second_mac or spoofed(transport.mac))
    info = dataclasses.replace(info, second_mac=second_mac)
    session = Session(transport, info, restart, second_mac=second_mac, new_tag=_counter(RESET_TAG_BASE))
    rtt = _round_trip(session)
    # a reply later than this counts as none (the random fuzzer's floor: a loaded machine's target may be slow)
    deadline = min(1.0, max(0.05, 50 * rtt))
    def close() -> None:
        transport.close()
        if second is not None:
            second.close()

    return Setup(transport, info, second_mac, second=second, restart=restart, deadline=deadline,
                 grace=max(0.0002, min(rtt, 0.0005)), close=close, session=session)


def _round_trip(session: Session) -> float:
    """The best of a few liveness probes: what the deadlines are scaled from."""
    best = 1.0
    for _ in range(5):
        began = time.monotonic()
        if session.probe(attempts=1, timeout=1.0):
            best = min(best, time.monotonic() - began)
    return best


# -- replay ------------------------------------------------------------------------------------------


def readdress(frame: bytes, old: dict, setup: Setup) -> bytes:
    """The frame sent to this setup's target from its MACs (a finding may come from another lab)."""
    header = Header.decode(frame)
    info = setup.info
    macs = {bytes.fromhex(old.get("host_mac", "").replace(":", "")): info.host_mac,
            bytes.fromhex(old.get("second_mac", "").replace(":", "")): setup.second_mac}
    header.dst = info.mac
    header.src = macs.get(header.src, header.src)
    header.shelf, header.slot = info.shelf, info.slot
    raw = header.encode() + bytes(frame[len(header.encode()):])
    try:  # MACs inside Mac Mask directives and reservation lists name the MACs too
        parsed = Frame.decode(raw)
    except DecodeError:
        return raw
    arg = parsed.arg
    if isinstance(arg, MacMaskArg):
        for directive in arg.directives:
            directive.mac = macs.get(directive.mac, directive.mac)
    elif isinstance(arg, ReserveArg):
        arg.macs = [macs.get(m, m) for m in arg.macs]
    else:
        return raw
    return parsed.encode(pad=True)


def replay_stateful(setup: Setup, finding: Finding, *, model_factory=None) -> bool:
    """Send a stateful finding's (shrunk) steps again from a known target; True
    if the model finds its kind again. Closes ``setup`` when done."""
    frames = finding.reproducer
    sizes = finding.steps or [1] * len(frames)
    window = finding.target.get("window")
    policy = WritePolicy(True, window[0], window[1]) if window else WritePolicy()
    fuzzer = StatefulFuzzer(setup, policy, seed=finding.seed, model_factory=model_factory)
    try:
        fuzzer._baseline()  # over the wire: the target's own state is where the steps start
        if setup.fresh is not None:
            fuzzer.original_config = bytes.fromhex(finding.target.get("config") or "")
        example = fuzzer.new_example(in_hypothesis=False)
        position = 0
        for size, label in zip(sizes, finding.program or [""] * len(sizes)):
            group = [readdress(f, finding.target, example.setup) for f in frames[position:position + size]]
            position += size
            example.send(label, group)
            if finding.kind in example.kinds:
                return True
        return False
    finally:
        if setup.fresh is None:
            fuzzer._put_back()
        fuzzer.close()
