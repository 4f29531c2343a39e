"""Reports are produced and parseable: junit.xml, report.json, report.sarif,
report.html, manifest.json, a pcap and a replay file per failure."""

import json
import os
import pathlib
import urllib.parse
import xml.etree.ElementTree as ET

import pytest

from aoeconform.cli import main
from aoeconform.transport.pcap import read_pcap
from sarif_check import check_sarif_file, sarif_problems

FIXTURE = os.path.join(os.path.dirname(__file__), "suites", "basic.yaml")


@pytest.fixture(scope="module")
def failing_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    status = main(["run", FIXTURE, "--report-dir", str(out), "--bundled", "loopback", "--quirk", "stale-read-buffer", "--seed", "11"])
    return status, out


def test_exit_status_is_failure(failing_run):
    assert failing_run[0] == 1


def test_json(failing_run):
    doc = json.loads((failing_run[1] / "report.json").read_text())
    assert set(doc["summary"]) == {"passed", "failed", "errors", "skipped", "xfailed", "xpassed", "timeouts"}
    assert doc["summary"]["failed"] >= 1 and len(doc["cases"]) == 10
    for case in doc["cases"]:
        assert {"id", "requirement", "section", "level", "outcome", "message"} <= set(case)
    failed = [c for c in doc["cases"] if c["outcome"] == "failed"]
    checks = [c for s in failed[0]["steps"] for v in s["verdicts"] for c in v["checks"]]
    assert any(not c["ok"] for c in checks)
    assert doc["run"]["exchanges_per_second"] > 0


def test_junit(failing_run):
    root = ET.parse(failing_run[1] / "junit.xml").getroot()
    cases = root.findall(".//testcase")
    for case in cases:  # relative to the directory the run started in
        assert not os.path.isabs(case.get("file")) and os.path.samefile(case.get("file"), FIXTURE)
    assert len(cases) == 10
    assert int(root.get("failures")) == len(root.findall(".//testcase/failure")) >= 1
    names = {c.get("name") for c in cases}
    assert "basic/ata/write-read" in names


def test_sarif(failing_run):
    doc = check_sarif_file(failing_run[1] / "report.sarif")
    assert doc["version"] == "2.1.0" and "$schema" in doc
    run = doc["runs"][0]
    assert run["tool"]["driver"]["name"] == "aoeconform"
    rule_ids = {r["id"] for r in run["tool"]["driver"]["rules"]}
    assert run["results"]
    for result in run["results"]:
        assert result["ruleId"] in rule_ids
        assert result["level"] in ("error", "warning", "note")
        loc = result["locations"][0]["physicalLocation"]
        assert loc["artifactLocation"]["uri"].endswith("basic.yaml") and loc["region"]["startLine"] >= 1
        # relative to the directory the run started in, whose uri the run gives
        base = run["originalUriBaseIds"][loc["artifactLocation"]["uriBaseId"]]["uri"]
        resolved = urllib.parse.unquote(urllib.parse.urlparse(base + loc["artifactLocation"]["uri"]).path)
        assert os.path.samefile(resolved, FIXTURE)
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"] == pathlib.Path(os.getcwd()).as_uri().rstrip("/") + "/"


def test_report_paths_are_relative(tmp_path, monkeypatch):
    """junit file= and SARIF uris: relative to the directory the run started in,
    suites outside it included (../), and the SARIF base of a suite outside it is
    not the working directory's."""
    from aoeconform.report.formats import relative_source, sarif
    from aoeconform.report.model import RunInfo
    from aoeconform.scenario.results import CaseResult

    work = tmp_path / "checkout"
    (work / "suites").mkdir(parents=True)
    monkeypatch.chdir(work)
    inside = CaseResult("a/x", "r", "1", "MUST", "failed", file="suites/a b.yaml", line=3)
    outside = CaseResult("b/x", "r", "1", "MUST", "failed", file=str(tmp_path / "elsewhere" / "b.yaml"), line=4)
    assert relative_source(inside.file, str(work)) == "suites/a b.yaml"
    assert relative_source(outside.file, str(work)) == "../elsewhere/b.yaml"
    doc = sarif(RunInfo(results=[inside, outside]))
    assert not sarif_problems(doc)
    run = doc["runs"][0]
    locations = [r["locations"][0]["physicalLocation"]["artifactLocation"] for r in run["results"]]
    assert locations[0] == {"uri": "suites/a%20b.yaml", "uriBaseId": "%SRCROOT%"}
    assert locations[1]["uriBaseId"] == "ROOT" and locations[1]["uri"].endswith("elsewhere/b.yaml")
    assert set(run["originalUriBaseIds"]) == {"%SRCROOT%", "ROOT"}
    assert run["invocations"][0]["workingDirectory"]["uri"] == work.as_uri() + "/"
    # and the checker does catch what it is for
    broken = json.loads(json.dumps(doc))
    broken["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"] = {"uri": "/abs/a.yaml"}
    broken["runs"][0]["results"][0]["level"] = "fatal"
    problems = sarif_problems(broken)
    assert any("not relative" in p for p in problems) and any("uriBaseId None" in p for p in problems)
    assert any(p.startswith("schema: runs/0/results/0/level") for p in problems)


def test_html_and_manifest(failing_run):
    html = (failing_run[1] / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "<svg" in html and "basic/ata/write-read" in html
    assert "expected" in html
    manifest = json.loads((failing_run[1] / "manifest.json").read_text())
    for key in ("harness_version", "suites", "interface", "mtu", "target", "seed", "command_line", "start_time", "end_time"):
        assert key in manifest
    assert manifest["seed"] == 11 and manifest["suites"][0]["sha256"]
    assert manifest["target"]["model"]


def test_html_failure_messages_once_timeline_axis_and_filters(failing_run):
    """What can be checked without a browser: each failure's message once,
    a labelled timeline on a time axis, and the filter controls and their data."""
    import html as htmllib
    import re
    from html.parser import HTMLParser

    page = (failing_run[1] / "report.html").read_text()
    doc = json.loads((failing_run[1] / "report.json").read_text())
    failing = [c for c in doc["cases"] if c["outcome"] in ("failed", "error", "timeout")]
    for case in failing:
        assert page.count(htmllib.escape(case["message"])) == 1, case["id"]

    class Tags(HTMLParser):
        def __init__(self):
            super().__init__()
            self.tags, self.text = [], []

        def handle_starttag(self, tag, attrs):
            self.tags.append((tag, dict(attrs)))

    parser = Tags()
    parser.feed(page)
    rows = [a for t, a in parser.tags if t == "tr" and "data-outcomes" in a]
    sections = [a for t, a in parser.tags if t == "section" and "data-outcomes" in a]
    assert len(rows) == len({c["id"] for c in doc["cases"]}) and len(sections) == len(failing)
    assert {o for a in rows for o in a["data-outcomes"].split()} == {c["outcome"] for c in doc["cases"]}
    filters = next(a for t, a in parser.tags if t == "div" and a.get("id") == "filters")
    assert "hidden" in filters  # shown by the script only: no dead controls without it
    ticks = {a["data-outcome"] for t, a in parser.tags if t == "input" and a.get("type") == "checkbox"}
    assert ticks == {c["outcome"] for c in doc["cases"]}
    assert any(t == "input" and a.get("type") == "search" for t, a in parser.tags)
    script = page[page.index("<script>") + 8:page.index("</script>")]
    assert "data-outcomes" in script and "search" in script
    timeline = page[page.index("<h2>Timeline</h2>"):]
    labels = re.findall(r'<text[^>]*class="case">([^<]*)<title>', timeline)
    assert labels == [c["id"] for c in doc["cases"]]
    ticks_text = re.findall(r'class="tick">([^<]*)<', timeline)
    assert len(ticks_text) >= 2 and ticks_text[0] in ("0 ms", "0 s") and all(re.fullmatch(r"[\d.]+ m?s", t) for t in ticks_text)


def test_timeline_ticks_are_round():
    from aoeconform.report.html import _tick_step

    assert _tick_step(0.37) == 0.05 and _tick_step(12.0) == 2 and _tick_step(100.0) == 20 and _tick_step(8.0) == 1


def test_pcap_and_replay_per_failure(failing_run):
    failures = failing_run[1] / "failures"
    pcap = failures / "basic__ata__write-read.pcap"
    records = read_pcap(str(pcap))
    assert records and all(r.data[12:14] == b"\x88\xa2" for r in records)
    replay = json.loads((failures / "basic__ata__write-read.replay.json").read_text())
    assert replay["format"] == "aoeconform-replay/1" and replay["case"]["id"] == "basic/ata/write-read"
    assert replay["sent"] and replay["seed"] == 11
    # only failures leave files
    assert not (failures / "basic__config__read.pcap").exists()


def test_replay_rechecks(failing_run):
    path = str(failing_run[1] / "failures" / "basic__ata__write-read.replay.json")
    assert main(["replay", path, "--bundled", "loopback", "--quirk", "stale-read-buffer"]) == 1
    assert main(["replay", path, "--bundled", "loopback"]) == 0
    assert main(["replay", path, "--bundled", "loopback", "--frames"]) == 0


def test_interrupted_run_still_writes_reports(tmp_path, monkeypatch, capsys):
    """Ctrl-C in the middle: reports hold what ran, and the status is 130."""
    from aoeconform.scenario import engine as engine_module

    original = engine_module.Engine.run_case
    calls = {"n": 0}

    def interrupting(self, case, *a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(self, case, *a, **k)

    monkeypatch.setattr(engine_module.Engine, "run_case", interrupting)
    status = main(["run", FIXTURE, "--report-dir", str(tmp_path), "--bundled", "loopback"])
    assert status == 130
    doc = json.loads((tmp_path / "report.json").read_text())
    assert len(doc["cases"]) == 2 and doc["run"]["interrupted"] is True
    assert f"--start-after {doc['cases'][-1]['id']}" in capsys.readouterr().err
    assert doc["run"]["stopped"]["reason"] == "interrupted"
    root = ET.parse(tmp_path / "junit.xml").getroot()
    assert len(root.findall(".//testcase")) == 3  # the two that ran, and one error saying what happened
    errors = root.findall(".//testcase/error")
    assert len(errors) == 1 and errors[0].get("type") == "interrupted" and "interrupted (Ctrl-C) after 2 of 10" in errors[0].get("message")
    assert root.get("errors") == "1"
    assert (tmp_path / "report.html").exists() and (tmp_path / "report.sarif").exists()


def test_progress_bar_on_tty_plain_lines_otherwise(monkeypatch):
    import io

    from aoeconform.report.terminal import Progress
    from aoeconform.scenario.results import CaseResult

    class Case:
        id = "a/b"

    passed = CaseResult("a/b", "r", "1", "MUST", "passed")
    failed = CaseResult("a/c", "r", "1", "MUST", "failed", message="boom")
    out = io.StringIO()
    bar = Progress(2, out, bar=True)
    bar.case_started(Case, 0)
    bar.case_finished(passed)
    bar.case_finished(failed)
    text = out.getvalue()
    assert "\r" in text and "[" in text and "FAIL    a/c — boom" in text and "PASS" not in text
    monkeypatch.setenv("CI", "true")

    class Tty(io.StringIO):
        def isatty(self):
            return True

    out = Tty()
    plain = Progress(1, out)
    assert plain.bar is False
    plain.case_finished(passed)
    assert out.getvalue() == "PASS    a/b\n"
