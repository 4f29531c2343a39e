"""The in-memory link: delivery rules, timeouts and thread safety."""

import errno
import threading
import time

import pytest

from aoeconform.transport.base import Transport
from aoeconform.transport.memory import MemoryLink

A = bytes.fromhex("020000000001")
B = bytes.fromhex("020000000002")
C = bytes.fromhex("020000000003")
BROADCAST = b"\xff" * 6
AOE = b"\x88\xa2"


def frame(dst: bytes, src: bytes, payload: bytes = b"") -> bytes:
    return (dst + src + AOE + b"\x10\x00" + payload).ljust(60, b"\x00")


@pytest.fixture
def link():
    with MemoryLink() as link:
        yield link


def test_endpoint_is_a_transport(link):
    ep = link.endpoint(A, mtu=9000)
    assert isinstance(ep, Transport)
    assert ep.mac == A and ep.mtu == 9000
    assert link.endpoint("02:00:00:00:00:02").mac == B


def test_unicast_reaches_only_the_destination(link):
    a, b, c = link.endpoint(A), link.endpoint(B), link.endpoint(C)
    sent = frame(B, A, b"hello")
    a.send(sent)
    assert b.recv(1) == sent
    assert c.recv(0) is None
    assert a.recv(0) is None  # never your own frame


def test_broadcast_reaches_everyone_but_the_sender(link):
    a, b, c = link.endpoint(A), link.endpoint(B), link.endpoint(C)
    sent = frame(BROADCAST, A)
    a.send(sent)
    assert b.recv(1) == sent and c.recv(1) == sent
    assert a.recv(0) is None


def test_multicast_is_group_addressed(link):
    a, b = link.endpoint(A), link.endpoint(B)
    sent = frame(bytes.fromhex("01000c000001"), A)
    a.send(sent)
    assert b.recv(1) == sent


def test_promiscuous_endpoint_sees_frames_for_others(link):
    a, b = link.endpoint(A), link.endpoint(B)
    spy = link.endpoint(C, promiscuous=True)
    sent = frame(B, A)
    a.send(sent)
    assert spy.recv(1) == sent
    assert b.recv(1) == sent


def test_spoofed_source_reply_goes_to_the_spoofed_mac(link):
    # A frame to a MAC nobody owns is lost unless someone is promiscuous.
    a, b = link.endpoint(A), link.endpoint(B)
    a.send(frame(bytes.fromhex("020000000077"), B))
    assert a.recv(0) is None and b.recv(0) is None


def test_recv_timeout_waits_and_returns_none(link):
    ep = link.endpoint(A)
    start = time.monotonic()
    assert ep.recv(0.1) is None
    elapsed = time.monotonic() - start
    assert 0.09 <= elapsed < 1.0


def test_recv_blocks_until_another_thread_sends(link):
    a, b = link.endpoint(A), link.endpoint(B)
    sent = frame(B, A, b"x")
    timer = threading.Timer(0.05, a.send, args=(sent,))
    timer.start()
    try:
        assert b.recv(5) == sent
    finally:
        timer.join()


def test_order_is_kept_and_many_threads_lose_nothing(link):
    b = link.endpoint(B)
    senders = [link.endpoint(bytes([2, 0, 0, 0, 1, i])) for i in range(4)]
    per_sender = 500

    def blast(ep):
        for n in range(per_sender):
            ep.send(frame(B, ep.mac, n.to_bytes(2, "big")))

    threads = [threading.Thread(target=blast, args=(ep,)) for ep in senders]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = []
    while True:
        batch = b.recv_many(64, 0.05)
        if not batch:
            break
        got.extend(batch)
    assert len(got) == 4 * per_sender
    for ep in senders:
        seq = [int.from_bytes(f[16:18], "big") for f in got if f[6:12] == ep.mac]
        assert seq == list(range(per_sender))


def test_recv_many_returns_what_is_queued(link):
    a, b = link.endpoint(A), link.endpoint(B)
    frames = [frame(B, A, bytes([i])) for i in range(5)]
    assert a.send_many(frames) == 5
    assert b.pending() == 5
    assert b.recv_many(3, 1) == frames[:3]
    assert b.recv_many(10, 1) == frames[3:]
    assert b.recv_many(10, 0.01) == []


def test_mtu_is_enforced(link):
    a = link.endpoint(A, mtu=1500)
    small = link.endpoint(B, mtu=1500)
    big = link.endpoint(C, mtu=9000)
    with pytest.raises(OSError) as info:
        a.send(frame(B, A, bytes(1500)))  # 14 + 2 + 1500 > 1514
    assert info.value.errno == errno.EMSGSIZE
    jumbo = frame(BROADCAST, C, bytes(3000))
    big.send(jumbo)
    assert small.recv(0.01) is None  # too big for its MTU: dropped
    assert a.recv(0.01) is None


def test_runt_frames_are_delivered_unpadded(link):
    # vblade on veth emits frames under 60 bytes; the link must not pad.
    a, b = link.endpoint(A), link.endpoint(B)
    runt = B + A + AOE + bytes(18)
    a.send(runt)
    assert b.recv(1) == runt


def test_closed_endpoint_stops_receiving_and_cannot_send(link):
    a, b = link.endpoint(A), link.endpoint(B)
    b.close()
    a.send(frame(B, A))
    assert b.recv(0) is None
    with pytest.raises(OSError):
        b.send(frame(A, B))


def test_context_manager_closes(link):
    with link.endpoint(A) as a:
        assert not a.closed
    assert a.closed
