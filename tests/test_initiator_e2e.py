"""End to end: the reference initiator writes 64 MiB and reads it back through
5% loss, 5% duplication and 5% reordering in both directions, against vblade
and against the reference target, each in a lab at MTU 9000."""

from __future__ import annotations

import os
import sys

from aoeconform.initiator.driver import HARNESS_TIMERS, LINUX_TIMERS, Initiator
from aoeconform.initiator.transfer import read_range, write_range
from aoeconform.transport.impair import ImpairedTransport
from aoeconform.transport.raw import RawTransport

SECTOR = 512
SIZE = 64 << 20
SHELF, SLOT = 1, 2


def round_trip(host_if: str, seed: int, size: int = SIZE):
    """Write ``size`` random bytes at lba 0 and read them back, impaired; returns
    (data, read back, initiator counters, impairment counters)."""
    data = os.urandom(size)
    view = memoryview(data)
    raw = RawTransport(host_if)
    impaired = ImpairedTransport(raw, seed=seed, loss=0.05, dup=0.05, reorder=0.05, reorder_depth=3, direction="both")
    try:
        ini = Initiator(impaired, SHELF, SLOT, config_timeout=0.2, config_attempts=20, dead_after=30.0, **HARNESS_TIMERS)
        info = ini.identify()
        assert info.sectors_per_frame == 17
        count = size // SECTOR
        write_range(ini, 0, count, lambda offset, n: view[offset * SECTOR:(offset + n) * SECTOR])
        ini.flush()
        chunks = []
        read_range(ini, 0, count, chunks.append)
        return data, b"".join(chunks), ini.counters(), impaired.counters
    finally:
        impaired.close()


def check(data, back, counters, impairment):
    assert len(back) == len(data)
    assert back == data, "data read back differs from what was written"
    assert counters["retransmissions"] > 0
    assert counters["duplicate_replies"] > 0
    assert counters["replies"] == counters["frames"]  # every frame answered exactly once
    for direction in ("send", "recv"):
        c = impairment[direction]
        assert c.dropped and c.duplicated and c.reordered
    print(f"initiator counters: {counters}")
    print(f"impairment: { {d: c.as_dict() for d, c in impairment.items()} }")


def test_64_mib_through_loss_duplication_and_reordering_vblade(vblade_lab_jumbo):
    data, back, counters, impairment = round_trip(vblade_lab_jumbo.host_if, seed=64)
    check(data, back, counters, impairment)
    with open(vblade_lab_jumbo.image_path, "rb") as f:
        assert f.read(SIZE) == data


def test_64_mib_through_loss_duplication_and_reordering_reference_target(make_lab):
    lab = make_lab(mtu=9000)
    process = lab.start_in_netns([sys.executable, "-m", "aoeconform", "target", "mem:64M", "--iface", lab.target_if,
                                  "--shelf", SHELF, "--slot", SLOT])
    lab.wait_for_target(SHELF, SLOT, process=process)
    data, back, counters, impairment = round_trip(lab.host_if, seed=65)
    check(data, back, counters, impairment)


def test_linux_timers_on_a_clean_link(vblade_lab_jumbo):
    """The driver's own timers (100 ms tick, 250 ms start) move nothing twice on a clean link."""
    with RawTransport(vblade_lab_jumbo.host_if) as raw:
        ini = Initiator(raw, SHELF, SLOT, **LINUX_TIMERS)
        ini.identify()
        chunks = []
        read_range(ini, 0, 16384, chunks.append)
        with open(vblade_lab_jumbo.image_path, "rb") as f:
            assert b"".join(chunks) == f.read(16384 * SECTOR)
        counters = ini.counters()
        assert counters["retransmissions"] == 0
        assert counters["rtt_avg_us"] < 250_000


# --- the same pieces over a memory link, no root needed ------------------------
def test_transfer_keeps_order_and_attach_skips_query_config():
    import random

    from aoeconform.initiator.discovery import discover
    from aoeconform.transport.memory import MemoryLink
    from fake_target import FakeTarget, TargetThread

    ini_mac, tgt_mac = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")
    link = MemoryLink()
    ini_ep, tgt_ep = link.endpoint(ini_mac, mtu=9000), link.endpoint(tgt_mac, mtu=9000)
    target = FakeTarget(tgt_mac, mtu=9000, sectors=8192)
    with TargetThread(target, tgt_ep):
        record = discover(ini_ep, 0.1, identify=False)[0]
        impaired = ImpairedTransport(ini_ep, seed=3, loss=0.05, dup=0.05, reorder=0.1)
        ini = Initiator(impaired, 0xFFFF, 0xFF, **HARNESS_TIMERS)
        info = ini.attach(record)
        assert (info.shelf, info.slot, info.capacity, info.sectors_per_frame) == (1, 2, 8192, 17)
        data = random.Random(9).randbytes(3 << 20)
        view = memoryview(data)
        progress = []
        write_range(ini, 100, len(data) // SECTOR, lambda o, n: view[o * SECTOR:(o + n) * SECTOR],
                    chunk=170, depth=4, progress=progress.append)
        assert progress[-1] == len(data) // SECTOR and progress == sorted(progress)
        chunks = []
        assert read_range(ini, 100, len(data) // SECTOR, chunks.append, chunk=170, depth=4) == len(data) // SECTOR
        assert b"".join(chunks) == data
        # stop: no new chunks once it says so, the ones in flight finish
        chunks.clear()
        done = read_range(ini, 100, len(data) // SECTOR, chunks.append, chunk=170, depth=4, stop=lambda: True)
        assert 170 <= done < len(data) // SECTOR and b"".join(chunks) == data[: done * SECTOR]
        assert ini.counters()["retransmissions"] > 0
