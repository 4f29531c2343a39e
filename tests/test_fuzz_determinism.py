"""Same seed, same target, same cases: the same findings (issue 8), in one
process and with --workers (each worker's target has its own history, so the
same number of workers gives the same findings; another number may not)."""

from __future__ import annotations

import json

import pytest

from aoeconform.cli import main

QUIRKS = [["stale-read-buffer", "config-set-overwrites"], ["write-ignored", "mask-not-enforced", "ver-unchecked"]]


def _findings(out) -> list:
    run = json.load(open(out / "fuzz.json"))
    return sorted((f["signature"], f["count"], json.load(open(f["file"]))["case_index"]) for f in run["findings"])


@pytest.mark.parametrize("quirks", QUIRKS, ids=["+".join(q) for q in QUIRKS])
@pytest.mark.parametrize("workers", [1, 2])
def test_same_seed_same_cases_same_findings(tmp_path, quirks, workers):
    common = ["fuzz", "--in-memory", "--seed", "5", "--cases", "2500", "--allow-write", "--no-shrink", "--quiet"]
    common += [a for q in quirks for a in ("--quirk", q)] + (["--workers", str(workers)] if workers > 1 else [])
    found = []
    for run in ("a", "b"):
        assert main([*common, "--out", str(tmp_path / run)]) == 1
        found.append(_findings(tmp_path / run))
    assert found[0] == found[1]
    assert len({signature.split("/")[0] for signature, _, _ in found[0]}) >= 2  # header and model findings both
