"""Findings a user can act on: one per defect, an index across runs, fuzz.json, replay."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET

from sarif_check import check_sarif_file

from aoeconform.cli import main
from aoeconform.fuzz.findings import INDEX, RUN

FUZZ = ["fuzz", "--in-memory", "--cases", "600", "--seed", "5", "--quiet"]


def _run(out, *quirks, extra=()):
    args = FUZZ + [a for q in quirks for a in ("--quirk", q)] + ["--out", str(out), *extra]
    status = main(args)
    with open(os.path.join(out, RUN)) as f:
        return status, json.load(f)


REPORTS = {RUN, INDEX, "report"}
#: ver-unchecked's findings: the reply's Ver (rule 7) and the state changed under Ver 2 (rule 12)
VER_UNCHECKED = ["rule7/wrong-version/any/ver", "rule12/side-effect-under-ver/any/ver"]


def _saved(out):
    return sorted(n for n in os.listdir(out) if n not in REPORTS)


def test_one_defect_seen_many_times_is_one_finding_counted_and_a_second_run_saves_nothing(tmp_path, capsys):
    status, doc = _run(tmp_path, "ver-unchecked")
    assert status == 1
    for key in ("cases", "seconds", "cases_per_second", "seed", "findings"):
        assert key in doc
    assert doc["cases"] == 600 and doc["seed"] == 5
    # a reply with the request's Ver, to requests of every command: one defect, one finding;
    # and state changed under that Ver (a config set, a reservation): the quirk's other rule, one finding
    assert [f["signature"] for f in doc["findings"]] == VER_UNCHECKED
    first = doc["findings"][0]
    assert first["rule"] == 7 and first["count"] > 1 and first["new"] is True
    assert first["replay"].startswith("aoeconform replay ")
    saved = _saved(tmp_path)
    assert len([n for n in saved if n.endswith(".json")]) == 2

    status, again = _run(tmp_path, "ver-unchecked")
    assert status == 1
    assert [f["signature"] for f in again["findings"]] == VER_UNCHECKED
    assert not any(f["new"] for f in again["findings"])
    assert _saved(tmp_path) == saved  # counted, not saved again
    index = json.loads((tmp_path / INDEX).read_text())["findings"]
    entry = index[first["signature"]]
    assert entry["runs"] == 2 and entry["count"] == first["count"] + again["findings"][0]["count"]
    assert "counted, not saved again" in capsys.readouterr().out
    # and in the run reports, like a suite failure charged to its rule
    junit = ET.parse(tmp_path / "report" / "junit.xml").getroot()
    assert junit.get("failures") == "2"
    case = junit.find("testsuite/testcase")
    assert case is not None and case.get("name") == "fuzz/rule7/wrong-version/any/ver" and case.find("failure") is not None
    sarif = check_sarif_file(tmp_path / "report" / "report.sarif")
    result, _ = sarif["runs"][0]["results"]
    assert result["ruleId"] == "fuzz/rule7/wrong-version/any/ver" and result["properties"]["failed_rule"] == 7
    assert "fuzz/rule7/wrong-version/any/ver" in (tmp_path / "report" / "report.html").read_text()


def test_same_seed_same_findings_and_every_finding_replays(tmp_path, capsys):
    quirks = ("error-byte-echo", "ver-unchecked")
    _, one = _run(tmp_path / "a", *quirks)
    _, two = _run(tmp_path / "b", *quirks)
    signatures = sorted(f["signature"] for f in one["findings"])
    assert signatures == sorted(f["signature"] for f in two["findings"])
    # Error byte and MBZ flag bits echoed, Ver echoed (and served): four rules, four findings
    assert signatures == sorted(VER_UNCHECKED + ["rule8/error-byte-without-e/any/error", "rule9/mbz-set/any/flags"])
    for f in one["findings"]:
        assert main(["replay", f["file"]]) == 1, f["signature"]  # with the quirks it was found with
        assert main(["replay", f["file"], "--quirk", "unpadded"]) == 0  # a target without the defect
        assert main(["replay", f["file"], "--clean"]) == 0  # nor without any
    out = capsys.readouterr().out
    assert "reproduced" in out and "did not reproduce" in out


def test_start_index_resumes_the_campaign(tmp_path):
    # (not shrunk: resuming is the point here, and shrinking two defects' findings under load took minutes)
    _, first = _run(tmp_path, "ver-unchecked", extra=("--start-index", "600", "--no-shrink"))
    assert first["start_index"] == 600 and first["next_index"] == 1200


def test_selftest_fuzz_names_the_rule_and_says_how_many_quirks_it_found(capsys):
    quirks = ["ver-unchecked", "unpadded", "crash-on-truncated", "wrong-reply-dst", "readonly-writes"]
    status = main(["selftest", "--fuzz", "--seconds", "1", *[a for q in quirks for a in ("--quirk", q)]])
    out = capsys.readouterr().out
    assert status == 0  # whatever the coverage
    lines = {line.split()[1]: line for line in out.splitlines() if line.startswith(("ok ", "MISS "))}
    assert "rule 7 wrong-version" in lines["ver-unchecked"] and "rule 16 runt-reply" in lines["unpadded"]
    assert "rule 15 unresponsive" in lines["crash-on-truncated"] and "rule 3 wrong-reply-dst" in lines["wrong-reply-dst"]
    assert lines["readonly-writes"].startswith("MISS")  # no oracle knows the export is read-only
    assert out.rstrip().splitlines()[-1].startswith("found 4 of 5 quirks")
    assert main(["selftest", "--seconds", "1"]) == 2  # --seconds goes with --fuzz
    assert main(["selftest", "--replay"]) == 2  # and so does --replay


def test_selftest_fuzz_replay_replays_each_finding_against_the_quirk_and_the_clean_target(capsys, monkeypatch):
    from aoeconform.fuzz import selftest as fuzz_selftest

    args = ["selftest", "--fuzz", "--replay", "--seconds", "1", "--quirk", "unpadded"]
    status, out = main(args), capsys.readouterr().out
    assert status == 0, out
    assert "rule 16 runt-reply" in out and "; 1 of 1 findings replay" in out
    assert out.rstrip().endswith("1 of 1 findings replay, 0 fire on the clean target too")
    # a finding that does not fire again, or fires against the clean target too, fails the selftest
    for fires, said in ((lambda quirks: False, "does not replay"), (lambda quirks: True, "fires on the clean target too")):
        monkeypatch.setattr(fuzz_selftest, "_replays_on", lambda quirks, image, finding, fires=fires: fires(quirks))
        assert main(args) == 1
        assert said in capsys.readouterr().out


def test_expectations_file_makes_known_deviations_counted_not_failures(tmp_path, capsys):
    """The target's expectations file names its known deviations by signature:
    those findings are reported (xfailed) but the run passes; others still fail it."""
    known = tmp_path / "known.yaml"
    known.write_text("ata/flush/e7-status-drdy: a suite case, not for fuzz\n"
                     "fuzz/rule7/wrong-version/*: echoes Ver (rule 7)\n"
                     "fuzz/rule12/side-effect-under-ver/*: serves Ver 2 (rule 12)\n")
    status, run = _run(tmp_path / "a", "ver-unchecked", extra=("--expectations", str(known)))
    assert status == 0 and run["findings"]
    assert all(row["known"] == {7: "echoes Ver (rule 7)", 12: "serves Ver 2 (rule 12)"}[row["rule"]] for row in run["findings"])
    assert "known deviation: rule7/wrong-version/" in capsys.readouterr().out
    junit = ET.parse(tmp_path / "a" / "report" / "junit.xml").getroot()
    assert not list(junit.iter("failure"))
    # a defect the file does not name is a finding as before
    status, run = _run(tmp_path / "b", "ver-unchecked", "unpadded", extra=("--expectations", str(known)))
    assert status == 1 and {row["rule"] for row in run["findings"] if not row["known"]} == {16}
    assert main([*FUZZ, "--expectations", str(tmp_path / "missing.yaml")]) == 2


def test_a_cache_keyed_on_the_tag_is_one_finding_that_replays():
    """tag-reply-cache answers any request whose tag it saw with the old reply:
    every oracle could fire on those replies (37 findings of 12 rules in 8 s
    before), but it is one defect, rule 18. Replays of it, and of anything
    shrunk against it, take fresh tags, or the cache would answer them too."""
    from aoeconform.fuzz.selftest import fuzz_quirk

    result = fuzz_quirk("tag-reply-cache", 4.0, replay=True)
    assert [(c.signature, c.fires, c.fires_clean) for c in result.replays] == [("rule18/stale-reply/any/tag", True, False)]


def test_a_missing_advertisement_replays_by_restarting_the_target():
    from aoeconform.fuzz.selftest import fuzz_quirk

    result = fuzz_quirk("no-advertisement", 1.0, replay=True)
    assert [(c.signature, c.fires, c.fires_clean) for c in result.replays] == [("rule46/no-advertisement/any/unclassified", True, False)]
