"""The pytest plugin (aoeconform.pytest_plugin): YAML cases as pytest items,
outcomes one to one, markers, JUnit properties, xdist by target, fixtures,
and the vendor example in docs/examples.

Each test runs pytest in a subprocess in a fresh directory, the way a vendor
would (``-p aoeconform.pytest_plugin`` is a no-op where the entry point is
installed, and loads the plugin where it is not).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET

import pytest

from conftest import need_root

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "docs", "examples", "test_vendor_example.py")
LOOPBACK = ("--aoe-bundled-mode", "loopback")


def pytest_run(cwd, *args, timeout=240):
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("PYTEST_ADDOPTS", None)
    # pytest prints whole summary lines when it sees CI (or BUILD_NUMBER): the
    # inner run's output must not depend on whether the outer one runs in CI
    env.pop("CI", None)
    env.pop("BUILD_NUMBER", None)
    cmd = [sys.executable, "-m", "pytest", "-p", "aoeconform.pytest_plugin", "-p", "no:cacheprovider",
           "-W", "error::pytest.PytestUnknownMarkWarning", *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def shipped_case_count() -> int:
    from aoeconform.scenario.loader import all_cases, load_suites, shipped_suite_paths

    return len(all_cases(load_suites(shipped_suite_paths())))


def outcomes(text: str) -> dict:
    """'PASSED ata/x' lines of -rA into {case name: outcome}."""
    out = {}
    for m in re.finditer(r"^(PASSED|FAILED|SKIPPED|XFAIL|XPASS|ERROR) (\S+)", text, re.M):
        out[m.group(2).split("::")[-1]] = m.group(1)
    return out


def test_each_case_is_an_item_named_by_its_id(tmp_path):
    got = pytest_run(tmp_path, "--aoe-bundled", "--collect-only", "-q")
    assert got.returncode == 0, got.stdout + got.stderr
    ids = [line for line in got.stdout.splitlines() if "::" in line]
    assert len(ids) == shipped_case_count() and len(ids) >= 280
    assert any(i.endswith("ata.yaml::ata/flush/e7-status-drdy") for i in ids)
    two = pytest_run(tmp_path, "--aoe-target", "bundled", "--aoe-target", "bundled", "--collect-only", "-q", "-k", "e7-status")
    names = sorted(line.split("::")[-1] for line in two.stdout.splitlines() if "::" in line)
    assert names == ["ata/flush/e7-status-drdy[bundled#2]", "ata/flush/e7-status-drdy[bundled]"]


def test_outcomes_map_one_to_one(tmp_path):
    expectations = tmp_path / "expect.yaml"
    expectations.write_text("ata/flush/e7-status-drdy: answers 0x00\nata/read-ext/one-sector: never fails\n")
    common = ("--aoe-bundled", *LOOPBACK, "--aoe-quirk", "flush-status-zero", "--aoe-expectations", str(expectations), "-rA")
    got = pytest_run(tmp_path, *common, "-k", "flush/e or read-ext/one-sector or readonly/write-refused")
    assert got.returncode == 1, got.stdout + got.stderr
    result = outcomes(got.stdout)
    assert result["ata/flush/e7-status-drdy"] == "XFAIL"
    assert result["ata/flush/ea-status-drdy"] == "FAILED"
    assert result["ata/read-ext/one-sector"] == "XPASS"
    # the failure: case, level and section, each differing field, once
    assert "ata/flush/ea-status-drdy [SHOULD §3.1]" in got.stdout
    assert got.stdout.count("ata.cmd_status: expected 0x40, got 0x00") == 1
    strict = pytest_run(tmp_path, *common, "--aoe-strict", "-k", "read-ext/one-sector")
    assert strict.returncode == 1 and "[XPASS(strict)] never fails" in strict.stdout, strict.stdout


def test_skip_carries_the_typed_reason(tmp_path):
    got = pytest_run(tmp_path, "--aoe-bundled", *LOOPBACK, "-rs", "-k", "readonly")
    assert got.returncode == 0, got.stdout
    skips = re.findall(r"^SKIPPED \[1\] (\S+): (.*)$", got.stdout, re.M)
    assert skips and all(reason == "unsupported: needs readonly" for _, reason in skips), got.stdout
    assert all(re.search(r"suites/ata\.yaml:\d+$", where) for where, _ in skips)  # where the case is written


def test_levels_and_tags_are_markers(tmp_path):
    should = pytest_run(tmp_path, "--aoe-bundled", "--collect-only", "-q", "-m", "SHOULD and flush")
    names = sorted(line.split("::")[-1] for line in should.stdout.splitlines() if "::" in line)
    assert names == ["ata/flush/e7-status-drdy", "ata/flush/ea-status-drdy"], should.stdout + should.stderr
    must = pytest_run(tmp_path, "--aoe-bundled", "--collect-only", "-q", "-m", "MUST and unknown-command")
    assert must.returncode == 0 and must.stdout.count("header/unknown-command/") >= 2, must.stdout + must.stderr


def test_junit_carries_case_ids_and_rules(tmp_path):
    xml_path = tmp_path / "junit.xml"
    got = pytest_run(tmp_path, "--aoe-bundled", *LOOPBACK, "-k", "flush/e7 or unknown-command", f"--junitxml={xml_path}")
    assert got.returncode == 0, got.stdout
    cases = ET.parse(xml_path).getroot().iter("testcase")
    props = {c.get("name"): {p.get("name"): p.get("value") for p in c.iter("property")} for c in cases}
    assert props["ata/flush/e7-status-drdy"] == {"case_id": "ata/flush/e7-status-drdy", "rule": "31", "section": "3.1",
                                                "level": "SHOULD", "target": "bundled", "outcome": "passed"}
    assert all(p["case_id"] == name and p["rule"] for name, p in props.items())


VENDOR_SUITE = """\
suite: vendor
description: one check of our own
cases:
  - id: vendor/query-config/answered
    requirement: Query Config is answered.
    section: "3.2"
    level: MUST
    rule: [34]
    steps:
      - send: {command: config}
        expect: {reply: {header: {error_flag: false}}}
"""


def test_vendor_tree_collects_its_suites_only_with_aoe_options(tmp_path):
    tree = tmp_path / "vendor_tests"
    tree.mkdir()
    (tree / "test_plain.py").write_text("def test_plain():\n    assert True\n")
    (tree / "our_suite.yaml").write_text(VENDOR_SUITE)
    (tree / "deploy.yaml").write_text("cases: [a, b]\nhosts: [x]\n")  # YAML, not a suite
    (tree / "notes.yaml").write_text("suite: not really\n")
    plain = pytest_run(tmp_path, "vendor_tests", "--collect-only", "-q")
    assert [line for line in plain.stdout.splitlines() if "::" in line] == ["vendor_tests/test_plain.py::test_plain"]
    with_aoe = pytest_run(tmp_path, "vendor_tests", "--aoe-bundled", *LOOPBACK, "-rA")
    assert with_aoe.returncode == 0, with_aoe.stdout + with_aoe.stderr
    assert outcomes(with_aoe.stdout) == {"test_plain": "PASSED", "vendor/query-config/answered": "PASSED"}


def test_bad_target_is_one_line_usage_error(tmp_path):
    got = pytest_run(tmp_path, "--aoe-target", "bad iface")
    assert got.returncode == 4
    assert "aoeconform: --aoe-target 'bad iface': 'bad iface' is not an interface name" in got.stderr
    assert "Traceback" not in got.stderr


def test_vendor_example_passes_and_fails_readably_against_a_quirk(tmp_path):
    ok = pytest_run(tmp_path, EXAMPLE, *LOOPBACK)
    assert ok.returncode == 0 and "3 passed" in ok.stdout, ok.stdout + ok.stderr
    bad = pytest_run(tmp_path, EXAMPLE, "--aoe-bundled", *LOOPBACK, "--aoe-quirk", "flush-status-zero")
    assert bad.returncode == 1 and "1 failed, 2 passed" in bad.stdout, bad.stdout
    assert re.search(r"ReplyMismatch: reply to tag 0x[0-9a-f]{8} from bundled does not meet the expectation:\n"
                     r"E\s+ata\.cmd_status: expected bits 0x40 set and bits 0xa9 clear, got 0x00\n", bad.stdout), bad.stdout
    assert bad.stdout.count("got 0x00") == 1  # printed once
    assert "handle.py" not in bad.stdout  # the traceback stops at the vendor's line


FIXTURE_TESTS = """\
import os
import pytest

def test_reference_target_with_a_quirk(aoe_reference_target):
    pass

@pytest.mark.parametrize("aoe_reference_target", [["tag-bit31-cleared"]], indirect=True)
def test_quirk_param(aoe_reference_target):
    assert aoe_reference_target.label == "bundled:tag-bit31-cleared"

def test_initiator_through_loss(aoe_target, aoe_initiator):
    ini = aoe_initiator(loss=0.05, seed=3)
    data = bytes(range(256)) * 2 * 64
    ini.write(100, data)
    assert ini.read(100, 64) == data

def test_lab_goes_down_after_a_failure(aoe_lab, tmp_path_factory):
    with open(os.environ["LAB_NAME_FILE"], "w") as f:
        f.write(aoe_lab.netns)
    assert False, "failing on purpose"

def test_vblade(aoe_vblade, aoe_initiator):
    from aoeconform.scenario import endpoint as ep
    from aoeconform.scenario.handle import TargetHandle, run_options
    e = ep.external(aoe_vblade.target)
    with TargetHandle(e, run_options(e)) as handle:
        ini = aoe_initiator(handle)
        assert ini.read(0, 8) == aoe_vblade.initial_data[:4096]
"""


def test_fixtures(tmp_path):
    need_root()
    (tmp_path / "test_fixtures.py").write_text(FIXTURE_TESTS)
    name_file = tmp_path / "lab-name"
    os.environ["LAB_NAME_FILE"] = str(name_file)
    try:
        got = pytest_run(tmp_path, "test_fixtures.py", "-rA")
    finally:
        del os.environ["LAB_NAME_FILE"]
    result = outcomes(got.stdout)
    assert result.pop("test_lab_goes_down_after_a_failure") == "FAILED", got.stdout
    assert set(result.values()) == {"PASSED"} and len(result) == 4, got.stdout + got.stderr
    netns = name_file.read_text()
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert netns.startswith("aoec") and netns not in listing


def test_xdist_gives_each_target_one_worker(tmp_path):
    """Two bundled targets in lab namespaces, -n 2: every case of a target runs on
    one worker, and the outcomes equal a serial run's."""
    need_root()
    args = ("--aoe-target", "bundled", "--aoe-target", "bundled:flush-status-zero", "-k", "status-drdy or config/set/", "-rA")
    serial = pytest_run(tmp_path, *args)
    parallel = pytest_run(tmp_path, *args, "-n", "2", "-v")
    assert outcomes(parallel.stdout) == outcomes(serial.stdout) and len(outcomes(serial.stdout)) >= 10, parallel.stdout
    workers = {}
    for m in re.finditer(r"^\[(gw\d)\] .*?(?:PASSED|FAILED|SKIPPED) \S+::\S+\[(bundled[^\]]*)\]", parallel.stdout, re.M):
        workers.setdefault(m.group(2), set()).add(m.group(1))
    assert set(workers) == {"bundled", "bundled:flush-status-zero"}, parallel.stdout
    assert all(len(w) == 1 for w in workers.values()), workers


def test_execnet_gateways_stand_in_for_hosts(tmp_path):
    """`--tx popen//id=HOST` gateways as two hosts; TARGET@HOST runs only on that
    host's worker, and the controller's JUnit file has every host's results."""
    xml_path = tmp_path / "junit.xml"
    got = pytest_run(tmp_path, "--aoe-target", "bundled@hostA", "--aoe-target", "bundled:flush-status-zero@hostB",
                     "--aoe-target", "bundled@hostB", *LOOPBACK, "--dist", "load",
                     "--tx", "popen//id=hostA", "--tx", "popen//id=hostB", "-k", "status-drdy or config/set/", "-v",
                     f"--junitxml={xml_path}")
    assert got.returncode == 1, got.stdout + got.stderr
    ran_on = {}
    for m in re.finditer(r"^\[(host\w)\] .*?(?:PASSED|FAILED|SKIPPED) \S+::\S+\[([^\]]+)\]", got.stdout, re.M):
        ran_on.setdefault(m.group(2), set()).add(m.group(1))
    assert ran_on == {"bundled@hostA": {"hostA"}, "bundled:flush-status-zero@hostB": {"hostB"}, "bundled@hostB": {"hostB"}}
    cases = list(ET.parse(xml_path).getroot().iter("testcase"))
    targets = {p.get("value") for c in cases for p in c.iter("property") if p.get("name") == "target"}
    assert targets == set(ran_on) and len(cases) >= 9
    failed = [c.get("name") for c in cases if c.find("failure") is not None]
    assert sorted(failed) == ["ata/flush/e7-status-drdy[bundled:flush-status-zero@hostB]",
                              "ata/flush/ea-status-drdy[bundled:flush-status-zero@hostB]"]


def test_host_pinning_needs_the_plugin(tmp_path):
    got = subprocess.run([sys.executable, "-m", "aoeconform", "run", "--target", "bundled@hostA", "--target", "bundled",
                          "--report-dir", str(tmp_path / "r")], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")})
    assert got.returncode == 2 and "TARGET@HOST names the xdist gateway" in got.stderr, got.stderr


def _aoeconform_run(cwd, *args):
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "aoeconform", "run", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=240, env=env)


def _report_outcomes(directory) -> dict:
    import json

    with open(os.path.join(directory, "report.json")) as f:
        return {c["id"]: (c["outcome"], c.get("expected_failure")) for c in json.load(f)["cases"]}


def test_report_dir_writes_what_aoeconform_run_writes(tmp_path):
    """--aoe-report-dir: `aoeconform run`'s reports of the cases pytest ran, with the
    outcomes `aoeconform run` gives them; under xdist the workers' results meet
    in the controller's reports, one directory per target and the fleet's report."""
    from sarif_check import check_sarif_file

    expectations = tmp_path / "expect.yaml"
    expectations.write_text("ata/flush/e7-status-drdy: answers 0x00\n")
    suites = [os.path.join(ROOT, "suites", name) for name in ("ata.yaml", "header.yaml")]
    pick = ("-k", "status-drdy or unknown-command", *(arg for path in suites for arg in ("--aoe-suite", path)))
    got = pytest_run(tmp_path, "--aoe-bundled", *LOOPBACK, "--aoe-quirk", "flush-status-zero", *pick,
                     "--aoe-expectations", str(expectations), "--aoe-report-dir", "one")
    assert got.returncode == 1, got.stdout + got.stderr
    one = tmp_path / "one"
    for name in ("report.json", "junit.xml", "report.html", "report.sarif", "manifest.json",
                 "failures/ata__flush__ea-status-drdy.pcap", "failures/ata__flush__ea-status-drdy.replay.json"):
        assert (one / name).is_file(), name
    check_sarif_file(one / "report.sarif")
    run_pick = [arg for case_id in _report_outcomes(one) for arg in ("--select", case_id)]  # what pytest ran
    ran = _aoeconform_run(tmp_path, *suites, "--bundled", "loopback", "--quirk", "flush-status-zero", *run_pick,
                          "--expectations", str(expectations), "--report-dir", "ran")
    assert ran.returncode == 0, ran.stdout + ran.stderr  # a SHOULD failure: run does not gate on it, pytest does
    assert _report_outcomes(one) == _report_outcomes(tmp_path / "ran") and len(_report_outcomes(one)) >= 4
    assert _report_outcomes(one)["ata/flush/e7-status-drdy"] == ("xfailed", "answers 0x00")
    assert _report_outcomes(one)["ata/flush/ea-status-drdy"][0] == "failed"

    targets = ("--aoe-target", "bundled", "--aoe-target", "bundled:flush-status-zero", *LOOPBACK)
    got = pytest_run(tmp_path, *targets, *pick, "-n", "2", "--aoe-report-dir", "fleet")
    assert got.returncode == 1, got.stdout + got.stderr
    import json

    with open(tmp_path / "fleet" / "report.json") as f:
        doc = json.load(f)
    assert [t["label"] for t in doc["targets"]] == ["bundled", "bundled:flush-status-zero"] and doc["workers"] == 2
    clean = {i: (o, None) for i, (o, _) in _report_outcomes(tmp_path / "ran").items()}
    clean.update({"ata/flush/e7-status-drdy": ("passed", None), "ata/flush/ea-status-drdy": ("passed", None)})
    quirky = {i: (o, None) for i, (o, _) in _report_outcomes(tmp_path / "ran").items()}
    quirky["ata/flush/e7-status-drdy"] = ("failed", None)
    assert _report_outcomes(tmp_path / "fleet" / doc["targets"][0]["report_dir"]) == clean
    assert _report_outcomes(tmp_path / "fleet" / doc["targets"][1]["report_dir"]) == quirky
    assert (tmp_path / "fleet" / doc["targets"][1]["report_dir"] / "failures" / "ata__flush__e7-status-drdy.replay.json").is_file()
    assert {row["id"] for row in doc["cases"] if row["differs"]} == {"ata/flush/e7-status-drdy", "ata/flush/ea-status-drdy"}

    (tmp_path / "taken").write_text("")
    bad = pytest_run(tmp_path, "--aoe-bundled", "--aoe-suite", suites[0], "--aoe-report-dir", "taken/x", "--collect-only", "-q")
    assert bad.returncode == 4 and "--aoe-report-dir taken/x: cannot write reports there" in bad.stderr, bad.stderr
    assert "Traceback" not in bad.stderr
