"""The fuzzer against Debian's vblade in a lab (root). vblade's known
deviations (runt replies, echoed Ver and Error byte, the Mac Mask lock-up)
come back as findings, every one of them named in vblade's expectations
file; the harness neither crashes nor hangs, restarts vblade when it stops
answering, and ends on time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from aoeconform.fuzz import Fuzzer
from aoeconform.fuzz.findings import mark_known
from aoeconform.fuzz.oracle import KINDS
from aoeconform.scenario.selection import read_expectations
from aoeconform.session import TargetFacts

EXPECTATIONS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "suites", "expectations", "vblade-25.yaml")

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
    mark_known(result.findings, read_expectations(EXPECTATIONS))
    assert all(f.known for f in result.findings), [f.signature for f in result.findings if not f.known]
    for finding in result.findings:
        assert finding.paths and all(p.startswith(str(tmp_path)) for p in finding.paths)
    restart()  # the fuzz cases may have left a reservation or a Mac Mask list: the next test starts clean


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_fuzz_vblade_20_seconds_finds_only_its_known_deviations(vblade_lab, tmp_path):
    """`fuzz --expectations` for 20 s, writes allowed, vblade restarted when it dies:
    every finding is one of vblade's known deviations, named by rule; exit 0."""
    lab = vblade_lab
    pidfile = tmp_path / "vblade.pid"
    lab.process.stop()
    start = [sys.executable, "-m", "aoeconform", "lab", "vblade", "--name", lab.lab.name, "--shelf", str(lab.shelf),
             "--slot", str(lab.slot), "--pidfile", str(pidfile), str(lab.image_path)]
    subprocess.run(start, check=True, capture_output=True, timeout=60)
    restart = " ".join(start + ["--restart"])
    try:
        done = subprocess.run([sys.executable, "-m", "aoeconform", "fuzz", "--target", f"{lab.lab.host_if}:{lab.shelf}.{lab.slot}",
                               "--seconds", "20", "--seed", "1", "--allow-write", "--out", str(tmp_path / "out"), "--quiet",
                               "--expectations", EXPECTATIONS, "--restart-cmd", restart],
                              capture_output=True, text=True, timeout=540)
    finally:
        subprocess.run(start[:-1] + ["--stop"], capture_output=True, timeout=60)
        lab.process = lab.lab.start_vblade(lab.shelf, lab.slot, lab.image_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    with open(tmp_path / "out" / "fuzz.json") as f:
        run = json.load(f)
    assert run["cases"] > 50
    assert all(row["known"] and row["signature"].startswith(f"rule{row['rule']}/") for row in run["findings"]), run["findings"]


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
