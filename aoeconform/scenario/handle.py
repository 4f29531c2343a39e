"""A target under test as hand-written code sees it: send frames built with
the codec, judge the replies in the suites' own expectation language.

``TargetHandle`` wraps a ``TargetEndpoint`` and the scenario ``Engine`` that
probed it (so it knows the target's MAC, shelf.slot, capacity and timeouts
the way a suite run does). The pytest plugin's ``aoe_target`` and
``aoe_reference_target`` fixtures are handles; so is each target of a run
over several targets, which runs the YAML cases through ``run_case``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Union

from aoeconform.session.facts import TargetFacts
from aoeconform.wire import Frame, Header
from aoeconform.wire.constants import frame_tag

from .endpoint import TargetEndpoint
from .engine import Engine, RunOptions
from .expect import Env, ReplyView, Request, Verdict, evaluate

#: keys that make a mapping a whole expectation rather than the fields of one reply
_EXPECTATION_KEYS = {"reply", "silence", "count", "any_of", "capture", "match", "timeout"}


@dataclass
class Exchange:
    """One request and the replies that carried its tag."""

    request: Request
    replies: list[ReplyView] = field(default_factory=list)
    waited: float = 0.0

    @property
    def reply(self) -> Optional[ReplyView]:
        return self.replies[0] if self.replies else None


class ReplyMismatch(AssertionError):
    """A reply did not meet an expectation; the message lists each field that differs."""

    def __init__(self, verdict: Verdict, what: str):
        self.verdict = verdict
        fields = [f"  {c.path}: expected {c.expected}, got {c.actual}" for c in verdict.failures()]
        # the fields when there are some (the verdict's message repeats them), else the message
        super().__init__("\n".join([f"{what} does not meet the expectation:"] + (fields or [f"  {verdict.message}"])))


class TargetHandle:
    """An open, probed target; ``close()`` ends the endpoint."""

    def __init__(self, endpoint: TargetEndpoint, options: Optional[RunOptions] = None, label: str = ""):
        self.endpoint = endpoint
        self.label = label or endpoint.description
        self.engine = Engine(endpoint, options)
        try:
            self.facts: TargetFacts = self.engine.probe()
        except BaseException:
            endpoint.close()
            raise

    # -- addressing, for frames built with the codec -------------------------------------

    @property
    def mac(self) -> bytes:
        """The target's MAC address."""
        return self.endpoint.mac

    @property
    def src(self) -> bytes:
        """The harness's source MAC on the target's link."""
        return self.endpoint.transport.mac

    @property
    def shelf(self) -> int:
        return self.endpoint.shelf

    @property
    def slot(self) -> int:
        return self.endpoint.slot

    def new_tag(self) -> int:
        return self.engine.new_tag()

    def header(self, command: int, **fields) -> Header:
        """A request header addressed to this target, with a fresh tag; ``fields`` override."""
        values: dict[str, Any] = dict(dst=self.mac, src=self.src, shelf=self.shelf, slot=self.slot, command=command, tag=self.new_tag())
        values.update(fields)
        return Header(**values)

    # -- exchanges -----------------------------------------------------------------

    def send(self, frame: Union[Frame, bytes]) -> Request:
        raw = frame.encode(pad=True) if isinstance(frame, Frame) else bytes(frame)
        self.engine.wire.send(raw)
        return Request(raw, frame_tag(raw))

    def exchange(self, frame: Union[Frame, bytes], timeout: Optional[float] = None, *, wait_all: bool = False) -> Exchange:
        """Send ``frame`` and collect the replies with its tag: the first one ends
        the wait unless ``wait_all``; otherwise the engine's reply timeout (or
        ``timeout`` seconds) bounds it."""
        wire = self.engine.wire
        request = self.send(frame)
        waited = self.engine.timeout() if timeout is None else timeout
        done = (lambda: False) if wait_all else (lambda: bool(wire.replies(request.tag)))
        wire.wait(done, self.engine.clock() + waited)
        wire.drain()
        return Exchange(request, [ReplyView(r) for r in wire.take(request.tag)], waited)

    # -- judging ---------------------------------------------------------------------

    def env(self) -> Env:
        engine = self.engine
        return Env(engine.base_variables(), engine.roles(), engine.options.seed, engine.shadow)

    def check(self, exchange: Union[Exchange, ReplyView, list], expect: Mapping) -> Verdict:
        """Judge replies with an expectation in the suites' language (see
        docs/scenario-format.md): either a whole one (``{"reply": ...}``,
        ``{"silence": True}``, ``{"any_of": [...]}``) or, for short, the fields of
        the reply alone (``{"header": {...}, "ata": {...}}``)."""
        spec = dict(expect) if set(expect) & _EXPECTATION_KEYS else {"reply": dict(expect)}
        if isinstance(exchange, Exchange):
            replies, request, waited = exchange.replies, exchange.request, exchange.waited
        else:
            replies = exchange if isinstance(exchange, list) else [exchange]
            request, waited = None, 0.0
        return evaluate(spec, replies, request, self.env(), waited)

    def expect(self, exchange: Union[Exchange, ReplyView, list], expect: Mapping, what: str = "") -> Verdict:
        """``check``, raising ``ReplyMismatch`` (an AssertionError) naming each field that differs."""
        __tracebackhide__ = True  # pytest: the failure points at the caller's line
        verdict = self.check(exchange, expect)
        if not verdict.ok:
            if not what and isinstance(exchange, Exchange):
                what = f"reply to tag 0x{exchange.request.tag:08x} from {self.label}"
            raise ReplyMismatch(verdict, what or f"reply from {self.label}")
        return verdict

    # -- cases ----------------------------------------------------------------------

    def run_case(self, case, repeat: int = 0):
        return self.engine.run_case(case, repeat)

    def close(self) -> None:
        self.endpoint.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def run_options(endpoint: TargetEndpoint, *, seed: int = 0, allow_write: Optional[bool] = None,
                timeout_floor: Optional[float] = None, **more) -> RunOptions:
    """RunOptions as ``aoeconform run`` picks them for ``endpoint``: writes on for the
    bundled target."""
    if allow_write is None:
        allow_write = endpoint.bundled
    if timeout_floor is None:
        timeout_floor = RunOptions.timeout_floor
    return RunOptions(seed=seed, allow_write=allow_write, timeout_floor=timeout_floor, **more)
