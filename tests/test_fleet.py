"""`aoeconform run` over several targets and workers, the fleet report, and
`aoeconform compare` reading it."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys

import pytest

from aoeconform.lab import make_sparse_image
from aoeconform.scenario.fleet import plan_units
from aoeconform.scenario.targets import parse_targets

from conftest import need_program, need_root

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def aoeconform(*args, timeout=300):
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "aoeconform", *args], capture_output=True, text=True, timeout=timeout, env=env)


def outcomes(report_dir) -> dict:
    with open(os.path.join(report_dir, "report.json")) as f:
        return {c["id"]: c["outcome"] for c in json.load(f)["cases"]}


def test_targets_and_units():
    targets = parse_targets(["bundled", "bundled", "eth9:1.2", "bundled:flush-status-zero"], ["restart-it"])
    assert [t.label for t in targets] == ["bundled", "bundled#2", "eth9:1.2", "bundled:flush-status-zero"]
    assert targets[2].restart_cmd == "restart-it" and targets[0].restart_cmd is None
    assert targets[3].quirks == frozenset({"flush-status-zero"})
    # a lone bundled target is cut in contiguous shares, one per worker; others are one unit each
    units = plan_units(parse_targets(["bundled"]), 10, 3)
    assert [u.cases for u in units] == [[0, 1, 2], [3, 4, 5, 6], [7, 8, 9]]
    assert [u.cases for u in plan_units(targets, 4, 8)] == [[0, 1, 2, 3]] * 4


@pytest.mark.parametrize("argv, message", [
    (["--target", "eth9:1.2", "--target", "eth8", "--restart-cmd", "a", "--restart-cmd", "b", "--restart-cmd", "c"],
     "--restart-cmd is given 3 times for 2 targets on interfaces"),
    (["--workers", "0"], "--workers must be at least 1"),
    (["--target", "bundled:no-such-quirk", "--target", "bundled"], "unknown quirk 'no-such-quirk'"),
])
def test_usage_errors(argv, message, tmp_path):
    got = aoeconform("run", "--report-dir", str(tmp_path / "r"), *argv)
    assert got.returncode == 2 and message in got.stderr and "Traceback" not in got.stderr, got.stderr


def test_fleet_outcomes_equal_serial_runs_and_compare_reads_the_report(tmp_path):
    """Three bundled targets (two quirky) on two workers: each target's outcomes are
    those of a serial run against it; the fleet report has a column per target."""
    select = ["-k", "ata or header or mask"]
    fleet = tmp_path / "fleet"
    got = aoeconform("run", "--bundled", "loopback", "--seed", "7", *select, "--report-dir", str(fleet), "--workers", "2",
                     "--target", "bundled", "--target", "bundled:flush-status-zero", "--target", "bundled:tag-bit31-cleared")
    assert got.returncode == 1, got.stdout + got.stderr
    with open(fleet / "report.json") as f:
        doc = json.load(f)
    labels = [t["label"] for t in doc["targets"]]
    assert labels == ["bundled", "bundled:flush-status-zero", "bundled:tag-bit31-cleared"]
    assert all(t["identify"]["model"] == "aoeconform reference target" and t["firmware"] == 1 for t in doc["targets"])
    assert all(len(t["workers"]) == 1 for t in doc["targets"])  # one worker owned each target
    for target, quirk in zip(doc["targets"], [None, "flush-status-zero", "tag-bit31-cleared"]):
        serial = tmp_path / f"serial-{quirk}"
        aoeconform("run", "--bundled", "loopback", "--seed", "7", *select, "--report-dir", str(serial),
                   *(["--quirk", quirk] if quirk else []))
        assert outcomes(fleet / target["report_dir"]) == outcomes(serial), quirk
        column = {c["id"]: c["outcomes"][target["label"]] for c in doc["cases"]}
        assert {i: o for i, o in column.items() if o != "-"} == outcomes(serial)  # "-": not in this target's run
    differing = {c["id"] for c in doc["cases"] if c["differs"]}
    assert {"ata/flush/e7-status-drdy", "header/tag/bit31-ata"} <= differing
    assert (fleet / "report.html").read_text().count("aoeconform reference target") >= 3
    compared = aoeconform("compare", str(fleet))
    assert compared.returncode == 0, compared.stderr
    assert "ata/flush/e7-status-drdy" in compared.stdout and "header/tag/bit31-ata" in compared.stdout
    assert "ata/read-ext/one-sector" not in compared.stdout  # the same everywhere


def test_lone_bundled_target_split_across_workers_in_own_labs(tmp_path):
    """--workers 3 with the bundled target: three reference targets in three lab
    namespaces share the cases; the outcomes are those of a serial run."""
    need_root()
    parallel, serial = tmp_path / "parallel", tmp_path / "serial"
    # a floor above the lab's 0.05 s: three targets and three workers on a busy 2-core
    # machine must not turn a late reply into a timeout in one run and not the other
    floor = ("--timeout-floor", "0.2")
    got = aoeconform("run", "--seed", "3", "--workers", "3", "--report-dir", str(parallel), "-v", *floor)
    assert got.returncode == 0, got.stdout[-2000:] + got.stderr
    with open(parallel / "report.json") as f:
        doc = json.load(f)
    assert len(doc["targets"]) == 1 and len(doc["targets"][0]["workers"]) == 3
    assert "lab namespace aoec" in doc["targets"][0]["description"]
    aoeconform("run", "--seed", "3", "--report-dir", str(serial), *floor)
    assert outcomes(parallel / doc["targets"][0]["report_dir"]) == outcomes(serial)
    assert len(outcomes(serial)) >= 280


@pytest.mark.vblade
def test_fleet_report_over_vblade_and_reference_targets(vblade_lab, tmp_path):
    """vblade, the reference target and a quirky one in one run: the report shows
    where they differ, vblade's IDENTIFY strings in its column."""
    need_program("vblade", "vblade")
    # vblade dies on some Mac Mask cases; the lab's vblade is not restartable by
    # command, so those are left out here (test_suites_vblade runs them with restarts)
    report = tmp_path / "fleet"
    got = aoeconform("run", "--target", vblade_lab.target,
                     "--target", "bundled", "--target", "bundled:flush-status-zero", "--workers", "3", "--allow-write",
                     "--exclude", "mask/*", "--report-dir", str(report), "--seed", "1")
    assert got.returncode == 1, got.stdout[-3000:] + got.stderr
    with open(report / "report.json") as f:
        doc = json.load(f)
    vb, ref, quirky = doc["targets"]
    assert vb["identify"]["model"] != ref["identify"]["model"] and vb["firmware"] is not None
    rows = {c["id"]: c["outcomes"] for c in doc["cases"]}
    assert rows["ata/flush/e7-status-drdy"] == {vb["label"]: "failed", ref["label"]: "passed", quirky["label"]: "failed"}
    assert rows["header/padding/config-reply"][vb["label"]] == "failed"
    assert rows["header/padding/config-reply"][ref["label"]] == "passed"
    assert rows["ata/read-ext/one-sector"] == {vb["label"]: "passed", ref["label"]: "passed", quirky["label"]: "passed"}


BASIC = os.path.join(ROOT, "tests", "suites", "basic.yaml")
FAILING = ("failed", "error", "timeout")


def test_maxfail_counts_failures_over_the_fleet_and_reports_what_did_not_run(tmp_path):
    """--maxfail N with several targets: after the Nth failing case in total no
    case is begun on any target; each target's reports and the fleet's rows say
    what did not run; the exit status is 1, as for a single run cut short."""
    quirky = ["--target", "bundled:stale-read-buffer"]
    common = [BASIC, "--bundled", "loopback", "--seed", "5"]
    whole = tmp_path / "whole"
    got = aoeconform("run", *common, "--report-dir", str(whole), *quirky * 2)
    assert got.returncode == 1, got.stdout + got.stderr
    full = outcomes(whole / "targets" / "bundled_stale-read-buffer")
    first_failures = [i for i, o in full.items() if o in FAILING]
    assert len(first_failures) >= 3 and len(full) == 10

    # one worker: the targets one after the other, so where it stops is known
    cut = tmp_path / "cut"
    got = aoeconform("run", *common, "--report-dir", str(cut), *quirky * 2, "--maxfail", "2", "--workers", "1")
    assert got.returncode == 1, got.stdout + got.stderr
    assert "--maxfail 2 reached at [bundled:stale-read-buffer]" in got.stderr and "Traceback" not in got.stderr
    with open(cut / "report.json") as f:
        doc = json.load(f)
    first, second = doc["targets"]
    ran = outcomes(cut / first["report_dir"])
    assert list(ran)[-1] == first_failures[1] and [i for i, o in ran.items() if o in FAILING] == first_failures[:2]
    assert outcomes(cut / second["report_dir"]) == {}  # never begun: its target was not even started
    assert second["description"] == ""
    for target, count in ((first, len(ran)), (second, 0)):
        assert target["stopped"]["reason"] == "maxfail", target
        assert f"stopped after {count} of 10 cases against this target" in target["stopped"]["message"]
        with open(cut / target["report_dir"] / "report.json") as f:
            assert json.load(f)["run"]["stopped"] == target["stopped"]
        junit = (cut / target["report_dir"] / "junit.xml").read_text()
        assert 'type="maxfail"' in junit and "<error" not in junit
    assert f"{10 - len(ran)} not run" in got.stdout and "10 not run" in got.stdout
    rows = {row["id"]: row["outcomes"] for row in doc["cases"]}
    assert all(o[second["label"]] == "not run" for o in rows.values())
    assert sum(o[first["label"]] == "not run" for o in rows.values()) == 10 - len(ran)
    assert "stopped early (maxfail)" in (cut / "report.html").read_text()

    # two workers at once: the count is over both, so at most the case in
    # flight on the other worker fails after the second
    both = tmp_path / "both"
    got = aoeconform("run", *common, "--report-dir", str(both), *quirky * 2, "--maxfail", "2", "--workers", "2")
    assert got.returncode == 1, got.stdout + got.stderr
    with open(both / "report.json") as f:
        doc = json.load(f)
    per_target = [outcomes(both / t["report_dir"]) for t in doc["targets"]]
    failing = sum(o in FAILING for results in per_target for o in results.values())
    assert 2 <= failing <= 3, per_target
    assert sum(len(r) for r in per_target) < 20
    for target, results in zip(doc["targets"], per_target):
        assert (target["stopped"] or {}).get("reason") == ("maxfail" if len(results) < 10 else None)

    # a limit never reached changes nothing
    clean = tmp_path / "clean"
    got = aoeconform("run", *common, "--report-dir", str(clean), "--target", "bundled", "--target", "bundled", "--maxfail", "1")
    assert got.returncode == 0, got.stdout + got.stderr
    with open(clean / "report.json") as f:
        assert [t["stopped"] for t in json.load(f)["targets"]] == [None, None]
