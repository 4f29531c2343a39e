"""The `linux` suite: the kernel's AoE driver against the bundled target, clean and with the
quirks that break what Linux relies on (aoeconform selftest leaves these cases out: they boot
user-mode Linux, a few seconds each)."""

import json

import pytest

from aoeconform.cli import main
from aoeconform.scenario import endpoint as ep
from aoeconform.scenario.engine import Engine, RunOptions
from aoeconform.scenario.loader import all_cases, load_suites, shipped_suites_dir
from conftest import need_program, need_uml

SEED = 7


def linux_cases():
    import os

    return all_cases(load_suites([os.path.join(shipped_suites_dir(), "linux.yaml")]))


def run_cases(cases, quirks=(), mtu=1500, endpoint=None):
    endpoint = endpoint or ep.bundled_lab(tuple(quirks), mtu=mtu)
    try:
        engine = Engine(endpoint, RunOptions(seed=SEED, linux=True, timeout_floor=0.05))
        engine.probe()
        return {r.id: r for r in engine.run(cases)}
    finally:
        endpoint.close()


def test_without_the_flag_the_cases_are_not_permitted(require_root, tmp_path, capsys):
    import os

    status = main(["run", os.path.join(shipped_suites_dir(), "linux.yaml"), "--report-dir", str(tmp_path)])
    assert status == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert {c["outcome"] for c in report["cases"]} == {"skipped"}
    assert all("add --linux" in c["message"] for c in report["cases"])


def test_the_clean_bundled_target_passes():
    need_uml()
    results = run_cases(linux_cases())
    bad = {cid: (r.outcome, r.message) for cid, r in results.items() if r.outcome != "passed"}
    assert not bad
    assert len(results) == 6


@pytest.mark.parametrize("quirk, case_id, rule", [
    ("wildcard-reply-address", "linux/discovery/agrees-with-identify", "rule 11"),
    ("stale-read-buffer", "linux/data/clean", "rules 21/22"),
])
def test_a_quirk_linux_trips_on_fails_naming_the_rule(quirk, case_id, rule):
    need_uml()
    case = next(c for c in linux_cases() if c.id == case_id)
    assert quirk in case.catches
    result = run_cases([case], quirks=[quirk])[case_id]
    assert result.outcome == "failed", result.message
    assert rule in result.message, result.message


@pytest.mark.slow
def test_every_declared_catch_holds():
    need_uml()
    cases = linux_cases()
    for quirk in sorted({q for c in cases for q in c.catches}):
        declared = [c for c in cases if quirk in c.catches]
        results = run_cases(declared, quirks=[quirk])
        missed = [cid for cid, r in results.items() if r.outcome not in ("failed", "timeout")]
        assert not missed, f"{quirk} is not caught by {missed}"


@pytest.mark.slow
def test_the_clean_bundled_target_passes_at_mtu_9000():
    need_uml()
    results = run_cases(linux_cases(), mtu=9000)
    assert {cid: r.outcome for cid, r in results.items()} == {c.id: "passed" for c in linux_cases()}


@pytest.mark.slow
def test_vblade_passes(vblade_lab):
    need_uml()
    need_program("vblade", "vblade")
    endpoint = ep.external(f"{vblade_lab.host_if}:{vblade_lab.shelf}.{vblade_lab.slot}")
    cases = [c for c in linux_cases() if "restart" not in c.requires]
    results = run_cases(cases, endpoint=endpoint)
    assert {cid: r.outcome for cid, r in results.items()} == {c.id: "passed" for c in cases}
