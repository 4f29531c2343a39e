"""The fuzzer against each quirk of the reference target: which defects its
oracles can see, by which rule, and how soon.

Each quirk gets a fresh reference target in memory and a fuzzer with a
fixed seed, writes allowed (inside the default window: the disk is a
scratch one) and no shrinking (the question is whether, not how small),
except for a stop: which frame caused it says which rule it breaks.
A quirk's run ends at its first finding or after ``seconds``.

With ``replay``, each quirk's run shrinks what it finds and goes on for
the whole time (up to ``MAX_REPLAY_FINDINGS`` findings); every finding is
then replayed, as ``aoeconform replay`` would, against a fresh target with
the quirk, where it must fire again, and against a fresh clean target,
where it must not (if it did, the finding would be the fuzzer's own).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, List, Optional, Sequence

from aoeconform.scenario.endpoint import LAB_IMAGE_BYTES
from aoeconform.target.host import ThreadHost

from .context import WritePolicy
from .engine import Fuzzer, replay_finding
from .findings import Finding

SEED = 1
#: findings kept per quirk when each is replayed
MAX_REPLAY_FINDINGS = 4


@dataclass
class ReplayCheck:
    """One finding replayed against the quirk's target and the clean one."""

    signature: str
    rule: Optional[int]
    #: it fired again against a fresh target with the quirk
    fires: bool
    #: it fired against a fresh clean target too (a false finding)
    fires_clean: bool
    #: the frames replayed: shrunk or as found
    shrunk: bool
    frames: int

    def as_dict(self) -> dict:
        return {"signature": self.signature, "rule": self.rule, "fires": self.fires, "fires_clean": self.fires_clean,
                "shrunk": self.shrunk, "frames": self.frames}


@dataclass
class QuirkResult:
    quirk: str
    cases: int
    seconds: float
    #: the first finding's kind and rule, and when it came; None when missed
    kind: Optional[str] = None
    rule: Optional[int] = None
    found_after: Optional[float] = None
    case_index: Optional[int] = None
    error: str = ""
    #: with ``replay``: each finding replayed
    replays: List[ReplayCheck] = field(default_factory=list)

    @property
    def found(self) -> bool:
        return self.kind is not None

    @property
    def not_replayed(self) -> List[ReplayCheck]:
        return [r for r in self.replays if not r.fires]

    @property
    def false_findings(self) -> List[ReplayCheck]:
        return [r for r in self.replays if r.fires_clean]

    def as_dict(self) -> dict:
        return {"quirk": self.quirk, "found": self.found, "kind": self.kind, "rule": self.rule,
                "found_after": None if self.found_after is None else round(self.found_after, 3),
                "case_index": self.case_index, "cases": self.cases, "seconds": round(self.seconds, 3), "error": self.error,
                "replays": [r.as_dict() for r in self.replays]}


#: quirks that only show on a disk above 2^28 sectors get one (sparse), as the suites' selftest does
BIG_DISK_QUIRKS = frozenset({"lba48-limited-to-28-bits"})


def _image_bytes(quirk: str) -> int:
    return LAB_IMAGE_BYTES if quirk in BIG_DISK_QUIRKS else 8 << 20


def fuzz_quirk(quirk: str, seconds: float, seed: int = SEED, replay: bool = False) -> QuirkResult:
    big = quirk in BIG_DISK_QUIRKS
    with ThreadHost([quirk], image_bytes=_image_bytes(quirk)) as ref:
        info = ref.info
        # the default window sits in the middle of the disk; keep it below 2^28 on the big one
        policy = WritePolicy.for_target(True, "4096:64" if big else None, info.capacity)
        # a stop is shrunk to the frame that caused it: that frame names the rule (fuzz.charge)
        fuzzer = Fuzzer(ref.host, info, seed=seed, policy=policy, restart=ref.restart, shrink=True,
                        shrink_kinds=None if replay else ("unresponsive",),
                        max_findings=MAX_REPLAY_FINDINGS if replay else 1, target_extra={"quirks": [quirk]})
        try:
            result = fuzzer.run(seconds=seconds)
        except Exception as exc:  # reported on the quirk's line: one quirk must not end the matrix
            return QuirkResult(quirk, 0, 0.0, error=f"{type(exc).__name__}: {exc}")
    out = QuirkResult(quirk, result.cases, result.seconds)
    if result.findings:
        first = result.findings[0]
        out.kind, out.rule, out.found_after, out.case_index = first.kind, first.rule, first.found_after, first.case_index
    if replay:
        out.replays = [check_replay(finding, quirk) for finding in result.findings]
    return out


def _replays_on(quirks: Sequence[str], image_bytes: int, finding: Finding) -> bool:
    with ThreadHost(quirks, image_bytes=image_bytes) as ref:
        return replay_finding(ref.host, ref.info, finding, restart=ref.restart)


def check_replay(finding: Finding, quirk: str) -> ReplayCheck:
    """Replay ``finding`` against fresh targets with and without ``quirk``."""
    image = _image_bytes(quirk)
    # a second try when it does not fire: a loaded machine can stretch a reply past the replay's wait
    fires = _replays_on([quirk], image, finding) or _replays_on([quirk], image, finding)
    return ReplayCheck(finding.signature, finding.rule, fires=fires,
                       fires_clean=_replays_on([], image, finding), shrunk=bool(finding.shrunk),
                       frames=len(finding.reproducer))


def fuzz_quirks(quirks: Iterable[str], seconds: float, on_result: Optional[Callable[[QuirkResult], None]] = None,
                replay: bool = False) -> List[QuirkResult]:
    results = []
    for quirk in quirks:
        result = fuzz_quirk(quirk, seconds, replay=replay)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results
