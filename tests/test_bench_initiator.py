"""`aoeconform bench initiator`, run briefly: the JSON has every figure, and each is positive.

Throughput aims are not checked here: the machine is shared and noisy, and
a short run says little. The README records the figures of a full run."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import need_program, need_root


def test_brief_run_reports_every_figure():
    need_root()
    need_program("vblade", "vblade")
    result = subprocess.run(
        [sys.executable, "-m", "aoeconform", "bench", "initiator", "--json", "--seconds", "0.2", "--rounds", "1",
         "--losses", "0.01,0.05"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["mtu"] == 9000
    assert report["bare"]["depth"] == 16 and report["bare"]["sectors"] == 17
    for key in ("bare", "ours", "fault_layer"):
        assert report[key]["mb_per_s"] > 0
    assert report["ratio"] > 0
    assert report["ours"]["rtt_avg_us"] > 0
    assert [row["loss"] for row in report["loss"]] == [0.01, 0.05]
    for row in report["loss"]:
        assert row["mb_per_s"] > 0 and row["fraction_of_lossless"] > 0
        assert row["counters"]["retransmissions"] > 0


def test_bad_arguments_are_usage_errors():
    from aoeconform.cli import main

    assert main(["bench", "initiator", "--seconds", "0"]) == 2
    assert main(["bench", "initiator", "--losses", "1.5"]) == 2
