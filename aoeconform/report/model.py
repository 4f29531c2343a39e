"""The run as the report writers see it: results, manifest, timing."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Optional

from aoeconform.scenario.results import FAILING, OUTCOMES, SUMMARY_KEYS, CaseResult
from aoeconform.scenario.rules import RULES


#: why a run can stop early; the first three are errors of the run itself (an
#: error testcase in junit.xml, executionSuccessful false in SARIF)
ABORTS = ("target_unreachable", "interrupted", "terminated")
STOP_REASONS = ABORTS + ("maxfail",)


@dataclass
class RunInfo:
    results: list[CaseResult] = field(default_factory=list)
    manifest: dict = field(default_factory=dict)
    start: float = field(default_factory=time.time)
    end: Optional[float] = None
    exchanges: int = 0
    elapsed: float = 0.0
    interrupted: bool = False
    strict: bool = False
    #: where the run started: relative suite paths in the reports are relative to it
    cwd: str = field(default_factory=os.getcwd)
    #: why the run ended before every selected case ran: {"reason": ..., "message": ...}
    #: with reason one of STOP_REASONS; None when it ran to the end
    stopped: Optional[dict] = None

    def stop(self, reason: str, message: str) -> None:
        assert reason in STOP_REASONS, reason
        self.stopped = {"reason": reason, "message": message}
        if reason in ("interrupted", "terminated"):
            self.interrupted = True

    @property
    def aborted(self) -> bool:
        """Stopped by something other than the user's own limit (--maxfail)."""
        return self.stopped is not None and self.stopped.get("reason") in ABORTS

    @property
    def exchanges_per_second(self) -> float:
        return self.exchanges / self.elapsed if self.elapsed > 0 else 0.0

    def summary(self) -> dict:
        counts = {SUMMARY_KEYS[o]: 0 for o in OUTCOMES}
        for r in self.results:
            counts[SUMMARY_KEYS[r.outcome]] += 1
        return counts

    def must_failures(self) -> list[CaseResult]:
        """Failures that count at MUST: a MUST case that failed a MUST rule (a
        MUST case failing on a SHOULD-level check counts at SHOULD)."""
        return [r for r in self.results if r.outcome in FAILING and r.gating_level == "MUST"]

    def gating_failures(self) -> list[CaseResult]:
        """What makes the exit status 1: MUST failures, or with --strict any
        failure and any unexpected pass."""
        if self.strict:
            return [r for r in self.results if r.outcome in FAILING or r.outcome == "xpassed"]
        return self.must_failures()

    def rtts(self) -> list[float]:
        return [x for r in self.results for x in r.rtts]

    def rule_matrix(self) -> list[dict]:
        """One row per requirement of the protocol notes: the traceability matrix.

        A rule's cases are those that check it, in their own rule list or in a
        step. A failure counts against the rule it was charged to; for the
        case's other rules it shows as "blocked" (the case stopped before it
        could show them kept or broken). A rule fails when a failure is charged
        to it; it passes when at least one of its cases passed; otherwise it was
        not exercised here.
        """
        cases: dict[int, dict[str, str]] = {}
        for r in self.results:
            charged = r.failed_rule if r.failed_rule is not None else (r.rule[0] if r.rule else None)
            for rule in r.checked_rules or r.rule:
                bad = r.outcome in FAILING or r.outcome in ("xpassed", "xfailed")
                outcome = "blocked" if bad and r.outcome != "error" and rule != charged else r.outcome
                cases.setdefault(rule, {})[r.id] = outcome
        rows = []
        for number in sorted(set(RULES) | set(cases)):
            section, level, title = RULES.get(number, ("", "", ""))
            outcomes = cases.get(number, {})
            values = set(outcomes.values())
            if not outcomes:
                verdict = "no case"
            elif values & set(FAILING) or "xpassed" in values:
                verdict = "failed"
            elif "passed" in values:
                verdict = "passed"
            elif "xfailed" in values:
                verdict = "xfailed"
            elif "blocked" in values:
                verdict = "blocked"
            else:
                verdict = "not run"
            rows.append({"rule": number, "section": section, "level": level, "title": title,
                         "verdict": verdict, "cases": outcomes})
        return rows
