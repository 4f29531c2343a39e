"""The fuzzer against each quirk of the reference target: which defects its
oracles can see, by which rule, and how soon.

Each quirk gets a fresh reference target in memory and a fuzzer with a
fixed seed, writes allowed (inside the default window: the disk is a
scratch one) and no shrinking (the question is whether, not how small),
except for a stop: which frame caused it says which rule it breaks.
A quirk's run ends at its first finding or after ``seconds``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, List, Optional

from aoeconform.scenario.endpoint import LAB_IMAGE_BYTES
from aoeconform.target.host import ThreadHost

from .context import WritePolicy
from .engine import Fuzzer

SEED = 1


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

    @property
    def found(self) -> bool:
        return self.kind is not None

    def as_dict(self) -> dict:
        return {"quirk": self.quirk, "found": self.found, "kind": self.kind, "rule": self.rule,
                "found_after": None if self.found_after is None else round(self.found_after, 3),
                "case_index": self.case_index, "cases": self.cases, "seconds": round(self.seconds, 3), "error": self.error}


#: quirks that only show on a disk above 2^28 sectors get one (sparse), as the suites' selftest does
BIG_DISK_QUIRKS = frozenset({"lba48-limited-to-28-bits"})


def fuzz_quirk(quirk: str, seconds: float, seed: int = SEED) -> QuirkResult:
    big = quirk in BIG_DISK_QUIRKS
    with ThreadHost([quirk], image_bytes=LAB_IMAGE_BYTES if big else 8 << 20) as ref:
        info = ref.info
        # the default window sits in the middle of the disk; keep it below 2^28 on the big one
        policy = WritePolicy.for_target(True, "4096:64" if big else None, info.capacity)
        # a stop is shrunk to the frame that caused it: that frame names the rule (fuzz.charge)
        fuzzer = Fuzzer(ref.host, info, seed=seed, policy=policy, restart=ref.restart, shrink_kinds=("unresponsive",), max_findings=1)
        try:
            result = fuzzer.run(seconds=seconds)
        except Exception as exc:  # reported on the quirk's line: one quirk must not end the matrix
            return QuirkResult(quirk, 0, 0.0, error=f"{type(exc).__name__}: {exc}")
    out = QuirkResult(quirk, result.cases, result.seconds)
    if result.findings:
        first = result.findings[0]
        out.kind, out.rule, out.found_after, out.case_index = first.kind, first.rule, first.found_after, first.case_index
    return out


def fuzz_quirks(quirks: Iterable[str], seconds: float, on_result: Optional[Callable[[QuirkResult], None]] = None) -> List[QuirkResult]:
    results = []
    for quirk in quirks:
        result = fuzz_quirk(quirk, seconds)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results
