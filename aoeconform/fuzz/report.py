"""Fuzz findings in the run reports (report.json, junit.xml, report.sarif,
report.html): each finding is written as a failed case of a suite named
``fuzz``, its id ``fuzz/<signature>``, charged to its rule, so CI tools
show fuzz findings and suite failures the same way. The report writers are
the suites' own (``aoeconform.report.writer``)."""

from __future__ import annotations

import sys
import time
from typing import List, Optional

from aoeconform.scenario.results import FAILED, XFAILED, CaseResult, FrameRecord
from aoeconform.scenario.rules import RULES

from .findings import Finding
from .oracle import KINDS


def as_case_result(finding: Finding, started: float) -> CaseResult:
    section, level, _ = RULES.get(finding.rule, ("", "MUST", ""))
    iface = finding.target.get("iface", "")
    at = started + (finding.found_after or 0.0)
    frames = [FrameRecord(at, "out", iface, f) for f in finding.reproducer]
    frames += [FrameRecord(at, "in", iface, r) for r in (finding.shrunk_replies if finding.shrunk is not None else finding.replies)]
    result = CaseResult(
        id=f"fuzz/{finding.signature}",
        requirement=KINDS.get(finding.kind, (0, finding.kind))[1],
        section=section,
        level=level,
        outcome=XFAILED if finding.known else FAILED,
        message=f"{finding.detail} (seen {finding.count} time(s); replay: {finding.replay_command})",
        rule=[finding.rule],
        suite="fuzz",
        file=finding.paths[0] if finding.paths else "",
        line=1,
        start=at,
        frames=frames,
        sent=list(finding.reproducer),
        notes=[finding.note] if finding.note else [],
        checked_rules=[finding.rule],
        failed_rule=finding.rule,
        failed_level=level,
    )
    result.expected_failure = finding.known or None
    return result


def write_reports(out_dir: str, result, findings: List[Finding], *, target: str = "", argv: Optional[list] = None) -> None:
    from aoeconform.report.model import RunInfo
    from aoeconform.report.writer import ReportWriter

    started = time.time() - result.seconds
    run = RunInfo(start=started, end=time.time(), exchanges=result.cases, elapsed=result.seconds)
    run.manifest = {
        "harness": "aoeconform fuzz", "target_description": target, "seed": result.seed,
        "command_line": " ".join(argv if argv is not None else sys.argv),
        "start_time": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "fuzz": {"cases": result.cases, "seconds": round(result.seconds, 3), "findings": len(findings)},
    }
    if result.stopped_early and not result.stopped_early.startswith("reached"):
        run.stop("target_unreachable", result.stopped_early)
    run.results = [as_case_result(f, started) for f in findings]
    ReportWriter(out_dir, run).close()
