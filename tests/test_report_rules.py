"""The traceability matrix: one row per requirement of the protocol notes."""

from aoeconform.report.model import RunInfo
from aoeconform.scenario.loader import load_suites, shipped_suite_paths
from aoeconform.scenario.results import CaseResult
from aoeconform.scenario.rules import RULES


def _result(case_id, rules, outcome, failed_rule=None, checked=()):
    return CaseResult(case_id, "", "", "MUST", outcome, rule=rules, failed_rule=failed_rule,
                      checked_rules=list(dict.fromkeys(rules + list(checked))))


def test_verdict_per_rule():
    run = RunInfo(results=[
        _result("a/1", [21], "passed"),
        _result("a/2", [21, 22], "failed"),
        _result("a/3", [23], "skipped"),
        _result("a/4", [24], "xfailed"),
        _result("a/5", [25], "passed"),
        _result("a/6", [26, 27], "failed", failed_rule=27),
        _result("a/7", [28], "passed", checked=[29]),
    ])
    verdicts = {row["rule"]: row["verdict"] for row in run.rule_matrix()}
    assert verdicts[21] == "failed"  # one failing case fails the rule
    assert verdicts[22] == "blocked"  # the case failed on 21 before it could show 22 kept or broken
    assert verdicts[23] == "not run"
    assert verdicts[24] == "xfailed"
    assert verdicts[25] == "passed"
    assert verdicts[26] == "blocked" and verdicts[27] == "failed"  # charged to the failing step's rule
    assert verdicts[29] == "passed"  # checked by a step of a passing case
    assert verdicts[1] == "no case"
    assert len(verdicts) == len(RULES)


def test_every_rule_has_a_shipped_case():
    covered = {rule for suite in load_suites(shipped_suite_paths()) for case in suite.cases for rule in case.rule}
    missing = sorted(set(RULES) - covered)
    assert not missing, f"rules without a case: {missing}"
