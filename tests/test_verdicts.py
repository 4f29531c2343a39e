"""Verdicts without over-strictness (notes §10, "Levels").

* every shipped case passes against every accepted reading of its rule;
* no case is held to a level above its rule's;
* a failure is charged to the rule its failing step checks, and counts at
  that rule's level;
* a capability the target lacks skips the cases and steps that need it.

All in memory against the reference target; no root.
"""

from __future__ import annotations

import pytest

from aoeconform.report.model import RunInfo
from aoeconform.scenario import endpoint as ep
from aoeconform.scenario.engine import OBSERVED_IDS, Engine, RunOptions
from aoeconform.scenario.expect import FieldCheck
from aoeconform.scenario.loader import all_cases, load_suite_text, load_suites, shipped_suite_paths
from aoeconform.scenario.model import LEVEL_RANK
from aoeconform.scenario.results import FAILING, SKIPPED, UNSUPPORTED
from aoeconform.scenario.rules import RULES, charge, field_rule
from aoeconform.scenario.selftest import run_one
from aoeconform.target.quirks import READINGS


@pytest.fixture(scope="module")
def cases():
    return all_cases(load_suites(shipped_suite_paths()))


def _engine(*quirks):
    endpoint = ep.bundled_loopback(quirks)
    engine = Engine(endpoint, RunOptions(seed=7, timeout_floor=0.05, step_timeout=10, case_timeout=30))
    engine.probe()
    return engine


def _run(cases, ids, *quirks):
    chosen = [c for c in cases if c.id in ids]
    assert len(chosen) == len(ids), set(ids) - {c.id for c in chosen}
    return {r.id: r for r in _engine(*quirks).run(chosen)}


# -- accepted readings ---------------------------------------------------------------


@pytest.mark.parametrize("reading", sorted(READINGS))
def test_every_case_accepts_every_reading(reading, cases):
    """The target takes another reading the notes accept: no case may fail."""
    run = run_one(reading, cases)
    bad = {cid: f"{o}: {run.messages.get(cid, '')[:300]}" for cid, o in run.outcomes.items() if o in FAILING or o == "xpassed"}
    assert not bad, f"cases stricter than their rule under the reading {reading}: {bad}"
    assert len(run.outcomes) == len(cases)


@pytest.mark.parametrize("reading", sorted(READINGS))
def test_each_reading_is_exercised_by_a_case(reading, cases):
    rules = set(READINGS[reading].rules)
    assert any(rules & set(c.rules_checked) for c in cases), f"no case checks rule(s) {sorted(rules)}"


# -- levels ----------------------------------------------------------------------------


def test_no_case_is_stricter_than_its_rule(cases):
    stricter = [f"{c.id}: {c.level}, rule {c.rule[0]} is {RULES[c.rule[0]][1]}"
                for c in cases if c.rule and LEVEL_RANK[c.level] < LEVEL_RANK[RULES[c.rule[0]][1]]]
    assert not stricter


def test_a_case_without_a_level_takes_its_rules():
    suite, problems = load_suite_text(
        "suite: mine\ncases:\n  - id: mine/a\n    requirement: r\n    section: '3.1'\n    rule: 30\n"
        "    steps:\n      - send: {command: config, config: {ccmd: 0}}\n", "mine.yaml")
    assert not problems
    assert suite.cases[0].level == "SHOULD"


def test_unknown_step_rule_is_a_suite_problem():
    _, problems = load_suite_text(
        "suite: mine\ncases:\n  - id: mine/a\n    requirement: r\n    section: '3.1'\n    rule: 30\n"
        "    steps:\n      - send: {command: config, config: {ccmd: 0}}\n        rule: 99\n", "mine.yaml")
    assert any("mine.yaml:9" in p and "rule 99" in p for p in problems), problems


# -- charging a failure to its rule ---------------------------------------------------------


def _check(path, expected="x", actual="y"):
    return FieldCheck(path, expected, actual, False)


def test_field_rules():
    assert field_rule("header.tag") == 4
    assert field_rule("reply[1].header.shelf") == 11
    assert field_rule("frame.length", "≥ 60") == 16
    assert field_rule("frame.length", "≤ 1514") == 17
    assert field_rule("config.config", "616263", "(empty)") == 35
    assert field_rule("config.config", "616263", "616200") is None
    assert field_rule("ata.cmd_status") is None


def test_charge_prefers_the_step_then_the_fields_then_the_case():
    assert charge([40], [41], [_check("header.tag")]) == 40
    assert charge([], [41], [_check("header.tag")]) == 4
    assert charge([], [41], [_check("header.tag"), _check("ata.cmd_status")]) == 41
    assert charge([], [41], None) == 41


def test_ver_echo_is_charged_to_rule_7_not_12(cases):
    """A Ver 2 config read may be served (rule 12); echoing Ver 2 breaks rule 7."""
    results = _run(cases, ["header/version/2-config-read-refused-or-served"], "ver-unchecked")
    r = results["header/version/2-config-read-refused-or-served"]
    assert r.outcome == "failed" and r.failed_rule == 7, (r.outcome, r.failed_rule, r.message)


def test_wildcard_cases_charge_silence_to_10_and_addresses_to_11(cases):
    ids = ["header/addressing/both-wildcards", "header/addressing/shelf-wildcard-own-slot"]
    silent = _run(cases, ids, "wildcard-silent")
    assert {r.failed_rule for r in silent.values()} == {10}
    echoed = _run(cases, ids, "wildcard-reply-address")
    assert {r.failed_rule for r in echoed.values()} == {11}


def test_matrix_takes_the_charged_rule(cases):
    ids = ["header/addressing/both-wildcards", "header/addressing/exact-shelf-slot-answered"]
    results = _engine("wildcard-reply-address").run([c for c in cases if c.id in ids])
    rows = {row["rule"]: row for row in RunInfo(results=results).rule_matrix()}
    assert rows[11]["verdict"] == "failed"
    assert rows[10]["cases"]["header/addressing/both-wildcards"] == "blocked"
    assert rows[10]["verdict"] == "passed"  # exact-shelf-slot-answered, rule 10, passed
    silent = _engine("wildcard-silent").run([c for c in cases if c.id in ids])
    assert {row["rule"]: row for row in RunInfo(results=silent).rule_matrix()}[10]["verdict"] == "failed"


def test_failure_counts_at_the_charged_rules_level(cases):
    """A MUST case failing on a SHOULD rule's check does not gate at MUST."""
    text = ("suite: mine\ncases:\n  - id: mine/a\n    requirement: r\n    section: '3.1'\n    rule: 21\n"
            "    steps:\n      - send: {command: ata, ata: {sector_count: 0, cmd_status: 0xE7, lba: 0}}\n"
            "        expect: {reply: {ata: {cmd_status: 0x40}}}\n        rule: 31\n")
    suite, problems = load_suite_text(text, "mine.yaml")
    assert not problems
    [result] = _engine("flush-status-zero").run(suite.cases)
    assert result.outcome == "failed" and result.level == "MUST"
    assert result.failed_rule == 31 and result.gating_level == "SHOULD"
    run = RunInfo(results=[result])
    assert run.must_failures() == []
    assert result.as_dict()["failed_rule"] == 31


# -- capabilities ----------------------------------------------------------------------------


def test_missing_optional_commands_skip_their_cases(cases):
    ids = ["ata/check-power/scnt-ff", "ata/flush/e7-status-drdy"]
    results = _run(cases, ids, "check-power-unsupported", "flush-unsupported")
    for r in results.values():
        assert r.outcome == SKIPPED and r.skip_reason == UNSUPPORTED, (r.id, r.outcome, r.message)
    assert "check_power" in results["ata/check-power/scnt-ff"].message
    clean = _run(cases, ids)
    assert all(r.outcome == "passed" for r in clean.values())


def test_a_step_that_needs_a_missing_command_is_skipped_not_the_case(cases):
    engine = _engine()
    engine.facts.mask = None  # as if Mac Mask List were refused
    engine.facts.reservation = None
    [case] = [c for c in cases if c.id == "header/command/each-echoed"]
    [result] = engine.run([case])
    assert result.outcome == "passed", result.message
    skipped = [n for n in result.notes if "skipped" in n]
    assert len(skipped) == 2 and "needs mask" in skipped[0] and "needs reserve" in skipped[1]
    assert sum(1 for f in result.frames if f.direction == "out" and f.raw[19] in (2, 3)) == 0


# -- what the harness notices on its own ------------------------------------------------------


def _observed(*quirks, expected=None):
    endpoint = ep.bundled_loopback(quirks)
    options = RunOptions(seed=7, timeout_floor=0.05, step_timeout=10, case_timeout=30, observe="all",
                         expected_failures=expected or {})
    engine = Engine(endpoint, options)
    engine.probe()
    cases = [c for c in all_cases(load_suites(shipped_suite_paths())) if c.id == "header/tag/bit31-config"]
    return {r.id: r for r in engine.run(cases) if r.suite == "observed"}


def test_observations_pass_against_a_clean_target():
    observed = _observed()
    assert sorted(observed) == sorted(OBSERVED_IDS)
    assert {r.outcome for r in observed.values()} == {"passed"}


@pytest.mark.parametrize("quirk, failing, rule", [
    ("unpadded", "observed/probe/padded", 16),
    ("wildcard-reply-address", None, 11),  # the probes use the real address: nothing to notice
    ("reply-shelf-little-endian", "observed/probe/real-address", 11),
    ("tag-bit31-cleared", "observed/run/tags-returned", 4),
])
def test_observations_become_results_charged_to_their_rule(quirk, failing, rule):
    observed = _observed(quirk)
    bad = {i: r for i, r in observed.items() if r.outcome == "failed"}
    assert list(bad) == ([failing] if failing else [])
    if failing:
        r = bad[failing]
        assert r.failed_rule == rule and r.frames and r.message
        assert _observed(quirk, expected={failing: "known"})[failing].outcome == "xfailed"


def test_selftest_names_a_case_stricter_than_its_rule(tmp_path):
    """A vendor's own suite that demands one reading where the rule accepts
    two: selftest says so (and catches the quirk all the same)."""
    from aoeconform.scenario.selftest import selftest

    suite = tmp_path / "mine.yaml"
    suite.write_text(
        "suite: mine\ncases:\n  - id: mine/ccmd5\n    requirement: CCmd 5 gets Error 2.\n    section: '3.2'\n    rule: 41\n"
        "    catches: [config-ccmd-unchecked]\n    steps:\n      - send: {command: config, config: {ccmd: 5}}\n"
        "        expect: {reply: {header: {error_flag: true, error: 2, tag: same}}}\n")
    report = selftest([str(suite)], ["config-ccmd-unchecked"], jobs=1, readings=["config-ccmd-error-1", "flush-unsupported"])
    assert [r.quirk for r in report.reading_runs] == ["config-ccmd-error-1", "flush-unsupported"]
    strict = [p for p in report.problems if p.startswith("reading ")]
    assert len(strict) == 1 and "config-ccmd-error-1: mine/ccmd5 failed" in strict[0], report.problems
    assert report.matrix()["config-ccmd-unchecked"] == ["mine/ccmd5"]


def test_the_initiators_own_late_replies_are_not_strangers():
    """A load step's reference initiator sends on the engine's transport
    without the engine's Wire; a late reply to one of its tags must not count
    as a reply carrying a tag the harness never sent (rule 4)."""
    from aoeconform.scenario.load import _TagNoting
    from aoeconform.scenario.wire import Wire
    from aoeconform.transport.memory import MemoryLink

    link = MemoryLink("t")
    ours, target = link.endpoint(b"\x02\x00\x00\x00\x00\x01", 1500, name="a"), link.endpoint(b"\x02\x00\x00\x00\x00\x02", 1500, name="b")
    wire = Wire(ours)

    def request(tag):
        return target.mac + ours.mac + b"\x88\xa2\x10\x00\x00\x01\x02\x01" + tag.to_bytes(4, "big") + bytes(36)

    def answer(raw):
        reply = bytearray(raw)
        reply[0:6], reply[6:12], reply[14] = raw[6:12], raw[0:6], 0x18
        target.send(bytes(reply))

    noted = request(0x0101AAAA)
    _TagNoting(ours, wire.sent_tags).send(noted)
    answer(target.recv(1.0))
    unnoted = request(0x0101BBBB)
    ours.send(unnoted)  # what the load step did before: the engine never saw this tag
    answer(target.recv(1.0))
    wire.drain()
    assert [int.from_bytes(r[20:24], "big") for r in wire.strangers] == [0x0101BBBB]
    link.close()
