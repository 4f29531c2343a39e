"""A CI gate always leaves its evidence: whatever ends a run (no target,
Ctrl-C, SIGTERM) the report directory holds report.json and junit.xml, and
input mistakes are usage errors (exit 2) found before anything is sent."""

import json
import os
import signal
import xml.etree.ElementTree as ET

import pytest

from aoeconform.cli import main
from sarif_check import check_sarif_file

HERE = os.path.dirname(__file__)
FIXTURE = os.path.join(HERE, "suites", "basic.yaml")


def junit_errors(report_dir):
    root = ET.parse(os.path.join(report_dir, "junit.xml")).getroot()
    return root, root.findall(".//testcase/error")


def test_unreachable_lab_target_leaves_reports(make_lab, tmp_path, capsys):
    """A lab interface with nothing on its other end: exit 3, and the reports say why."""
    lab = make_lab()
    status = main(["run", FIXTURE, "--target", lab.host_if, "--report-dir", str(tmp_path)])
    assert status == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no AoE target answered" in err
    doc = json.loads((tmp_path / "report.json").read_text())
    assert doc["run"]["stopped"]["reason"] == "target_unreachable"
    assert "no AoE target answered" in doc["run"]["stopped"]["message"]
    assert doc["cases"] == [] and doc["manifest"]["target_description"] == lab.host_if
    root, errors = junit_errors(tmp_path)
    assert len(root.findall(".//testcase")) == 1 and len(errors) == 1
    assert errors[0].get("type") == "target_unreachable" and lab.host_if in errors[0].get("message")
    assert main(["run", FIXTURE, "--last-failed", str(tmp_path), "--report-dir", str(tmp_path / "again")]) == 2
    assert "no case failed or errored in that run (0 cases); it stopped early (target_unreachable" in capsys.readouterr().err
    sarif = check_sarif_file(tmp_path / "report.sarif")
    invocation = sarif["runs"][0]["invocations"][0]
    assert invocation["executionSuccessful"] is False
    assert invocation["toolExecutionNotifications"][0]["descriptor"]["id"] == "target_unreachable"


def test_silent_bundled_target_leaves_reports(tmp_path, monkeypatch):
    """The target is found but never answers Query Config (probe): exit 3, reports written."""
    from aoeconform.scenario import endpoint

    def silent(*a, **k):
        ep = endpoint.bundled_loopback()
        ep.transport.handler = lambda frame, burst: []
        return ep

    monkeypatch.setattr(endpoint, "bundled", silent)
    assert main(["run", FIXTURE, "--report-dir", str(tmp_path)]) == 3
    doc = json.loads((tmp_path / "report.json").read_text())
    assert doc["run"]["stopped"]["reason"] == "target_unreachable" and "did not answer Query Config" in doc["run"]["stopped"]["message"]
    _, errors = junit_errors(tmp_path)
    assert [e.get("type") for e in errors] == ["target_unreachable"]


def test_sigterm_ends_run_like_ctrl_c(tmp_path, monkeypatch, capsys):
    """A real SIGTERM to this process in the middle of a run: exit 143, reports for what ran."""
    from aoeconform.scenario import engine as engine_module

    original = engine_module.Engine.run_case
    calls = {"n": 0}

    def terminating(self, case, *a, **k):
        calls["n"] += 1
        if calls["n"] == 4:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, case, *a, **k)

    before = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(engine_module.Engine, "run_case", terminating)
    status = main(["run", FIXTURE, "--report-dir", str(tmp_path), "--bundled", "loopback"])
    assert status == 143
    assert signal.getsignal(signal.SIGTERM) is before  # handler put back
    doc = json.loads((tmp_path / "report.json").read_text())
    assert len(doc["cases"]) == 3 and doc["run"]["interrupted"] is True
    assert doc["run"]["stopped"]["reason"] == "terminated"
    assert f"--start-after {doc['cases'][-1]['id']}" in doc["run"]["stopped"]["message"]
    root, errors = junit_errors(tmp_path)
    assert len(root.findall(".//testcase")) == 4 and [e.get("type") for e in errors] == ["terminated"]
    assert "terminated" in capsys.readouterr().err


def test_unwritable_report_dir_is_a_usage_error_before_sending(tmp_path, monkeypatch, capsys):
    """Root ignores permission bits, so the unwritable places are a path under
    a regular file, /proc and /sys. Nothing may be sent: the endpoint is never opened."""
    from aoeconform.cli import run as run_module

    opened = []
    monkeypatch.setattr(run_module, "open_endpoint", lambda args: opened.append(args) or 1 / 0)
    regular = tmp_path / "a-file"
    regular.write_text("")
    for bad in (str(regular / "reports"), str(regular), "/proc/aoeconform-reports", "/sys/aoeconform-reports"):
        assert main(["run", FIXTURE, "--report-dir", bad, "--bundled", "loopback"]) == 2, bad
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"--report-dir {bad}: cannot write reports there" in err
        assert "internal error" not in err
    (tmp_path / "r" / "junit.xml").mkdir(parents=True)
    assert main(["run", FIXTURE, "--report-dir", str(tmp_path / "r"), "--bundled", "loopback"]) == 2
    assert "junit.xml there is a directory" in capsys.readouterr().err
    assert opened == []


def _suite(name: str, case: str = "x") -> str:
    return (f"suite: {name}\ncases:\n  - id: {name}/{case}\n    requirement: r\n    section: \"3.1\"\n"
            f"    steps:\n      - send: {{command: config, config: {{ccmd: 0}}}}\n        expect: {{reply: {{header: {{response: true}}}}}}\n")


def test_run_takes_a_directory_leaving_out_expectations(tmp_path, capsys):
    d = tmp_path / "suites"
    (d / "more").mkdir(parents=True)
    (d / "expectations").mkdir()
    (d / "a.yaml").write_text(_suite("a"))
    (d / "more" / "b.yml").write_text(_suite("b"))
    (d / "expectations" / "vendor.yaml").write_text("a/x: broken on purpose\n")
    (d / "known.yaml").write_text("# beside the suites\nb/x: the vendor says so\nb/*: globs too\n")
    (d / "notes.txt").write_text("not a suite")
    assert main(["list", str(d), "--json"]) == 0
    assert [c["id"] for c in json.loads(capsys.readouterr().out)] == ["a/x", "b/x"]
    reports = tmp_path / "reports"
    assert main(["run", str(d), "--report-dir", str(reports), "--bundled", "loopback"]) == 0
    doc = json.loads((reports / "report.json").read_text())
    assert sorted(c["id"] for c in doc["cases"]) == ["a/x", "b/x"]
    # named on its own, an expectations file is a mistake worth one line
    assert main(["list", str(d / "known.yaml")]) == 2
    assert "known.yaml:1: an expectations file" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["list", str(tmp_path / "empty")]) == 2
    assert "no .yaml suite files" in capsys.readouterr().err


def test_shipped_suites_directory_runs_as_the_default(capsys):
    from aoeconform.scenario.loader import shipped_suite_paths, shipped_suites_dir

    assert main(["list", "--json"]) == 0
    default = json.loads(capsys.readouterr().out)
    assert main(["list", shipped_suites_dir(), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == default
    assert not any("expectations" in p for p in shipped_suite_paths())


HEAD = 'suite: a\ncases:\n  - id: a/x\n'
BROKEN_YAML = [
    # (name, text, line where the problem starts, words the message holds)
    ("unclosed-quote-at-end", HEAD + '    requirement: "never closed\n', 4, "quoted scalar"),
    ("unclosed-quote-swallows-lines", HEAD.replace("a/x", '"a/x') + '    requirement: r\n    section: "3.1"\n    steps: []\n', 3,
     "closing quote missing"),
    ("unclosed-bracket", HEAD + '    requirement: r\n    tags: [one, two\n    section: "3.1"\n    steps: []\n', 5, "flow sequence"),
    ("unclosed-brace", HEAD + '    requirement: {a: 1\n    section: "3.1"\n\n\n', 4, "flow mapping"),
    ("bad-indent", HEAD + '    requirement: r\n   section: "3.1"\n    steps: []\n', 5, "indentation"),
    ("tab", HEAD + '    requirement: r\n\tsteps: []\n', 5, "tab character"),
    ("colon-in-value", HEAD + '    requirement: r: s\n', 4, "mapping values"),
]


def test_yaml_syntax_errors_point_at_where_the_problem_starts(tmp_path, capsys):
    for name, text, line, words in BROKEN_YAML:
        path = tmp_path / f"{name}.yaml"
        path.write_text(text)
        assert main(["list", str(path)]) == 2, name
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith(f"{path}:{line}: YAML syntax:") and words in err[-1], (name, err)
    # expectations files share the same reading
    exp = tmp_path / "exp.yaml"
    exp.write_text("basic/config/read: fine\nbasic/ata/read-one: [unclosed\nbasic/x: y\n")
    assert main(["run", FIXTURE, "--expectations", str(exp), "--bundled", "loopback", "--report-dir", str(tmp_path / "r")]) == 2
    assert f"{exp}:2: YAML syntax:" in capsys.readouterr().err


def _run(report_dir, *extra):
    return main(["run", FIXTURE, "--report-dir", str(report_dir), "--bundled", "loopback", "--seed", "5", *extra])


def _report(report_dir):
    return json.loads((report_dir / "report.json").read_text())


def test_maxfail_stops_after_n_failing_cases(tmp_path, capsys):
    whole = tmp_path / "whole"
    assert _run(whole, "--quirk", "stale-read-buffer") == 1
    failing = [c["id"] for c in _report(whole)["cases"] if c["outcome"] in ("failed", "error", "timeout")]
    assert len(failing) >= 3
    cut = tmp_path / "cut"
    assert _run(cut, "--quirk", "stale-read-buffer", "--maxfail", "2") == 1
    doc = _report(cut)
    assert doc["cases"][-1]["id"] == failing[1] and len(doc["cases"]) < len(_report(whole)["cases"])
    assert doc["run"]["stopped"]["reason"] == "maxfail" and "--maxfail 2 reached" in doc["run"]["stopped"]["message"]
    assert "--maxfail 2 reached" in capsys.readouterr().err
    root = ET.parse(cut / "junit.xml").getroot()
    skipped = root.findall(".//testcase/skipped[@type='maxfail']")
    assert len(skipped) == 1 and not root.findall(".//testcase/error")
    with pytest.raises(SystemExit) as exc:
        _run(cut, "--maxfail", "0")
    assert exc.value.code == 2


def test_last_failed_reruns_what_failed(tmp_path, capsys):
    first = tmp_path / "first"
    assert _run(first, "--quirk", "stale-read-buffer") == 1
    failing = sorted({c["id"] for c in _report(first)["cases"] if c["outcome"] in ("failed", "error", "timeout")})
    again = tmp_path / "again"
    assert _run(again, "--quirk", "stale-read-buffer", "--last-failed", str(first)) == 1
    assert sorted(c["id"] for c in _report(again)["cases"]) == failing
    # the same directory for both: read before it is overwritten; fixed target, all pass
    assert _run(first, "--last-failed", str(first)) == 0
    assert sorted(c["id"] for c in _report(first)["cases"]) == failing
    # nothing failed there now, no report at all, not a report
    assert _run(tmp_path / "x", "--last-failed", str(first)) == 2
    assert "no case failed or errored in that run" in capsys.readouterr().err
    assert _run(tmp_path / "x", "--last-failed", str(tmp_path / "nowhere")) == 2
    assert "no report.json there" in capsys.readouterr().err
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "report.json").write_text("{not json")
    assert _run(tmp_path / "x", "--last-failed", str(tmp_path / "junk")) == 2
    assert "is not a report of aoeconform run" in capsys.readouterr().err
    # other selection narrows it further; the list command takes it too
    assert main(["list", FIXTURE, "--last-failed", str(again), "--select", "basic/ata/*", "--json"]) == 0
    narrowed = [c["id"] for c in json.loads(capsys.readouterr().out)]
    assert narrowed == [i for i in failing if i.startswith("basic/ata/")] and 0 < len(narrowed) < len(failing)


def test_k_matches_whatever_the_case(capsys):
    def ids(expr):
        assert main(["list", FIXTURE, "-k", expr, "--json"]) == 0
        return [c["id"] for c in json.loads(capsys.readouterr().out)]

    lower = ids("ata and not write")
    assert lower and ids("ATA AND NOT Write") == lower
    assert ids("must") == ids("MUST") and ids("Basic/Config/*") == ids("basic/config/*") != []
    assert ids("S3.1") == ids("s3.1") != []


def test_exit_statuses_are_listed_in_help(capsys):
    import re

    from aoeconform import errors

    statuses = {v for k, v in vars(errors).items() if k.startswith("EXIT_") and isinstance(v, int)}
    assert statuses >= {0, 1, 2, 3, 4, 130, 143}
    for argv in (["--help"], ["run", "--help"]):
        try:
            main(argv)
        except SystemExit as exc:
            assert exc.code == 0
        out = capsys.readouterr().out
        listed = {int(n) for n in re.findall(r"^  (\d+) ", out.split("exit status:")[1], re.M)}
        assert listed == statuses, argv


def _run_output(argv, tty: bool) -> str:
    """What `aoeconform run` prints to a pipe, or to a pseudo-terminal."""
    import pty
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = os.path.dirname(HERE) + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, "-m", "aoeconform", *argv]
    if not tty:
        return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, timeout=120).stdout.decode()
    leader, follower = pty.openpty()
    proc = subprocess.Popen(cmd, stdout=follower, stderr=subprocess.DEVNULL, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    proc.wait(timeout=120)
    return b"".join(chunks).decode()


def test_output_without_a_terminal_is_what_help_says(tmp_path, capsys):
    """run --help: without a terminal, a plain line per case and no control
    characters; on one, a progress bar and only the failing cases."""
    try:
        main(["run", "--help"])
    except SystemExit:
        pass
    helped = " ".join(capsys.readouterr().out.split())
    assert "Without one (stdout a pipe or a file), or with CI=true: a plain line per case" in helped
    assert "no progress bar and no control characters" in helped
    argv = ["run", FIXTURE, "--bundled", "loopback", "--quirk", "stale-read-buffer", "--report-dir", str(tmp_path)]
    piped = _run_output(argv, tty=False)
    assert "\r" not in piped and "\x1b" not in piped
    lines = [line for line in piped.splitlines() if line.split(" ")[0] in ("PASS", "FAIL", "ERROR", "SKIP", "TIMEOUT")]
    assert len(lines) == 10 and any(line.startswith("PASS") for line in lines)
    on_tty = _run_output(argv, tty=True)
    assert "\x1b[K" in on_tty and "FAIL" in on_tty
    assert "PASS    basic/" not in on_tty  # passes only move the bar
