"""The traceability matrix: one row per requirement of the protocol notes."""

from aoeconform.report.model import RunInfo
from aoeconform.scenario.loader import load_suites, shipped_suite_paths
from aoeconform.scenario.results import CaseResult
from aoeconform.scenario.rules import RULES


def _result(case_id, rules, outcome):
    r = CaseResult.__new__(CaseResult)
    r.id, r.rule, r.outcome = case_id, rules, outcome
    return r


def test_verdict_per_rule():
    run = RunInfo(results=[
        _result("a/1", [21], "passed"),
        _result("a/2", [21, 22], "failed"),
        _result("a/3", [23], "skipped"),
        _result("a/4", [24], "xfailed"),
        _result("a/5", [25], "passed"),
    ])
    verdicts = {row["rule"]: row["verdict"] for row in run.rule_matrix()}
    assert verdicts[21] == "failed"  # one failing case fails the rule
    assert verdicts[22] == "failed"
    assert verdicts[23] == "not run"
    assert verdicts[24] == "xfailed"
    assert verdicts[25] == "passed"
    assert verdicts[1] == "no case"
    assert len(verdicts) == len(RULES)


def test_every_rule_has_a_shipped_case():
    covered = {rule for suite in load_suites(shipped_suite_paths()) for case in suite.cases for rule in case.rule}
    missing = sorted(set(RULES) - covered)
    assert not missing, f"rules without a case: {missing}"
