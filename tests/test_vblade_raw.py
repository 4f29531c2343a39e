"""RawTransport against Debian's vblade in a lab namespace.

These also pin down the vblade 25 behaviour the reference (§4, §8, §11)
describes, so a change in the target under the harness shows up here.
"""

import itertools
import os
import time

import pytest

from aoeconform.errors import NoSuchInterface
from aoeconform.transport import raw as raw_module
from aoeconform.transport.raw import RawTransport
from aoeconform.wire import AtaArg, ConfigArg, Frame, Header, constants as C

pytestmark = [pytest.mark.root, pytest.mark.vblade]

SECTOR = C.SECTOR_SIZE
_tags = itertools.count(0x80000000 | (os.getpid() << 8) & 0x7FFFFF00)


def next_tag() -> int:
    return next(_tags) & 0xFFFFFFFF


def exchange(transport, header: Header, arg, timeout: float = 2.0) -> Frame:
    """Send one request and return the response carrying its tag."""
    header.tag = next_tag()
    transport.send(Frame(header=header, arg=arg).encode(pad=True))
    deadline = time.monotonic() + timeout
    while True:
        raw = transport.recv(max(0.0, deadline - time.monotonic()))
        assert raw is not None, f"no reply to tag 0x{header.tag:08x} within {timeout} s"
        reply = Frame.decode(raw)
        if reply.header.response and reply.header.tag == header.tag:
            return reply


def ata_header(lab, transport, src=None) -> Header:
    return Header(dst=lab.target_mac, src=src or transport.mac, shelf=lab.shelf, slot=lab.slot, command=C.CMD_ATA)


def read_ext(lab, transport, lba, count) -> Frame:
    arg = AtaArg(aflags=C.AFLAG_E, sector_count=count, cmd_status=C.ATA_READ_SECTORS_EXT, lba=lba)
    return exchange(transport, ata_header(lab, transport), arg)


def read28(lab, transport, lba, count) -> Frame:
    # 28-bit opcodes carry the device register in lba3's high nibble (§3)
    lba_field = (lba & C.LBA28_MAX_SECTORS) | (C.LBA_MODE_BITS << 24)
    arg = AtaArg(aflags=0, sector_count=count, cmd_status=C.ATA_READ_SECTORS, lba=lba_field)
    return exchange(transport, ata_header(lab, transport), arg)


def write(lab, transport, lba, data, extended=True) -> Frame:
    count = len(data) // SECTOR
    if extended:
        arg = AtaArg(aflags=C.AFLAG_E | C.AFLAG_W, sector_count=count, cmd_status=C.ATA_WRITE_SECTORS_EXT, lba=lba, data=data)
    else:
        arg = AtaArg(aflags=C.AFLAG_W, sector_count=count, cmd_status=C.ATA_WRITE_SECTORS,
                     lba=lba | (C.LBA_MODE_BITS << 24), data=data)
    return exchange(transport, ata_header(lab, transport), arg)


def assert_ata_ok(reply: Frame) -> None:
    assert not reply.header.error_flag, reply.describe()
    assert reply.arg.cmd_status == C.ATA_STATUS_OK, reply.describe()
    assert reply.arg.err_feature == 0
    assert reply.arg.sector_count == 0


def query_config(lab, transport, shelf=C.SHELF_BROADCAST, slot=C.SLOT_BROADCAST) -> Frame:
    header = Header(dst=C.BROADCAST_MAC, src=transport.mac, shelf=shelf, slot=slot, command=C.CMD_QUERY_CONFIG)
    return exchange(transport, header, ConfigArg(ccmd=C.CCMD_READ))


# -- Query Config ----------------------------------------------------------


def check_config_reply(lab, transport, reply, sectors):
    h, a = reply.header, reply.arg
    assert (h.shelf, h.slot) == (1, 2)
    assert h.response and not h.error_flag and h.ver == 1
    assert h.dst == transport.mac and h.src == lab.target_mac
    assert a.bufcnt == 16
    assert a.firmware == 0x4019
    assert a.sector_count == sectors
    assert (a.version, a.ccmd) == (1, C.CCMD_READ)
    assert a.config == b""


def test_broadcast_query_config_mtu_1500(vblade_lab, vblade_transport):
    reply = query_config(vblade_lab, vblade_transport)
    check_config_reply(vblade_lab, vblade_transport, reply, sectors=2)


def test_broadcast_query_config_mtu_9000(vblade_lab_jumbo):
    with vblade_lab_jumbo.transport() as t:
        assert t.mtu == 9000
        reply = query_config(vblade_lab_jumbo, t)
        check_config_reply(vblade_lab_jumbo, t, reply, sectors=17)


def test_query_config_for_another_slot_gets_no_reply(vblade_lab, vblade_transport):
    header = Header(dst=C.BROADCAST_MAC, src=vblade_transport.mac, shelf=1, slot=3, command=C.CMD_QUERY_CONFIG, tag=next_tag())
    vblade_transport.send(Frame(header=header, arg=ConfigArg()).encode(pad=True))
    assert vblade_transport.recv(0.3) is None


# -- ATA reads and writes --------------------------------------------------


@pytest.mark.parametrize("lba", [0, 1, 7, 1000, 2046])
def test_read_ext_matches_image(vblade_lab, vblade_transport, lba):
    count = vblade_lab.max_sectors
    reply = read_ext(vblade_lab, vblade_transport, lba, count)
    assert_ata_ok(reply)
    data = reply.arg.data
    assert len(data) == count * SECTOR
    assert data == vblade_lab.read_image(lba * SECTOR, count * SECTOR)


def test_read_lba_bytes_are_little_endian(vblade_lab, vblade_transport):
    # LBA 0x000102 must read sector 258, not 0x020100
    reply = read_ext(vblade_lab, vblade_transport, 0x000102, 1)
    assert_ata_ok(reply)
    assert reply.arg.data[:SECTOR] == vblade_lab.read_image(0x102 * SECTOR, SECTOR)


@pytest.mark.parametrize("lba", [0, 3, 1500])
def test_read_28bit_matches_image(vblade_lab, vblade_transport, lba):
    reply = read28(vblade_lab, vblade_transport, lba, 2)
    assert_ata_ok(reply)
    assert reply.arg.data[: 2 * SECTOR] == vblade_lab.read_image(lba * SECTOR, 2 * SECTOR)


def test_read_starts_from_random_data(vblade_lab, vblade_transport):
    reply = read_ext(vblade_lab, vblade_transport, 0, 1)
    assert reply.arg.data[:SECTOR] == vblade_lab.initial_data[:SECTOR]


def test_read_past_the_end_is_idnf(vblade_lab, vblade_transport):
    last = vblade_lab.image_size // SECTOR
    reply = read_ext(vblade_lab, vblade_transport, last, 1)
    assert not reply.header.error_flag
    assert reply.arg.cmd_status == C.ATA_STATUS_ERROR
    assert reply.arg.err_feature == C.ATA_ERROR_IDNF


@pytest.mark.parametrize("extended", [True, False], ids=["write_ext", "write28"])
def test_write_then_read_back(vblade_lab, vblade_transport, extended):
    lba = 40000 if extended else 50000  # beyond the random region, separate per case
    payload = os.urandom(vblade_lab.max_sectors * SECTOR)
    assert_ata_ok(write(vblade_lab, vblade_transport, lba, payload, extended=extended))
    reply = read_ext(vblade_lab, vblade_transport, lba, vblade_lab.max_sectors)
    assert_ata_ok(reply)
    assert reply.arg.data[: len(payload)] == payload
    assert vblade_lab.read_image(lba * SECTOR, len(payload)) == payload


def test_jumbo_read_and_write(vblade_lab_jumbo):
    lab = vblade_lab_jumbo
    with lab.transport() as t:
        assert lab.max_sectors == 17
        reply = read_ext(lab, t, 100, 17)
        assert_ata_ok(reply)
        assert len(reply.arg.data) == 17 * SECTOR
        assert reply.arg.data == lab.read_image(100 * SECTOR, 17 * SECTOR)
        payload = os.urandom(17 * SECTOR)
        assert_ata_ok(write(lab, t, 60000, payload))
        assert lab.read_image(60000 * SECTOR, len(payload)) == payload
        assert read_ext(lab, t, 60000, 17).arg.data == payload


def test_too_many_sectors_is_aoe_error_2(vblade_lab, vblade_transport):
    reply = read_ext(vblade_lab, vblade_transport, 0, 200)
    assert reply.header.error_flag and reply.header.error == C.ERR_BAD_ARGUMENT


# -- the transport itself ----------------------------------------------------


def test_pipelined_reads_with_send_many_and_recv_many(vblade_lab, vblade_transport):
    t = vblade_transport
    count = vblade_lab.max_sectors
    base = next_tag()
    frames = {}
    for i in range(16):
        header = ata_header(vblade_lab, t)
        header.tag = (base + i) & 0xFFFFFFFF
        lba = i * count
        frames[header.tag] = lba
        t.send_many([Frame(header=header, arg=AtaArg(aflags=C.AFLAG_E, sector_count=count,
                                                      cmd_status=C.ATA_READ_SECTORS_EXT, lba=lba)).encode(pad=True)])
    got = {}
    deadline = time.monotonic() + 3
    while len(got) < 16 and time.monotonic() < deadline:
        for raw in t.recv_many(64, 0.5):
            reply = Frame.decode(raw)
            got[reply.header.tag] = reply
    assert set(got) == set(frames)
    for tag, reply in got.items():
        assert reply.arg.data[: count * SECTOR] == vblade_lab.read_image(frames[tag] * SECTOR, count * SECTOR)


def test_replies_to_a_spoofed_source_mac_are_received(vblade_lab):
    spoofed = bytes.fromhex("020000000077")
    with vblade_lab.transport() as t:
        arg = AtaArg(aflags=C.AFLAG_E, sector_count=1, cmd_status=C.ATA_READ_SECTORS_EXT, lba=5)
        reply = exchange(t, ata_header(vblade_lab, t, src=spoofed), arg)
        assert reply.header.dst == spoofed
        assert reply.arg.data[:SECTOR] == vblade_lab.read_image(5 * SECTOR, SECTOR)


def test_mac_filter_when_accept_all_is_off(vblade_lab):
    spoofed = bytes.fromhex("020000000078")
    with vblade_lab.transport(accept_all=False) as t:
        request = Frame(header=ata_header(vblade_lab, t, src=spoofed),
                        arg=AtaArg(aflags=C.AFLAG_E, sector_count=1, cmd_status=C.ATA_READ_SECTORS_EXT, lba=5))
        request.header.tag = next_tag()
        t.send(request.encode(pad=True))
        assert t.recv(0.3) is None  # addressed to a MAC we were not told about
        t.add_mac(spoofed)
        reply = exchange(t, request.header, request.arg)
        assert reply.header.dst == spoofed
        # our own MAC is always accepted
        assert query_config(vblade_lab, t).header.dst == t.mac


@pytest.mark.parametrize("mode", ["ignore_outgoing", "bpf_filter", "recvfrom"])
def test_own_frames_are_never_returned(vblade_lab, monkeypatch, mode):
    """Each way of dropping our own frames: kernel option, BPF, userspace."""
    if mode == "bpf_filter":
        monkeypatch.setattr(raw_module, "PACKET_IGNORE_OUTGOING", -1)  # the option fails
    elif mode == "recvfrom":
        monkeypatch.setattr(RawTransport, "_drop_own_frames", staticmethod(lambda sock: False))
    with vblade_lab.transport() as t:
        assert t._kernel_drops_outgoing == (mode != "recvfrom")
        # a request for a slot nobody has: only our own copy could come back
        header = Header(dst=C.BROADCAST_MAC, src=t.mac, shelf=9, slot=9, command=C.CMD_QUERY_CONFIG, tag=next_tag())
        t.send(Frame(header=header, arg=ConfigArg()).encode(pad=True))
        assert t.recv(0.2) is None
        assert query_config(vblade_lab, t).header.response


def test_recv_timeout_is_honoured(vblade_lab, vblade_transport):
    start = time.monotonic()
    assert vblade_transport.recv(0.15) is None
    assert vblade_transport.recv_many(8, 0.05) == []
    elapsed = time.monotonic() - start
    assert 0.19 <= elapsed < 1.0


def test_transport_reads_mac_and_mtu_from_the_interface(vblade_lab, vblade_transport):
    assert vblade_transport.mac == vblade_lab.lab.host_mac
    assert vblade_transport.mtu == 1500
    assert vblade_transport.name == vblade_lab.host_if


def test_missing_interface_is_a_one_line_error(require_root):
    with pytest.raises(NoSuchInterface) as info:
        RawTransport("aoecnothere0h")
    assert "aoeconform lab up" in str(info.value) and "\n" not in str(info.value)
