"""Proof that the checks catch bugs: every suite against the clean reference
target (nothing may fail) and against each quirk (something must).

Everything runs in memory on the synchronous loopback, so silence costs no
waiting and the results are deterministic. Cases are run in three
environments, each with a fresh target: the normal one (16 MiB image), a
read-only export (cases that require ``readonly``) and a sparse disk above
2^28 sectors (cases that require ``capacity_above_2_28``).
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Optional

from .engine import Engine, RunOptions
from .model import Case
from .results import FAILING

SEED = 20240601
ENVIRONMENTS = ("normal", "readonly", "big")


def environment_of(case: Case) -> str:
    if "readonly" in case.requires:
        return "readonly"
    if "capacity_above_2_28" in case.requires:
        return "big"
    return "normal"


@dataclass
class QuirkRun:
    quirk: Optional[str]
    #: case id -> outcome
    outcomes: dict = field(default_factory=dict)
    messages: dict = field(default_factory=dict)
    exchanges: int = 0
    seconds: float = 0.0

    @property
    def caught_by(self) -> list[str]:
        return [cid for cid, o in self.outcomes.items() if o in ("failed", "timeout")]

    @property
    def bad(self) -> list[str]:
        """For the clean run: every case that did not pass or skip."""
        return [cid for cid, o in self.outcomes.items() if o in FAILING or o == "xpassed"]


def run_one(quirk: Optional[str], cases: list[Case]) -> QuirkRun:
    from . import endpoint as ep

    import time

    result = QuirkRun(quirk)
    started = time.monotonic()
    quirks = (quirk,) if quirk else ()
    for env in ENVIRONMENTS:
        chosen = [c for c in cases if environment_of(c) == env]
        if not chosen:
            continue
        endpoint = ep.bundled_loopback(quirks, readonly=(env == "readonly"),
                                       image_bytes=ep.LAB_IMAGE_BYTES if env == "big" else ep.BUNDLED_IMAGE_BYTES)
        try:
            engine = Engine(endpoint, RunOptions(seed=SEED, timeout_floor=0.05, step_timeout=10, case_timeout=30))
            try:
                engine.probe()
            except Exception as exc:  # a quirk that hides the target entirely is caught by every case
                for c in chosen:
                    result.outcomes[c.id] = "timeout"
                    result.messages[c.id] = f"target unreachable: {exc}"
                continue
            for r in engine.run(chosen):
                result.outcomes[r.id] = r.outcome
                if r.outcome != "passed":
                    result.messages[r.id] = r.message
            result.exchanges += engine.wire.exchanges
        finally:
            endpoint.close()
    result.seconds = time.monotonic() - started
    return result


@dataclass
class SelftestReport:
    clean: QuirkRun
    quirk_runs: list[QuirkRun]
    cases: list[Case]
    problems: list[str] = field(default_factory=list)
    #: runs against the accepted readings (target.quirks.READINGS): nothing may fail
    reading_runs: list[QuirkRun] = field(default_factory=list)

    def matrix(self) -> dict:
        """quirk -> case ids that catch it."""
        return {run.quirk: sorted(run.caught_by) for run in self.quirk_runs}

    def catches_of(self) -> dict:
        """case id -> quirks it catches."""
        out: dict = {c.id: [] for c in self.cases}
        for run in self.quirk_runs:
            for cid in run.caught_by:
                out.setdefault(cid, []).append(run.quirk)
        return out

    def as_dict(self) -> dict:
        return {
            "ok": not self.problems,
            "problems": self.problems,
            "clean": {"failures": {cid: self.clean.messages.get(cid, "") for cid in self.clean.bad},
                      "outcomes": self.clean.outcomes},
            "quirks": {run.quirk: {"caught_by": sorted(run.caught_by), "exchanges": run.exchanges, "seconds": round(run.seconds, 3)}
                       for run in self.quirk_runs},
            "cases": {cid: {"catches": qs, "uncatchable": next((c.uncatchable for c in self.cases if c.id == cid), "")}
                      for cid, qs in self.catches_of().items()},
            "readings": {run.quirk: {"failures": {cid: run.messages.get(cid, "") for cid in run.bad}}
                         for run in self.reading_runs},
        }


#: capabilities no in-memory target has: their cases are proven against quirks
#: elsewhere (the `linux` suite boots user-mode Linux per case and per quirk,
#: minutes where the rest takes seconds: tests/test_suite_linux.py runs it
#: against the quirks it declares)
NOT_IN_MEMORY = ("linux",)


def selftest(paths: list[str], quirks: list[str], jobs: Optional[int] = None, readings: Optional[list[str]] = None,
             all_quirks: bool = True) -> SelftestReport:
    """The clean run, one run per quirk (each must be caught) and one per
    accepted reading (none may fail a case: that would be a case stricter
    than its rule). ``readings`` None means all of them; with ``all_quirks``
    False (a chosen few), a case that catches none is not a problem."""
    from aoeconform.target.quirks import READINGS

    from .loader import all_cases, load_suites

    cases = [c for c in all_cases(load_suites(paths)) if not set(c.requires) & set(NOT_IN_MEMORY)]
    readings = list(READINGS) if readings is None else readings
    names: list[Optional[str]] = [None] + list(quirks) + list(readings)
    jobs = jobs if jobs is not None else min(len(names), os.cpu_count() or 1)
    if jobs > 1:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            runs = list(pool.map(run_one, names, [cases] * len(names)))
    else:
        runs = [run_one(q, cases) for q in names]
    split = 1 + len(quirks)
    report = SelftestReport(runs[0], runs[1:split], cases, reading_runs=runs[split:])
    check(report, full_quirk_set=all_quirks and bool(quirks))
    return report


def check(report: SelftestReport, full_quirk_set: bool = True) -> None:
    problems = report.problems
    for cid in report.clean.bad:
        problems.append(f"clean target: {cid} {report.clean.outcomes[cid]}: {report.clean.messages.get(cid, '')}")
    for run in report.quirk_runs:
        if not run.caught_by:
            problems.append(f"quirk {run.quirk} is caught by no case")
    for run in report.reading_runs:
        for cid in run.bad:
            problems.append(f"reading {run.quirk}: {cid} {run.outcomes[cid]} although the rule accepts this reading "
                            f"(the case is stricter than its rule): {run.messages.get(cid, '')}")
    catches = report.catches_of()
    tested = {run.quirk for run in report.quirk_runs}
    for case in report.cases:
        declared = [q for q in case.catches if q in tested]
        missed = [q for q in declared if q not in catches.get(case.id, [])]
        if missed:
            problems.append(f"{case.where}: {case.id} declares catches: {', '.join(missed)}, but does not catch it")
        if full_quirk_set and not catches.get(case.id) and not case.uncatchable:
            outcome = report.clean.outcomes.get(case.id, "not run")
            problems.append(f"{case.where}: {case.id} catches no quirk and gives no `uncatchable` reason (clean outcome: {outcome})")
