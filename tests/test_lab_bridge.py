"""The impairment bridge: its core in memory (no sockets, the time given), then over a lab."""

import threading
import time

import pytest

from aoeconform.cli import main
from aoeconform.lab.bridge import TO_INITIATOR, TO_TARGET, BridgeCore, BridgeSpec, FrameFilter, Impairment, serve
from aoeconform.wire import AtaArg, Frame, Header
from aoeconform.wire.constants import CMD_ATA, FLAG_RESPONSE

INI = bytes.fromhex("020000000011")
TGT = bytes.fromhex("020000000022")


def ata(tag, write=False, response=False):
    header = Header(dst=INI if response else TGT, src=TGT if response else INI, shelf=1, slot=2, command=CMD_ATA,
                    tag=tag, flags=FLAG_RESPONSE if response else 0)
    arg = AtaArg(aflags=0x41 if write else 0x40, sector_count=1, cmd_status=0x34 if write else 0x24,
                 data=bytes(512) if write and not response else b"")
    return Frame(header=header, arg=arg).encode(pad=True)


def pump(core, frames, direction="to_target", t0=0.0):
    out = []
    for i, frame in enumerate(frames):
        now = t0 + i * 0.001
        out += core.from_initiator(frame, now) if direction == TO_TARGET else core.from_target(frame, now)
        out += core.due(now)[0 if direction == TO_TARGET else 1]
    out += core.due(1e9)[0 if direction == TO_TARGET else 1]
    return out


def tags(frames):
    return [int.from_bytes(f[20:24], "big") for f in frames]


def test_clean_bridge_forwards_everything_in_order():
    core = BridgeCore(BridgeSpec())
    frames = [ata(i) for i in range(50)]
    assert pump(core, frames) == frames
    assert core.counters()[TO_TARGET]["forwarded"] == 50


def test_same_seed_same_fates_and_directions_are_independent():
    spec = BridgeSpec.symmetric(seed=4, loss=0.2, dup=0.1, reorder=0.1)
    frames = [ata(i) for i in range(300)]
    a, b = pump(BridgeCore(spec), frames), pump(BridgeCore(spec), frames)
    assert a == b
    replies = [ata(i, response=True) for i in range(300)]
    back = pump(BridgeCore(spec), replies, TO_INITIATOR)
    assert tags(back) != tags(a)  # each direction draws its own stream
    counters = BridgeCore(spec)
    pump(counters, frames)
    c = counters.counters()[TO_TARGET]
    assert 30 < c["dropped"] < 90 and c["duplicated"] > 10 and c["reordered"] > 10
    assert c["forwarded"] == 300 - c["dropped"] + c["duplicated"]


def test_reordering_changes_the_order_but_loses_nothing():
    core = BridgeCore(BridgeSpec.symmetric(seed=1, reorder=0.3))
    frames = [ata(i) for i in range(200)]
    out = pump(core, frames)
    assert sorted(tags(out)) == list(range(200)) and tags(out) != list(range(200))


def test_delay_holds_frames_until_their_time():
    core = BridgeCore(BridgeSpec(to_target=Impairment(delay=0.5)))
    assert core.from_initiator(ata(1), 10.0) == []
    assert core.next_due() == pytest.approx(10.5)
    assert core.due(10.4) == ([], [])
    assert tags(core.due(10.5)[0]) == [1]


def test_only_writes_are_dropped():
    core = BridgeCore(BridgeSpec(to_target=Impairment(loss=1.0), only=FrameFilter("writes")))
    frames = [ata(i, write=i % 2 == 0) for i in range(20)]
    assert tags(pump(core, frames)) == list(range(1, 20, 2))
    assert core.counters()[TO_TARGET]["selected"] == 10


def test_one_tag_only():
    core = BridgeCore(BridgeSpec(to_target=Impairment(dup=1.0), only=FrameFilter(tag=7)))
    assert tags(pump(core, [ata(i) for i in range(10)])) == [0, 1, 2, 3, 4, 5, 6, 7, 7, 8, 9]


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError):
        FrameFilter("everything")


def test_bad_rates_are_one_line_errors(capsys):
    assert main(["lab", "bridge", "--to-target", "lose=0.1"]) == 2
    assert main(["lab", "bridge", "--to-target", "loss=2"]) == 2
    with pytest.raises(SystemExit) as exc:
        main(["lab", "bridge", "--loss", "1.5"])
    assert exc.value.code == 2
    assert "probability" in capsys.readouterr().err


def test_over_a_lab_replies_are_duplicated_and_writes_dropped(require_root, tmp_path):
    """The reference target behind the bridge: every reply arrives twice; with
    writes dropped, reads still pass."""
    from aoeconform.lab import BridgedLab, make_sparse_image
    from aoeconform.transport.pcap import read_pcap
    from aoeconform.transport.raw import RawTransport
    from conftest import unique_lab_name

    lab = BridgedLab(unique_lab_name())
    try:
        lab.up()
        image = make_sparse_image(tmp_path / "disk.img", "1M")
        lab.start_reference_target(1, 2, image)
        target_mac = lab.target_mac
        spec = BridgeSpec(to_target=Impairment(loss=1.0), to_initiator=Impairment(dup=1.0), only=FrameFilter("writes"))
        stop, ready = threading.Event(), threading.Event()
        result = {}
        thread = threading.Thread(target=lambda: result.update(core=serve(
            lab.bridge_if, lab.host_if, spec, stop=stop, ready=ready, initiator_pcap=str(tmp_path / "i.pcap"))))
        thread.start()
        assert ready.wait(5)
        with RawTransport(lab.initiator_if) as t:
            def exchange(tag, write):
                frame = bytearray(ata(tag, write=write))
                frame[0:6], frame[6:12] = target_mac, t.mac
                t.send(bytes(frame))
                got, deadline = [], time.monotonic() + 0.3
                while time.monotonic() < deadline:
                    reply = t.recv(0.05)
                    if reply is not None and reply[20:24] == tag.to_bytes(4, "big"):
                        got.append(reply)
                return got

            reads = [len(exchange(100 + i, False)) for i in range(5)]
            writes = [len(exchange(200 + i, True)) for i in range(3)]
        stop.set()
        thread.join(5)
        # the filter is on writes: reads and their replies pass untouched
        assert reads == [1] * 5
        assert writes == [0] * 3
        c = result["core"].counters()
        assert c[TO_TARGET]["dropped"] == 3 and c[TO_TARGET]["selected"] == 3
        assert len(read_pcap(str(tmp_path / "i.pcap"))) == 5 * 2 + 3
    finally:
        lab.down()
