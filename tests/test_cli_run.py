"""Exit statuses and selection of `aoeconform run`, `list` and `selftest`."""

import json
import os

from aoeconform.cli import main

HERE = os.path.dirname(__file__)
FIXTURE = os.path.join(HERE, "suites", "basic.yaml")


def run(tmp_path, *extra):
    return main(["run", FIXTURE, "--report-dir", str(tmp_path), "--bundled", "loopback", *extra])


def test_clean_run_exits_0(tmp_path, capsys):
    assert run(tmp_path) == 0
    out = capsys.readouterr().out
    assert "10 passed" in out and "exchanges/s" in out


def test_in_memory_thread_target(tmp_path):
    assert main(["run", FIXTURE, "--report-dir", str(tmp_path), "--bundled", "memory"]) == 0


def test_must_failure_exits_1(tmp_path):
    assert run(tmp_path, "--quirk", "wrong-shelf") == 1


def test_should_failure_exits_0_unless_strict(tmp_path):
    # basic/header/unknown-command is SHOULD and accepts silence: use an expectation that cannot hold instead
    args = ["--select", "basic/async/*", "--quirk", "async-write-lost"]
    assert run(tmp_path, *args) == 0
    assert run(tmp_path, *args, "--strict") == 1


def test_expectations_file_turns_failure_into_xfail(tmp_path):
    exp = tmp_path / "exp.yaml"
    exp.write_text("basic/header/wrong-shelf: this target answers every shelf\n")
    assert run(tmp_path, "--quirk", "wrong-shelf", "--expectations", str(exp)) == 0
    doc = json.loads((tmp_path / "report.json").read_text())
    assert doc["summary"]["xfailed"] == 1
    # the same expectation on a clean target is an unexpected pass: only --strict minds
    assert run(tmp_path, "--expectations", str(exp)) == 0
    assert run(tmp_path, "--expectations", str(exp), "--strict") == 1


def test_selection_happens_before_sending(tmp_path):
    assert run(tmp_path, "--select", "basic/config/*", "--exclude", "*/set-and-restore") == 0
    doc = json.loads((tmp_path / "report.json").read_text())
    assert [c["id"] for c in doc["cases"]] == ["basic/config/read"]
    assert run(tmp_path, "-k", "ata and not write") == 0
    doc = json.loads((tmp_path / "report.json").read_text())
    assert {c["id"] for c in doc["cases"]} == {"basic/ata/read-one"}


def test_no_allow_write_skips(tmp_path):
    assert run(tmp_path, "--no-allow-write") == 0
    doc = json.loads((tmp_path / "report.json").read_text())
    skipped = {c["id"]: c["skip_reason"] for c in doc["cases"] if c["outcome"] == "skipped"}
    assert skipped["basic/ata/write-read"] == "not_permitted"


def test_usage_errors_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("suite: b\ncases:\n  - id: b/x\n    requirement: r\n    section: \"1\"\n    steps:\n      - teleport: {}\n")
    assert main(["run", str(bad), "--report-dir", str(tmp_path), "--bundled", "loopback"]) == 2
    assert "bad.yaml:7:" in capsys.readouterr().err
    assert run(tmp_path, "--select", "nothing/*") == 2
    assert run(tmp_path, "--lba-window", "zz") == 2
    assert run(tmp_path, "-k", "ata and (") == 2
    assert main(["run", FIXTURE, "--target", "no such if"]) == 2


# exit 3 for a target that never answers: tests/test_cli_gate.py (with the reports it leaves)


def test_list(capsys):
    assert main(["list", FIXTURE, "-k", "MUST and config"]) == 0
    out = capsys.readouterr().out
    assert "basic/config/read" in out and "basic/header/unknown-command" not in out
    assert main(["list", FIXTURE, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {"id", "level", "section", "requirement"} <= set(listed[0])


def test_selftest_on_fixture_with_one_quirk(capsys):
    assert main(["selftest", FIXTURE, "--quirk", "stale-read-buffer", "--json", "-j", "1"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert "basic/ata/write-read" in doc["quirks"]["stale-read-buffer"]["caught_by"]


def test_selftest_uncaught_quirk_exits_1(capsys):
    assert main(["selftest", FIXTURE, "--quirk", "check-power-wrong", "-j", "1"]) == 1
    assert "caught by no case" in capsys.readouterr().out


def test_start_after_resumes_behind_the_named_case(tmp_path, capsys):
    assert run(tmp_path) == 0
    every = [c["id"] for c in json.loads((tmp_path / "report.json").read_text())["cases"]]
    assert run(tmp_path, "--start-after", every[2]) == 0
    resumed = [c["id"] for c in json.loads((tmp_path / "report.json").read_text())["cases"]]
    assert resumed == every[3:]
    assert run(tmp_path, "--start-after", "basic/no-such-case") == 2
    assert "--start-after basic/no-such-case" in capsys.readouterr().err
