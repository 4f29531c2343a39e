"""`aoeconform compare`: runs against different targets side by side."""

import os

import pytest

from aoeconform.cli import main

FIXTURE = os.path.join(os.path.dirname(__file__), "suites", "basic.yaml")


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    clean = tmp_path_factory.mktemp("clean")
    broken = tmp_path_factory.mktemp("broken")
    assert main(["run", FIXTURE, "--report-dir", str(clean), "--bundled", "loopback", "--seed", "3"]) == 0
    assert main(["run", FIXTURE, "--report-dir", str(broken), "--bundled", "loopback", "--seed", "3",
                 "--quirk", "stale-read-buffer"]) == 1
    return clean, broken


def test_lists_only_cases_whose_outcomes_differ(two_runs, capsys, tmp_path):
    clean, broken = two_runs
    page = tmp_path / "cmp.html"
    assert main(["compare", str(clean), str(broken), "--label", "clean", "--label", "stale", "--html", str(page)]) == 0
    out = capsys.readouterr().out
    header, *rows = out.splitlines()
    assert "clean" in header and "stale" in header
    case_rows = [r for r in rows if r.split() and "/" in r.split()[0]]
    assert case_rows, out
    for row in case_rows:  # the quirk's failures, and nothing that agrees
        assert row.split()[2:4] == ["passed", "failed"], row
    html = page.read_text()
    assert html.count("<tr>") > len(case_rows) and "stale" in html


def test_identical_runs_have_no_differences(two_runs, capsys):
    clean, _ = two_runs
    assert main(["compare", str(clean), str(clean / "report.json")]) == 0
    assert "every case has the same outcome" in capsys.readouterr().out


def test_bad_reports_are_usage_errors(tmp_path, capsys):
    bogus = tmp_path / "report.json"
    bogus.write_text("{not json")
    assert main(["compare", str(tmp_path), str(tmp_path / "missing")]) == 2
    assert main(["compare", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not a readable report.json" in err or "no such report" in err
