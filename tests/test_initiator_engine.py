"""The initiator state machine, driven by hand: no sockets, no sleeping, time passed in."""

import struct

import pytest

from aoeconform.errors import TargetUnreachable
from aoeconform.initiator.engine import (
    AoEErrorReply,
    AtaError,
    InitiatorEngine,
    RuntReply,
    TargetDead,
)
from aoeconform.wire import Frame
from aoeconform.wire.constants import AFLAG_E, AFLAG_W, ATA_ERROR_IDNF, ERR_BAD_ARGUMENT

from fake_target import FakeTarget

SRC = bytes.fromhex("020000000001")
DST = bytes.fromhex("020000000002")


def setup(sectors=1024, **kw):
    kw.setdefault("sectors_per_frame", 2)
    engine = InitiatorEngine(SRC, DST, 1, 2, **kw)
    target = FakeTarget(DST, sectors=sectors)
    return engine, target


def exchange(engine, target, now, reply_now=None):
    """Send what the window allows, feed the target, return its replies (not yet delivered)."""
    replies = []
    for _, frame in engine.poll_sends(now):
        replies.extend(target.handle(frame))
    return replies


def run(engine, target, now=0.0, step=0.001):
    """Run until idle with a perfect network; returns the final time."""
    while not engine.idle:
        for reply in exchange(engine, target, now):
            now += step
            engine.on_frame(reply, now)
        engine.on_tick(now)
    return now


def decode(frame):
    return Frame.decode(frame)


def test_read_is_split_by_sectors_per_frame_with_48_bit_opcodes():
    engine, _ = setup(bufcnt=16)
    request = engine.submit_read(100, 5)
    sends = engine.poll_sends(0.0)
    assert len(sends) == 3
    frames = [decode(f) for _, f in sends]
    assert [(f.arg.lba, f.arg.sector_count) for f in frames] == [(100, 2), (102, 2), (104, 1)]
    for (tag, raw), f in zip(sends, frames):
        assert f.header.tag == tag and f.header.dst == DST and f.header.src == SRC
        assert (f.header.shelf, f.header.slot, f.header.command) == (1, 2, 0)
        assert f.arg.cmd_status == 0x24 and f.arg.aflags == AFLAG_E
        assert len(raw) == 60  # padded to the Ethernet minimum
    assert request.frames_total == 3


def test_28_bit_write_uses_0x30_and_lba3_device_bits():
    engine, _ = setup(lba48=False)
    data = bytes(range(256)) * 6  # 3 sectors
    engine.submit_write(0x0ABCDEF, data)
    sends = engine.poll_sends(0.0)
    first, second = (decode(f) for _, f in sends)
    assert first.arg.cmd_status == 0x30 and first.arg.aflags == AFLAG_W
    # LBA little-endian; lba3 = LBA mode bits 0xE0 over LBA bits 24-27 (here 0)
    assert sends[0][1][28:34] == bytes([0xEF, 0xCD, 0xAB, 0xE0, 0, 0])
    assert first.arg.data == data[:1024] and second.arg.data == data[1024:]
    assert second.arg.sector_count == 1


def test_28_bit_lba_high_nibble_goes_into_lba3():
    engine, _ = setup(lba48=False)
    engine.submit_read(0x0FFFFFF0, 1)
    (_, raw), = engine.poll_sends(0.0)
    assert raw[28:32] == bytes([0xF0, 0xFF, 0xFF, 0xEF])
    with pytest.raises(ValueError, match="28-bit"):
        engine.submit_read(0x0FFFFFFF, 2)


def test_window_limits_frames_on_the_wire():
    engine, _ = setup(bufcnt=16)
    engine.submit_read(0, 100)
    assert len(engine.poll_sends(0.0)) == 8  # new target: nframes/2
    assert engine.poll_sends(0.0) == []
    assert engine.outstanding == 8


def test_write_then_read_round_trip_and_rtt():
    engine, target = setup(bufcnt=16)
    data = bytes(i % 251 for i in range(512 * 37))
    write = engine.submit_write(10, data)
    now = run(engine, target)
    assert write.done and write.result() is None
    read = engine.submit_read(10, 37, now)
    run(engine, target, now)
    assert read.result() == data
    assert engine.stats.replies == engine.stats.frames == 38
    assert engine.stats.retransmissions == 0
    assert engine.rtt.samples == 38


def test_replies_matched_by_tag_only_in_any_order_and_from_any_mac():
    engine, target = setup()
    target.disk[:4096] = bytes(range(256)) * 16
    request = engine.submit_read(0, 8)
    replies = exchange(engine, target, 0.0)
    assert len(replies) == 4
    replies.reverse()
    # a different source MAC does not matter
    replies[0] = bytes.fromhex("0200000000ee").join([replies[0][:6], replies[0][12:]])
    for reply in replies:
        engine.on_frame(reply, 0.01)
    assert request.result() == bytes(target.disk[:4096])


def test_duplicate_reply_is_counted_and_dropped():
    engine, target = setup()
    request = engine.submit_read(0, 2)
    (reply,) = exchange(engine, target, 0.0)
    assert engine.on_frame(reply, 0.001) is request
    assert engine.on_frame(reply, 0.002) is None
    assert engine.stats.duplicate_replies == 1
    assert engine.stats.replies == 1


def test_timeout_retransmits_with_a_fresh_tag_and_late_reply_is_dropped():
    engine, target = setup()
    request = engine.submit_read(0, 2)
    ((old_tag, old_frame),) = engine.poll_sends(0.0)
    # nothing before the first timeout of 16.5 s
    assert engine.next_deadline() == 16.5
    engine.on_tick(16.4)
    assert engine.stats.timeouts == 0
    engine.on_tick(16.5)
    assert engine.stats.timeouts == 1
    assert engine.window.maxout == 1 and engine.window.ssthresh == 4
    ((new_tag, new_frame),) = engine.poll_sends(16.5)
    assert new_tag != old_tag
    assert new_frame[24:] == old_frame[24:] and new_frame[:20] == old_frame[:20]
    assert engine.stats.retransmissions == 1
    # the answer to the first copy arrives late: counted, dropped
    (late,) = target.handle(old_frame)
    assert engine.on_frame(late, 16.6) is None
    assert engine.stats.late_replies == 1 and not request.done
    (answer,) = target.handle(new_frame)
    assert engine.on_frame(answer, 16.7) is request
    assert request.result() == bytes(1024)


def test_answer_to_timed_out_frame_before_resend_still_counts():
    engine, target = setup(bufcnt=2)
    engine.submit_read(0, 4)
    sends = engine.poll_sends(0.0)
    assert len(sends) == 1  # bufcnt 2: window starts at 1
    engine.on_tick(20.0)  # times out, waits in the retransmit queue
    assert engine.stats.timeouts == 1
    (reply,) = target.handle(sends[0][1])
    assert engine.on_frame(reply, 20.1) is None  # frame done, request not yet
    assert engine.stats.replies == 1 and engine.stats.late_replies == 0
    # the next send is the second frame, not a retransmission
    ((_, raw),) = engine.poll_sends(20.1)
    assert decode(raw).arg.lba == 2
    assert engine.stats.retransmissions == 0


def test_rto_ceiling_makes_timeouts_short():
    engine, target = setup(max_timeout=0.05)
    engine.submit_read(0, 2)
    engine.poll_sends(0.0)
    assert engine.next_deadline() == 0.05


def test_dead_target_after_dead_after_seconds():
    engine, target = setup(dead_after=60.0, max_timeout=1.0)
    request = engine.submit_read(0, 4)
    now = 0.0
    event = None
    while event is None and now < 100:
        engine.poll_sends(now)
        now += 0.5
        event = engine.on_tick(now)
    assert isinstance(event, TargetDead) and isinstance(event, TargetUnreachable)
    assert 60.0 < now <= 61.0
    # two frames share a window of 1 after the first timeout: each is resent every 2 s
    assert event.attempts > 25
    assert request.done
    with pytest.raises(TargetDead, match="did not answer"):
        request.result()
    assert engine.idle
    with pytest.raises(TargetDead):
        engine.submit_read(0, 1)


def test_dead_after_zero_retries_forever():
    engine, _ = setup(dead_after=0, max_timeout=1.0)
    engine.submit_read(0, 1)
    for i in range(500):
        engine.poll_sends(float(i))
        assert engine.on_tick(float(i) + 0.99 + 0.01) is None
    assert engine.stats.retransmissions >= 499


def test_ata_error_status_is_surfaced():
    engine, target = setup(sectors=100)
    engine.capacity = None  # let the request go past the end
    request = engine.submit_read(99, 2)
    run(engine, target)
    with pytest.raises(AtaError) as info:
        request.result()
    assert info.value.status == 0x41 and info.value.error == ATA_ERROR_IDNF
    assert engine.stats.ata_errors == 1


def test_ata_error_fails_a_multi_frame_request_once():
    engine, target = setup()
    target.ata_fail_lba[4] = 0x04
    request = engine.submit_write(0, bytes(512 * 10))
    run(engine, target)
    assert isinstance(request.error, AtaError) and request.error.lba == 4
    assert engine.idle


def test_aoe_error_reply_is_surfaced():
    engine, target = setup()
    target.aoe_fail_lba[0] = ERR_BAD_ARGUMENT
    request = engine.submit_read(0, 2)
    run(engine, target)
    with pytest.raises(AoEErrorReply, match="bad argument") as info:
        request.result()
    assert info.value.code == 2


def test_aoe_error_reply_dropped_like_linux_with_retry_policy():
    engine, target = setup(aoe_errors="retry", max_timeout=1.0, dead_after=5.0)
    target.aoe_fail_lba[0] = ERR_BAD_ARGUMENT
    request = engine.submit_read(0, 2)
    now = 0.0
    event = None
    while event is None:
        for reply in exchange(engine, target, now):
            assert engine.on_frame(reply, now + 0.001) is None
        now += 0.25
        event = engine.on_tick(now)
    assert engine.stats.aoe_errors >= 5 and engine.stats.retransmissions >= 4
    assert isinstance(request.error, TargetDead)


def test_runt_read_reply_is_an_error():
    engine, target = setup()
    request = engine.submit_read(0, 2)
    (reply,) = exchange(engine, target, 0.0)
    engine.on_frame(reply[:36 + 700], 0.001)
    with pytest.raises(RuntReply):
        request.result()


def test_frames_not_for_us_are_ignored():
    engine, target = setup()
    request = engine.submit_read(0, 2)
    (reply,) = exchange(engine, target, 0.0)
    other_slot = reply[:18] + b"\x03" + reply[19:]
    not_response = reply[:14] + bytes([reply[14] & ~0x08]) + reply[15:]
    tool_tag = reply[:20] + bytes([reply[20] | 0x80]) + reply[21:]
    for frame in (other_slot, not_response, tool_tag):
        assert engine.on_frame(frame, 0.001) is None
    assert engine.on_frame(reply[:30], 0.001) is None
    assert engine.stats.ignored_frames == 3 and engine.stats.malformed == 1
    assert engine.on_frame(reply, 0.001) is request


def test_unknown_tag_is_counted():
    engine, target = setup()
    engine.submit_read(0, 2)
    (reply,) = exchange(engine, target, 0.0)
    forged = reply[:20] + struct.pack("!I", 0x1234) + reply[24:]
    assert engine.on_frame(forged, 0.001) is None
    assert engine.stats.unknown_replies == 1


def test_identify_resets_the_estimate_and_returns_the_data():
    engine, target = setup()
    for _ in range(100):
        engine.rtt.sample(100)
    request = engine.submit_identify(0.0)
    assert engine.rtt.retransmit_timeout_us() == 16_500_000
    ((_, raw),) = engine.poll_sends(0.0)
    f = decode(raw)
    assert (f.arg.cmd_status, f.arg.sector_count, f.arg.lba) == (0xEC, 1, 0xA0 << 24)
    (reply,) = target.handle(raw)
    engine.on_frame(reply, 0.01)
    assert request.result()[:512] == target.identify


def test_flush_defaults_to_flush_cache():
    engine, target = setup()
    request = engine.submit_flush()
    ((_, raw),) = engine.poll_sends(0.0)
    assert decode(raw).arg.cmd_status == 0xE7
    engine.on_frame(target.handle(raw)[0], 0.001)
    assert request.done and request.error is None


def test_window_history_shows_collapse_and_growth():
    engine, target = setup(bufcnt=16, max_timeout=0.01)
    engine.submit_read(0, 200)
    engine.poll_sends(0.0)
    engine.on_tick(0.02)  # all 8 time out
    assert engine.window.maxout == 1
    run(engine, target, 0.02)
    maxouts = [m for _, m in engine.window_history]
    assert maxouts[:3] == [1, 8, 1]
    assert max(maxouts[3:]) >= 4
    counters = engine.counters()
    assert counters["timeouts"] == 8 and counters["retransmissions"] == 8
    assert counters["rtt_avg_us"] < 250_000
