"""`aoeconform fuzz --workers N`: the cases split by index, findings merged and deduplicated."""

from __future__ import annotations

import json
import os
import re

from aoeconform.cli import main
from aoeconform.fuzz.engine import FuzzResult
from aoeconform.fuzz.findings import Finding
from aoeconform.fuzz.parallel import STRIDE, merge_findings, partition


def test_partition_covers_the_serial_cases_once():
    assert partition(10, 3) == [(0, 3), (3, 4), (7, 3)]
    assert partition(2, 4) == [(0, 1), (1, 1)]  # no worker with nothing to do
    assert partition(None, 3) == [(0, None), (STRIDE, None), (2 * STRIDE, None)]


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
