"""`aoeconform fuzz --workers N`: the cases split by index, findings merged and deduplicated."""

from __future__ import annotations

import json
import os
import re

from aoeconform.cli import main
from aoeconform.fuzz.engine import FuzzResult
from aoeconform.fuzz.findings import Finding
from aoeconform.fuzz.parallel import STRIDE, merge_findings, next_index, partition


def test_partition_covers_the_serial_cases_once():
    assert partition(10, 3) == [(0, 3), (3, 4), (7, 3)]
    assert partition(10, 3, start=600) == [(600, 3), (603, 4), (607, 3)]
    assert partition(2, 4) == [(0, 1), (1, 1)]  # no worker with nothing to do
    assert partition(None, 3, start=5) == [(5, None), (5 + STRIDE, None), (5 + 2 * STRIDE, None)]


def test_the_campaign_goes_on_without_leaving_a_case_out():
    # --cases 10 from 600: worker 1 stopped early at 605; the others finished their shares
    results = [FuzzResult(1, next_index=603, start_index=600, end_index=603), FuzzResult(1, next_index=605, start_index=603, end_index=607),
               FuzzResult(1, next_index=610, start_index=607, end_index=610)]
    assert next_index(results, 600, 10) == 605
    assert next_index(results[:1] + results[2:], 600, 10) == 610  # all done
    # --seconds from 5: each worker goes on from 5 + k * STRIDE; the slowest ran 40
    timed = [FuzzResult(1, next_index=5 + 70, start_index=5), FuzzResult(1, next_index=5 + STRIDE + 40, start_index=5 + STRIDE)]
    assert next_index(timed, 5, None) == 45


def test_start_index_with_workers_resumes_where_the_run_stopped(tmp_path, capsys):
    """Two workers from --start-index run the serial run's cases from there: the same
    findings at the same case indices; fuzz.json says where to go on."""
    common = ["fuzz", "--in-memory", "--quirk", "ver-unchecked", "--seed", "4", "--no-shrink", "--quiet"]
    assert main([*common, "--cases", "300", "--start-index", "300", "--workers", "2", "--out", str(tmp_path / "p")]) == 1
    assert main([*common, "--cases", "300", "--start-index", "300", "--out", str(tmp_path / "s")]) == 1
    runs = [json.load(open(tmp_path / name / "fuzz.json")) for name in ("p", "s")]
    assert [(r["start_index"], r["next_index"]) for r in runs] == [(300, 600), (300, 600)]
    assert "--start-index 600" in capsys.readouterr().out
    # what one reply shows is the same whoever sends it; what the model judges (rule 12 here)
    # depends on what each worker's target went through before, so only its range is checked
    found = [sorted((f["signature"], json.load(open(f["file"]))["case_index"]) for f in r["findings"]) for r in runs]
    header = [[(s, i) for s, i in f if not s.startswith("rule12/")] for f in found]
    assert header[0] == header[1] and all(index >= 300 for f in found for _, index in f)
    # a timed campaign on two workers gives a resume point past the start
    assert main([*common[:-1], "--seconds", "1", "--start-index", "50", "--workers", "2", "--out", str(tmp_path / "t")]) == 1
    timed = json.load(open(tmp_path / "t" / "fuzz.json"))
    assert timed["start_index"] == 50 and timed["next_index"] > 60


def _finding(kind, command, index, count=1):
    frame = bytes(19) + bytes([command]) + bytes(40)
    return Finding(kind, "detail", 3, [frame + bytes([index % 256])], case_index=index, count=count)


def test_merge_keeps_one_per_signature_the_earliest_with_counts_added():
    a = FuzzResult(3, findings=[_finding("bad-reply", 0, 50, 2), _finding("unresponsive", 1, 7)])
    b = FuzzResult(3, findings=[_finding("bad-reply", 0, 12, 3), _finding("tag-mismatch", 1, 90)])
    merged = merge_findings([a, b])
    assert [(f.kind, f.case_index, f.count) for f in merged] == [("unresponsive", 7, 1), ("bad-reply", 12, 5), ("tag-mismatch", 90, 1)]


def test_two_workers_find_what_one_finds(tmp_path, capsys):
    """Same seed and cases: the merged findings of two workers are the serial run's
    (same files, same counts); each is saved once."""
    common = ["fuzz", "--in-memory", "--quirk", "crash-on-truncated", "--cases", "400", "--seed", "3", "--no-shrink"]
    assert main([*common, "--workers", "2", "--out", str(tmp_path / "parallel")]) == 1
    out = capsys.readouterr().out
    assert "400 cases in" in out and "on 2 workers" in out
    assert main([*common, "--out", str(tmp_path / "serial"), "--quiet"]) == 1
    serial_out = capsys.readouterr().out
    parallel, serial = sorted(os.listdir(tmp_path / "parallel")), sorted(os.listdir(tmp_path / "serial"))
    assert parallel == serial and any(n.endswith(".json") for n in parallel)
    # the summary lines name the same findings seen as many times ("... x17 -> path")
    def seen(text):
        return sorted(re.sub(r" -> .*", "", line).strip() for line in text.splitlines() if re.search(r" x\d+", line))

    assert seen(out) == seen(serial_out) and seen(out)
    for name in parallel:  # the merged count is saved
        if name.endswith(".json") and name not in ("fuzz.json", "index.json"):  # those two describe the run (report/ too)
            count = json.load(open(tmp_path / "parallel" / name))["count"]
            assert f"x{count}" in out


def test_usage_errors(capsys):
    assert main(["fuzz", "--in-memory", "--workers", "2", "--replay", "x.json"]) == 2
    assert main(["fuzz", "--workers", "2"]) == 2
    assert main(["fuzz", "--target", "eth9", "--target", "eth8", "--restart-cmd", "a", "--restart-cmd", "b",
                 "--restart-cmd", "c"]) == 2
    err = capsys.readouterr().err
    assert "--replay sends one finding to one target" in err and "--restart-cmd is given 3 times for 2 targets" in err
