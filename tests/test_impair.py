"""Impairments: deterministic decisions, rough rates, real reordering, timed release."""

import struct

import pytest

from aoeconform.transport.impair import Fate, ImpairedTransport, ImpairmentPolicy
from aoeconform.transport.memory import MemoryLink

A = bytes.fromhex("020000000001")
B = bytes.fromhex("020000000002")


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def numbered(i, dst=B, src=A):
    return dst + src + b"\x88\xa2" + struct.pack("!I", i) + bytes(46)


def number(frame):
    return struct.unpack_from("!I", frame, 14)[0]


def drain(transport):
    out = []
    while True:
        frame = transport.recv(0)
        if frame is None:
            return out
        out.append(number(frame))


def pair(**kw):
    link = MemoryLink()
    a, b = link.endpoint(A), link.endpoint(B)
    clock = FakeClock()
    kw.setdefault("direction", "send")
    return ImpairedTransport(a, clock=clock, **kw), b, clock


def test_policy_is_deterministic_for_a_seed():
    def fates(seed):
        policy = ImpairmentPolicy(seed, loss=0.1, dup=0.1, reorder=0.1, delay=0.001, jitter=0.001)
        return [policy.decide() for _ in range(500)]

    assert fates(1) == fates(1)
    assert fates(1) != fates(2)


def test_policy_rates_are_roughly_right():
    policy = ImpairmentPolicy(3, loss=0.1, dup=0.05, reorder=0.2)
    fates = [policy.decide() for _ in range(20000)]
    lost = sum(f.drop for f in fates) / len(fates)
    kept = [f for f in fates if not f.drop]
    dup = sum(f.copies == 2 for f in kept) / len(kept)
    held = sum(bool(f.hold) for f in kept) / len(kept)
    assert 0.09 < lost < 0.11
    assert 0.04 < dup < 0.06
    assert 0.18 < held < 0.22


def test_no_impairment_passes_everything():
    policy = ImpairmentPolicy(0)
    assert not policy.active
    assert all(policy.decide() == Fate() for _ in range(100))


def test_jitter_stays_in_bounds_and_never_negative():
    policy = ImpairmentPolicy(5, delay=0.002, jitter=0.005)
    delays = [policy.decide().delay for _ in range(2000)]
    assert min(delays) == 0.0 and max(delays) <= 0.007
    assert len(set(delays)) > 100


def test_bad_rates_are_refused():
    with pytest.raises(ValueError, match="probability"):
        ImpairmentPolicy(0, loss=1.5)
    with pytest.raises(ValueError, match="direction"):
        ImpairedTransport(MemoryLink().endpoint(A), direction="sideways")


def test_transport_is_deterministic_for_a_seed():
    def run(seed):
        sender, receiver, clock = pair(seed=seed, loss=0.1, dup=0.1, reorder=0.1, reorder_depth=2)
        for i in range(500):
            sender.send(numbered(i))
        clock.now += 1
        sender.send(numbered(9999))  # lets held frames time out
        return drain(receiver), sender.totals()

    first, counters = run(11)
    assert run(11) == (first, counters)
    assert run(12)[0] != first
    assert counters["dropped"] > 20 and counters["duplicated"] > 20 and counters["reordered"] > 20


def test_loss_and_duplication_rates_over_many_frames():
    sender, receiver, _ = pair(seed=1, loss=0.05, dup=0.05)
    for i in range(4000):
        sender.send(numbered(i))
    got = drain(receiver)
    c = sender.counters["send"]
    assert c.seen == 4000
    assert 150 < c.dropped < 250 and 150 < c.duplicated < 250
    assert len(got) == 4000 - c.dropped + c.duplicated == c.passed
    assert len(set(got)) == 4000 - c.dropped


def test_reorder_holds_a_frame_back_by_n_frames():
    sender, receiver, clock = pair(seed=4, reorder=0.1, reorder_depth=3)
    for i in range(300):
        sender.send(numbered(i))
    clock.now += 1
    sender.recv(0)  # release anything still held at the end
    got = drain(receiver)
    assert sorted(got) == list(range(300)), "reordering must not lose or invent frames"
    assert got != sorted(got), "nothing was reordered"
    # a frame held on its own comes out exactly 3 frames later than sent
    shifts = [got.index(n) - n for n in range(300)]
    assert 3 in shifts
    assert sender.counters["send"].reordered > 15


def test_held_frame_is_released_by_timeout_when_traffic_stops():
    sender, receiver, clock = pair(seed=0, reorder=1.0, reorder_depth=5, reorder_timeout=0.01)
    sender.send(numbered(1))
    assert drain(receiver) == []
    clock.now += 0.005
    assert sender.recv(0) is None  # a recv call also releases due sends
    assert drain(receiver) == []
    clock.now += 0.006
    sender.recv(0)
    assert drain(receiver) == [1]


def test_delay_releases_at_the_due_time():
    sender, receiver, clock = pair(seed=0, delay=0.05)
    sender.send(numbered(1))
    sender.send(numbered(2))
    assert drain(receiver) == []
    clock.now += 0.049
    sender.recv(0)
    assert drain(receiver) == []
    clock.now += 0.002
    sender.recv(0)
    assert drain(receiver) == [1, 2]
    assert sender.delayed == 2


def test_receive_direction_impairments():
    link = MemoryLink()
    a, b = link.endpoint(A), link.endpoint(B)
    clock = FakeClock()
    receiver = ImpairedTransport(b, seed=2, loss=0.2, dup=0.2, direction="recv", clock=clock)
    for i in range(1000):
        a.send(numbered(i))
    got = drain(receiver)
    c = receiver.counters
    assert c["send"].seen == 0
    assert c["recv"].seen == 1000 and 150 < c["recv"].dropped < 250
    assert len(got) == 1000 - c["recv"].dropped + c["recv"].duplicated


def test_recv_waits_for_a_delayed_frame_with_a_real_clock():
    link = MemoryLink()
    a, b = link.endpoint(A), link.endpoint(B)
    receiver = ImpairedTransport(b, seed=0, delay=0.02, direction="recv")
    a.send(numbered(7))
    assert receiver.recv(0) is None
    frame = receiver.recv(1.0)
    assert frame is not None and number(frame) == 7


def test_close_delivers_what_is_still_held():
    sender, receiver, _ = pair(seed=0, reorder=1.0, reorder_depth=9)
    sender.send(numbered(1))
    inner_recv = receiver
    sender.close()
    assert drain(inner_recv) == [1]


def test_recv_many_impairs_like_recv():
    """Batch receiving must not bypass the impairments: the same seed gives
    the same frames in the same order as receiving one at a time."""

    def received(batch):
        link = MemoryLink()
        a, b = link.endpoint(A), link.endpoint(B)
        receiver = ImpairedTransport(b, seed=5, loss=0.1, dup=0.1, direction="recv", clock=FakeClock())
        for i in range(500):
            a.send(numbered(i))
        out = []
        while True:
            frames = receiver.recv_many(32, 0) if batch else [f for f in [receiver.recv(0)] if f]
            if not frames:
                return out, receiver.counters["recv"].dropped
            out.extend(number(f) for f in frames)

    one_by_one, dropped = received(False)
    batched, dropped_batched = received(True)
    assert batched == one_by_one
    assert dropped == dropped_batched > 0
