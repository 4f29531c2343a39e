"""Loss detection from later replies (``fast_retransmit``), driven by hand:
no sockets, no sleeping, time passed in. The RTT figures in the comments are
worked out from the estimator's fixed point (avg x256, dev x8; the first
sample R seeds avg R and dev R/2), as ``test_initiator_rtt`` does."""

import random

import pytest

from aoeconform.initiator.driver import HARNESS_TIMERS, LINUX_TIMERS
from aoeconform.initiator.engine import FAST_RETRANSMIT_AFTER, InitiatorEngine
from aoeconform.initiator.window import CongestionWindow
from aoeconform.wire import Frame

from fake_target import FakeTarget

SRC = bytes.fromhex("020000000001")
DST = bytes.fromhex("020000000002")


def setup(fast=True, **kw):
    """16 frames of 2 sectors; bufcnt 16, so the window starts at 8 with ssthresh 8."""
    kw.setdefault("bufcnt", 16)
    engine = InitiatorEngine(SRC, DST, 1, 2, sectors_per_frame=2, seed_rtt=True, min_timeout=0.005,
                             max_timeout=0.5, fast_retransmit=fast, **kw)
    target = FakeTarget(DST, sectors=1024)
    target.disk[:16384] = bytes(i % 253 for i in range(16384))
    request = engine.submit_read(0, 32)
    return engine, target, request


def lba(raw):
    return Frame.decode(raw).arg.lba


def answer(engine, target, raw, now):
    (reply,) = target.handle(raw)
    return engine.on_frame(reply, now)


def test_preset_and_default():
    assert FAST_RETRANSMIT_AFTER == 3
    assert HARNESS_TIMERS["fast_retransmit"] is True
    # the driver's own preset is untouched: no early loss detection
    assert LINUX_TIMERS == {"precise_timeouts": False, "seed_rtt": False, "min_timeout": 0.0, "max_timeout": None}
    assert InitiatorEngine(SRC, DST, 1, 2).fast_retransmit is False
    with pytest.raises(ValueError, match="fast_retransmit_after"):
        InitiatorEngine(SRC, DST, 1, 2, fast_retransmit_after=0)


def test_overtaken_frame_is_resent_early_with_a_fresh_tag_and_the_window_halves():
    engine, target, request = setup()
    sends = engine.poll_sends(0.0)  # f1..f8 (lba 0, 2, ..., 14), seq 1..8
    assert len(sends) == 8
    (t1, f1), (t2, f2), (t3, f3), (t4, f4), (t5, f5) = sends[:5]
    # f1, f3, f4, f5 answered after 1000 us; f2's request was lost.
    # avg 1000 throughout; dev 500 (seed), then 437, 382, 335 (x8: 4000, 3500, 3063, 2681)
    for raw in (f1, f3, f4, f5):
        answer(engine, target, raw, 0.001)
    assert (engine.rtt.avg_us, engine.rtt.dev_us) == (1000, 335)
    # f2 was overtaken 3 times, but has waited only 1000 us of its allowance
    # avg + 4 dev = 1000 + 1340 = 2340 us: not yet lost; the engine wants a tick then
    assert engine.stats.fast_losses == 0
    assert engine.next_deadline() == pytest.approx(0.00234)
    # window: f1 found it full (8 of 8): next_cwnd 16 -> 15; then 7, 6, 5, 4 out
    assert (engine.window.maxout, engine.window.nout) == (8, 4)
    engine.on_tick(0.00234)
    # rto = 2*1000 + 8*335 = 4680 us, floored to 5 ms: nothing timed out; f2 is lost
    assert engine.stats.timeouts == 0
    assert engine.stats.fast_losses == 1 and engine.stats.fast_recoveries == 1
    # fast recovery: ssthresh = max(8 // 2, 2) = 4, maxout = 4 (not 1); f2 left the window
    assert (engine.window.maxout, engine.window.ssthresh, engine.window.nout) == (4, 4, 3)
    assert engine.window.history[-1] == (0.00234, 4)
    # resent at once with a fresh tag, ahead of the pending frames; the window (4 of 4) then holds the rest
    resent = engine.poll_sends(0.00234)
    assert len(resent) == 1
    ((t2b, f2b),) = resent
    assert t2b != t2 and lba(f2b) == 2 and f2b[24:] == f2[24:]
    s = engine.stats
    assert (s.retransmissions, s.fast_retransmissions, s.timeout_retransmissions) == (1, 1, 0)
    # the original copy's answer turns up late after all: counted, dropped, not delivered
    assert answer(engine, target, f2, 0.0025) is None
    assert s.late_replies == 1 and s.replies == 4
    # the answer to the new tag completes the frame, once
    assert answer(engine, target, f2b, 0.0026) is None
    assert s.replies == 5 and s.duplicate_replies == 0


def test_lost_frame_found_by_a_reply_after_its_allowance():
    engine, target, _ = setup()
    sends = engine.poll_sends(0.0)
    f1, f2, f3, f4, f5 = (raw for _, raw in sends[:5])
    for raw in (f1, f3, f4):
        answer(engine, target, raw, 0.001)  # avg 1000, dev 382 (x8: 3063)
    assert engine.stats.fast_losses == 0
    # f5 answered after 4000 us: error 3000, avg x256 259000 -> 1011, dev x8 3063 + 3000 - 382 = 5681 -> 710;
    # f2, overtaken a third time, has waited 4000 us > 1011 + 4*710 = 3851 us: lost, no tick needed
    answer(engine, target, f5, 0.004)
    assert (engine.rtt.avg_us, engine.rtt.dev_us) == (1011, 710)
    assert engine.stats.fast_losses == 1 and engine.stats.timeouts == 0
    assert engine.window.maxout == 4
    assert lba(engine.poll_sends(0.004)[0][1]) == 2


def test_reordering_within_the_allowance_is_not_a_loss():
    engine, target, request = setup()
    sends = engine.poll_sends(0.0)
    f1, f2, f3, f4, f5 = (raw for _, raw in sends[:5])
    for raw in (f1, f3, f4, f5):
        answer(engine, target, raw, 0.001)
    # f2's answer was only held back: it arrives after 3 later ones, within 2340 us
    answer(engine, target, f2, 0.002)
    engine.on_tick(0.00234)  # the tick asked for earlier finds nothing to do
    s = engine.stats
    assert s.fast_losses == s.retransmissions == s.late_replies == 0
    assert engine.window.maxout == 8 and engine.window.ssthresh == 8
    # fewer than 3 later answers never declare a loss, however long the wait (until the timeout)
    engine2, target2, _ = setup()
    sends = engine2.poll_sends(0.0)
    for _, raw in sends[2:4]:  # f3, f4 only: f1 and f2 overtaken twice
        answer(engine2, target2, raw, 0.001)
    # (two samples: avg 1000, dev 437, so rto 2*1000 + 8*437 = 5500 us)
    engine2.on_tick(0.0054)
    assert engine2.stats.fast_losses == 0 and engine2.next_deadline() == pytest.approx(0.0055)


def test_a_timeout_still_collapses_the_window_to_one():
    engine, target, _ = setup()
    sends = engine.poll_sends(0.0)
    # only f2 and f3 answered: avg 1000, dev 500 then 437 (x8 3500); f1 overtaken twice
    for _, raw in sends[1:3]:
        answer(engine, target, raw, 0.001)
    # rto = 2*1000 + 8*437 (3500 x8 >> 3) = 5500 us; f1 and f4..f8 time out
    engine.on_tick(0.0055)
    s = engine.stats
    assert s.timeouts == 6 and s.fast_losses == 0
    # first timeout: ssthresh = 8 // 2, maxout 1; the others find it at 1
    assert (engine.window.maxout, engine.window.ssthresh) == (1, 4)
    ((_, raw),) = engine.poll_sends(0.0055)
    assert lba(raw) == 0
    assert (s.retransmissions, s.timeout_retransmissions, s.fast_retransmissions) == (1, 1, 0)
    # frames of the window the timeout cut make no fast-recovery cut on top of it
    assert engine._recover == 8


def test_several_losses_in_one_window_halve_once():
    engine, target, request = setup()
    sends = engine.poll_sends(0.0)
    raws = [raw for _, raw in sends]  # f1..f8, seq 1..8
    # f1 and f2 lost; f3..f6 answered after 1000 us: avg 1000, dev 335 (x8 2681), allowance 2340 us
    for raw in raws[2:6]:
        answer(engine, target, raw, 0.001)
    engine.on_tick(0.00234)
    s = engine.stats
    assert s.fast_losses == 2 and s.fast_recoveries == 1
    assert (engine.window.maxout, engine.window.ssthresh) == (4, 4)  # 8 -> 4 once, not 8 -> 4 -> 2
    # 8 out, f3 (full window: next_cwnd 15) .. f6 answered: 4 out, the two lost: 2 (f7, f8)
    resent = engine.poll_sends(0.00234)  # f1', f2' (seq 9, 10): 4 out of 4
    assert [lba(raw) for _, raw in resent] == [0, 2]
    # f7 (seq 7) was lost too. At 3500 us f8, f1' and f2' are answered:
    #   f8  sample 3500: error 2500, avg x256 258500 (1009), dev x8 2681 + 2500 - 335 = 4846 (605)
    #   f1' sample 1160: error 151,  avg 258651 (1010), dev 4846 + 151 - 605 = 4392 (549)
    #   f2' sample 1160: error 150,  avg 258801 (1010), dev 4392 + 150 - 549 = 3993 (499)
    # f7 is overtaken a third time and has waited 3500 > 1010 + 4*499 = 3006 us: lost.
    # It was sent before the cut (seq 7 <= 8): no second cut.
    answer(engine, target, raws[7], 0.0035)
    for _, raw in resent:
        answer(engine, target, raw, 0.0035)
    assert (engine.rtt.avg_us, engine.rtt.dev_us) == (1010, 499)
    assert s.fast_losses == 3 and s.fast_recoveries == 1
    assert (engine.window.maxout, engine.window.ssthresh) == (4, 4)
    assert s.timeouts == 0
    # f7' (seq 11) first, then f9..f11 (seq 12..14): 4 out
    more = engine.poll_sends(0.0035)
    assert [lba(raw) for _, raw in more] == [12, 16, 18, 20]
    # a frame sent after the cut that is lost makes a new cut: f9 (seq 12) lost,
    # f7', f10, f11 answered at 4000 us (avg ~1008, dev ~500), then f12 (seq 15) sent and answered:
    # f9 is overtaken by f10, f11, f12, and at 7500 us it has waited 4000 us, more than its
    # allowance of about 1000 + 4*520 us and less than the 5 ms floor of the timeout
    for _, raw in (more[0], more[2], more[3]):
        answer(engine, target, raw, 0.004)
    ((_, f12),) = engine.poll_sends(0.004)[:1]
    answer(engine, target, f12, 0.004)
    assert s.fast_losses == 3
    engine.on_tick(0.0075)
    assert s.timeouts == 0
    assert s.fast_losses == 4 and s.fast_recoveries == 2
    assert (engine.window.maxout, engine.window.ssthresh) == (2, 2)  # max(4 // 2, 2)


def test_without_the_option_the_same_loss_waits_for_its_timeout():
    engine, target, _ = setup(fast=False)
    sends = engine.poll_sends(0.0)
    for _, raw in (sends[0], sends[2], sends[3], sends[4], sends[5], sends[6]):
        answer(engine, target, raw, 0.001)
    engine.on_tick(0.004)
    assert engine.stats.fast_losses == 0 and engine.stats.timeouts == 0
    # rto 5 ms (floor): then f2 and f8 time out and the window collapses
    engine.on_tick(0.005)
    assert engine.stats.timeouts == 2 and engine.window.maxout == 1


def test_window_fast_loss_cuts():
    w = CongestionWindow(16)
    w.maxout, w.nout = 16, 15
    w.on_fast_loss(1.0)
    assert (w.maxout, w.ssthresh, w.next_cwnd, w.nout) == (8, 8, 8, 14)
    w.on_fast_loss(1.1, cut=False)  # a loss from the window already cut
    assert (w.maxout, w.ssthresh, w.nout) == (8, 8, 13)
    w.maxout = 3
    w.on_fast_loss(1.2)
    assert (w.maxout, w.ssthresh) == (2, 2)
    w.on_fast_loss(1.3)
    assert (w.maxout, w.ssthresh) == (2, 2)
    w.maxout = 1  # after a timeout: a fast loss never raises the window
    w.on_fast_loss(1.4)
    assert (w.maxout, w.ssthresh) == (1, 2)
    # growth after a cut is linear: a full window of replies, then +1
    w = CongestionWindow(16)
    w.maxout, w.nout = 16, 16
    w.on_fast_loss(0.0)
    assert (w.maxout, w.nout) == (8, 15)
    w.nout = 8
    for _ in range(8):
        w.on_answer(0.0)
        w.nout += 1  # refilled at once, so the window stays full
    assert w.maxout == 8
    w.on_answer(0.0)
    assert w.maxout == 9


@pytest.mark.parametrize("seed", range(6))
def test_random_loss_reordering_and_duplicates_deliver_everything_once(seed):
    """A simulated link with loss, duplication and reordering in both directions:
    the data comes back intact, every frame is answered once, the window never
    holds more than the buffer count, and the counters add up."""
    rng = random.Random(seed)
    engine = InitiatorEngine(SRC, DST, 1, 2, sectors_per_frame=2, bufcnt=8, seed_rtt=True, min_timeout=0.005,
                             max_timeout=0.5, fast_retransmit=True)
    target = FakeTarget(DST, sectors=4096)
    target.disk[:] = rng.randbytes(len(target.disk))
    requests = [engine.submit_read(i * 64, 64) for i in range(16)]
    now = 0.0
    wire = []  # (arrival time, order, reply)
    order = 0
    while not engine.idle:
        for _, raw in engine.poll_sends(now):
            assert engine.outstanding <= engine.window.nframes
            if rng.random() < 0.05:
                continue  # request lost
            for reply in target.handle(raw):
                for _ in range(2 if rng.random() < 0.05 else 1):
                    if rng.random() < 0.05:
                        continue  # reply lost
                    delay = 0.0002 + (0.0003 if rng.random() < 0.1 else 0.0) + rng.random() * 0.0001
                    order += 1
                    wire.append((now + delay, order, reply))
        wire.sort()
        deadline = engine.next_deadline()
        if wire and (deadline is None or wire[0][0] <= deadline):
            arrival, _, reply = wire.pop(0)
            now = max(now, arrival)
            engine.on_frame(reply, now)
        else:
            now = max(now, deadline if deadline is not None else now + 0.1)
            assert engine.on_tick(now) is None
    for i, request in enumerate(requests):
        assert request.result() == bytes(target.disk[i * 64 * 512:(i + 1) * 64 * 512])
    s = engine.stats
    assert s.replies == s.frames
    assert s.retransmissions == s.fast_retransmissions + s.timeout_retransmissions
    assert s.fast_retransmissions > 0 and s.fast_recoveries <= s.fast_losses


def test_bench_report_shows_fast_and_timeout_retransmissions_apart():
    from aoeconform.bench.initiator import report

    counters = {"retransmissions": 30, "fast_retransmissions": 27, "timeout_retransmissions": 3, "late_replies": 2}
    result = {
        "mtu": 9000, "seconds": 1.0, "rounds": 1, "ratio": 0.7,
        "bare": {"depth": 16, "sectors": 17, "mb_per_s": 500.0},
        "ours": {"mb_per_s": 350.0, "rtt_avg_us": 270, "rtt_dev_us": 80, "retransmit_timeout_us": 5000},
        "fault_layer": {"mb_per_s": 330.0, "fraction_of_ours": 0.94},
        "loss": [{"loss": 0.01, "mb_per_s": 270.0, "fraction_of_lossless": 0.82, "counters": counters}],
    }
    line = report(result, as_json=False).splitlines()[4]
    assert "30 retransmissions (27 fast, 3 after timeouts), 2 late replies" in line
