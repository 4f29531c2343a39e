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


@pytest.mark.timeout(120)
def test_second_mac_over_veth_against_vblade(vblade_lab):
    """The fuzzer's second initiator over a real link: a spoofed source on the
    host's raw socket (promiscuous), whose replies come back to it. vblade
    refuses the second MAC's READ with Error 6 while the host holds a
    reservation, and the model agrees with every reply."""
    from aoeconform.fuzz.admin_requests import AdminRequests
    from aoeconform.fuzz.context import second_mac
    from aoeconform.fuzz.model_admin import AdminModel
    from aoeconform.wire.constants import RCMD_READ, RCMD_SET

    lab = vblade_lab
    with lab.transport(promiscuous=True) as transport:
        info = TargetFacts(mac=lab.target_mac, shelf=lab.shelf, slot=lab.slot, host_mac=transport.mac, mtu=transport.mtu,
                          sector_count=lab.max_sectors, capacity=lab.image_size // 512, second_mac=second_mac(transport.mac))
        r = AdminRequests(info)
        model = AdminModel(info)
        replies = []
        for frame in [r.reserve(RCMD_READ), r.reserve(RCMD_SET, [info.host_mac]), r.read(0, src=info.second_mac),
                      r.config_read(src=info.second_mac), r.read(0), r.reserve(RCMD_SET, [])]:
            transport.send(frame)
            deadline = time.monotonic() + 2
            got = []
            while time.monotonic() < deadline and not got:
                reply = transport.recv(0.2)
                if reply is not None and reply[20:24] == frame[20:24] and reply[14] & 0x08:
                    got.append(reply)
            assert model.step(frame, got) == [], frame.hex()
            replies.append(got)
        refused = replies[2]
        assert refused and refused[0][0:6] == info.second_mac and refused[0][14] & 0x04 and refused[0][15] == 6
        assert replies[3] and replies[3][0][0:6] == info.second_mac  # config queries stay open to everyone
        assert model.reservation == []
