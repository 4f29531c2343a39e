"""The blocking initiator over the in-memory transport, against a fake target in a thread."""

import random

import pytest

from aoeconform.errors import TargetUnreachable
from aoeconform.initiator.driver import Initiator, frame_sectors
from aoeconform.initiator.engine import AtaError, TargetDead
from aoeconform.transport.impair import ImpairedTransport
from aoeconform.transport.memory import MemoryLink

from fake_target import FakeTarget, TargetThread

INI = bytes.fromhex("020000000001")
TGT = bytes.fromhex("020000000002")


def lab(mtu=1500, sectors=16384, **target_kw):
    link = MemoryLink()
    ini, tgt = link.endpoint(INI, mtu=mtu), link.endpoint(TGT, mtu=mtu)
    return ini, tgt, FakeTarget(TGT, mtu=mtu, sectors=sectors, **target_kw)


def test_frame_sectors_follow_mtu_and_config():
    assert frame_sectors(1500, 2) == 2
    assert frame_sectors(9000, 17) == 17
    assert frame_sectors(9000, 2) == 2
    assert frame_sectors(9000, 0) == 2  # Sector Count 0 means 1024 bytes


def test_identify_then_read_and_write():
    ini_ep, tgt_ep, target = lab(mtu=9000)
    with TargetThread(target, tgt_ep):
        ini = Initiator(ini_ep, 1, 2, max_timeout=0.05, precise_timeouts=True)
        info = ini.identify()
        assert (info.shelf, info.slot, info.mac) == (1, 2, TGT)
        assert (info.bufcnt, info.firmware, info.sectors_per_frame) == (16, 0x4019, 17)
        assert info.capacity == 16384 and info.lba48 and info.model == "fake target"
        data = random.Random(1).randbytes(512 * 100)
        ini.write(7, data)
        ini.flush()
        assert ini.read(7, 100) == data
        assert bytes(target.disk[7 * 512:107 * 512]) == data
        # pipelined: several requests in flight together
        requests = [ini.submit_read(7 + 10 * i, 10) for i in range(10)]
        ini.wait(*requests)
        assert b"".join(r.result() for r in requests) == data


def test_28_bit_device_gets_28_bit_commands():
    ini_ep, tgt_ep, target = lab(lba48=False)
    with TargetThread(target, tgt_ep):
        ini = Initiator(ini_ep, 1, 2, max_timeout=0.05, precise_timeouts=True)
        assert not ini.identify().lba48
        ini.write(3, bytes([9]) * 1024)
        assert ini.read(3, 2) == bytes([9]) * 1024
        assert ini.engine.submit_read(0, 1).opcode == 0x20


def test_ata_error_raised_by_read():
    ini_ep, tgt_ep, target = lab()
    target.ata_fail_lba[10] = 0x40
    with TargetThread(target, tgt_ep):
        ini = Initiator(ini_ep, 1, 2, max_timeout=0.05, precise_timeouts=True)
        ini.identify()
        with pytest.raises(AtaError, match="status 0x41 error 0x40"):
            ini.read(8, 4)


def test_no_config_reply_is_target_unreachable():
    ini_ep, _, _ = lab()
    ini = Initiator(ini_ep, 9, 9, config_timeout=0.02, config_attempts=2)
    with pytest.raises(TargetUnreachable, match="no Query Config reply"):
        ini.identify()


def test_silent_target_is_declared_dead():
    ini_ep, tgt_ep, target = lab()
    with TargetThread(target, tgt_ep):
        ini = Initiator(ini_ep, 1, 2, max_timeout=0.01, dead_after=0.2, timer_tick=0.005)
        ini.identify()
        target.silent = True
        with pytest.raises(TargetDead):
            ini.read(0, 4)
        assert ini.counters()["retransmissions"] > 3


def test_4_mib_round_trip_through_loss_duplication_and_reordering():
    ini_ep, tgt_ep, target = lab(mtu=1500, sectors=16384)
    impaired = ImpairedTransport(ini_ep, seed=2024, loss=0.05, dup=0.05, reorder=0.05, reorder_depth=3,
                                 direction="both")
    data = random.Random(7).randbytes(4 << 20)
    with TargetThread(target, tgt_ep):
        ini = Initiator(impaired, 1, 2, max_timeout=0.02, config_timeout=0.1, config_attempts=20,
                        precise_timeouts=True)
        ini.identify()
        ini.write(0, data)
        ini.flush()
        back = ini.read(0, len(data) // 512)
    assert back == data
    assert bytes(target.disk[: len(data)]) == data
    counters = ini.counters()
    frames = 2 * (4 << 20) // 1024 + 2  # writes, reads, identify, flush
    assert counters["replies"] == counters["frames"] == frames
    assert counters["retransmissions"] > 0.05 * frames
    assert counters["duplicate_replies"] > 0.02 * frames
    assert counters["timeouts"] >= counters["retransmissions"]
    for direction in ("send", "recv"):
        c = impaired.counters[direction]
        assert c.dropped and c.duplicated and c.reordered


def test_default_linux_like_timer_on_a_clean_link():
    ini_ep, tgt_ep, target = lab()
    with TargetThread(target, tgt_ep):
        ini = Initiator(ini_ep, 1, 2)  # rto from the estimator, checked every 100 ms
        ini.identify()
        data = bytes(range(256)) * 64
        ini.write(0, data)
        assert ini.read(0, len(data) // 512) == data
        counters = ini.counters()
        assert counters["retransmissions"] == 0
        assert counters["rtt_avg_us"] < 250_000  # the estimate moved off its start
