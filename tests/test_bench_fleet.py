"""`aoeconform bench fleet`: the comparison of outcomes and the table (the whole
bench, several minutes against vblade, runs with -m slow)."""

from __future__ import annotations

import pytest

from aoeconform.bench.fleet import _common, report, run_bench

from conftest import need_root


def test_outcomes_count_only_when_equal_on_every_case():
    reference = {("a", 0): "passed", ("b", 0): "xfailed", ("observed/run/tags-returned", 0): "passed"}
    assert _common({("a", 0): "passed", ("b", 0): "xfailed"}, reference)  # the plugin has no observed/...
    assert not _common({("a", 0): "passed", ("b", 0): "failed"}, reference)
    assert not _common({("a", 0): "passed"}, reference)  # a case missing


def test_table_prints_wall_times_and_speedups():
    rows = [{"targets": "bundled", "tool": "aoeconform run", "workers": 1, "wall": 16.0, "exit": 0, "cases": 1136,
             "same_outcomes": True, "speedup": 1.0},
            {"targets": "bundled", "tool": "aoeconform run", "workers": 4, "wall": 8.0, "exit": 0, "cases": 1136,
             "same_outcomes": False, "speedup": 2.0}]
    text = report(rows, as_json=False)
    assert "16.00" in text and "2.00x" in text and "DIFFERENT" in text and "cores" in text


@pytest.mark.slow
def test_bench_bundled_side_by_side(tmp_path):
    need_root()
    rows = run_bench(2, 2, "bundled", 1, str(tmp_path))
    assert [(r["tool"], r["workers"]) for r in rows] == [("aoeconform run", 1), ("aoeconform run", 2),
                                                          ("pytest plugin", 1), ("pytest plugin", 2)]
    assert all(r["same_outcomes"] and r["exit"] == 0 and r["wall"] > 0 for r in rows), rows
