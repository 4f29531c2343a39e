"""The kernel's own AoE driver in user-mode Linux, against the bundled target and vblade.

Each guest boots in about 2 s here; the default run writes and reads back a
few MiB, the slow runs 64 MiB."""

import json
import os

import pytest

from aoeconform.cli import main
from aoeconform.lab.linux import BUNDLED, VBLADE, LinuxRun, run_linux
from aoeconform.lab.uml import LinuxGuest
from aoeconform.lab.workload import WorkloadSpec
from conftest import need_program, need_uml


@pytest.fixture
def uml():
    need_uml()


def _group_alive(pgid):
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_cli_against_the_bundled_target(uml, tmp_path, capsys):
    out_json, pcap = tmp_path / "linux.json", tmp_path / "linux.pcap"
    status = main(["linux", "--size", "2M", "--maxout", "16", "--json", str(out_json), "--pcap", str(pcap)])
    text = capsys.readouterr().out
    assert status == 0, text
    assert "capacity 131072 sectors" in text and "1024-byte data frames" in text
    assert "read-back: byte-exact" in text and "target image: matches" in text
    report = json.loads(out_json.read_text())
    assert report["guest"]["device"]["parameters"]["aoe_maxout"] == "16"
    wire = report["wire"]
    # the driver's traffic: writes and reads of 2 sectors a frame at MTU 1500
    # (a capture on a loaded machine may miss frames: it says how many)
    assert wire["write_requests"] + report["capture_drops"] >= (2 << 20) // 1024 or report["capture_drops"]
    assert wire["max_payload"] == 1024
    assert report["guest"]["stages"]["device"] < 30
    assert pcap.stat().st_size > 24 + wire["requests"] * 16


def test_your_interface_found_by_discovery(uml, vblade_lab_jumbo, capsys):
    """--target IF without S.N: the address comes from discovery; vblade at MTU 9000."""
    need_program("vblade", "vblade")
    status = main(["linux", "--target", vblade_lab_jumbo.host_if, "--size", "1M"])  # the MTU from the interface
    text = capsys.readouterr().out
    assert status == 0, text
    assert f"target: {vblade_lab_jumbo.host_if}:1.2" in text
    assert "8704-byte data frames" in text  # 17 sectors at MTU 9000
    assert "read-back: byte-exact" in text and "largest payload 8704 bytes" in text


def test_a_hung_guest_is_killed_and_said_so(uml, make_lab, tmp_path):
    # the guest must boot and reach the sleep first: 6 s was too short on a loaded 2-core machine
    steps = [{"kind": "sleep", "seconds": 60}]
    guest = LinuxGuest(make_lab().host_if, steps, shelf=1, slot=2, timeout=20, workdir=str(tmp_path / "g")).start()
    pgid = guest.popen.pid
    result = guest.wait()
    assert result.killed and not result.ok
    assert "hung after stage 'sleep'" in result.reason and "killed" in result.reason
    assert not _group_alive(pgid)


# aoe_iflist and rediscovery: the linux suite's linux/discovery/iflist-then-rediscover


def test_bad_sizes_are_one_line_errors(capsys):
    assert main(["linux", "--size", "1000"]) == 2
    assert "multiple of 4096" in capsys.readouterr().err
    assert main(["linux", "--vblade", "--quirk", "x"]) == 2


@pytest.mark.slow
@pytest.mark.parametrize("target", [BUNDLED, VBLADE])
@pytest.mark.parametrize("mtu", [1500, 9000])
def test_64_mib_byte_exact(uml, target, mtu):
    if target == VBLADE:
        need_program("vblade", "vblade")
    report = run_linux(LinuxRun(target=target, mtu=mtu, workload=WorkloadSpec(size=64 << 20, random_writes=256),
                                image_bytes=128 << 20, timeout=300))
    assert report.ok, report.problem
    assert report.image_matches is True


# through the bridge with loss: the linux suite's data cases, and tests/test_bench_linux.py
# (which also checks Linux's own retransmission count against the wire's)


@pytest.mark.slow
@pytest.mark.timeout(2400)  # every loss costs the driver a timeout: about 4 minutes each at MTU 9000
@pytest.mark.parametrize("target", [BUNDLED, VBLADE])
def test_64_mib_through_the_bridge_at_5_percent_loss(uml, target):
    from aoeconform.lab.bridge import BridgeSpec

    if target == VBLADE:
        need_program("vblade", "vblade")
    report = run_linux(LinuxRun(target=target, mtu=9000, workload=WorkloadSpec(size=64 << 20, random_writes=256),
                                image_bytes=128 << 20, timeout=2300,
                                bridge=BridgeSpec.symmetric(seed=1, loss=0.05, dup=0.01, reorder=0.01)))
    assert report.ok, report.problem
    assert report.image_matches is True
    assert report.guest.driver_count("retransmit") > 0
