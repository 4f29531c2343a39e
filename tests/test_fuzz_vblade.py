"""The fuzzer against Debian's vblade in a lab (root). vblade's known
deviations (runt replies, echoed Ver and Error byte, the Mac Mask lock-up)
come back as findings; what matters here is that the harness neither
crashes nor hangs, restarts vblade when it stops answering, and ends on time."""

from __future__ import annotations

import time

import pytest

from aoeconform.fuzz import Fuzzer
from aoeconform.session import TargetFacts
from aoeconform.fuzz.oracle import KINDS

pytestmark = [pytest.mark.root, pytest.mark.vblade]


@pytest.mark.timeout(180)
def test_fuzz_vblade_briefly(vblade_lab, tmp_path):
    lab = vblade_lab

    def restart():
        lab.process.stop()
        lab.process = lab.lab.start_vblade(lab.shelf, lab.slot, lab.image_path)

    with lab.transport() as transport:
        info = TargetFacts(
            mac=lab.target_mac, shelf=lab.shelf, slot=lab.slot, host_mac=transport.mac, mtu=transport.mtu,
            bufcnt=16, sector_count=lab.max_sectors, capacity=lab.image_size // 512,
        )
        fuzzer = Fuzzer(transport, info, seed=11, restart=restart, out_dir=str(tmp_path), shrink_seconds=10)
        started = time.monotonic()
        result = fuzzer.run(seconds=6)
        elapsed = time.monotonic() - started
    assert result.cases > 50, result.summary()
    assert result.replies > 0
    assert elapsed < 120, f"the run took {elapsed:.0f} s for --seconds 6"
    assert all(f.kind in KINDS for f in result.findings)
    for finding in result.findings:
        assert finding.paths and all(p.startswith(str(tmp_path)) for p in finding.paths)
