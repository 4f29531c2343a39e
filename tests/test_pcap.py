"""Our pcap writer and reader, and the recording transport."""

import struct

import pytest

from aoeconform.errors import UsageError
from aoeconform.transport.memory import MemoryLink
from aoeconform.transport.pcap import PcapReader, PcapWriter, RecordingTransport, read_pcap, write_pcap

A = bytes.fromhex("020000000001")
B = bytes.fromhex("020000000002")


def frame(dst, src, body=b""):
    return (dst + src + b"\x88\xa2" + b"\x10\x00\x00\x01\x02\x00" + b"\x00\x00\x00\x07" + body).ljust(60, b"\x00")


def test_file_header_bytes(tmp_path):
    path = tmp_path / "a.pcap"
    PcapWriter(path).close()
    raw = path.read_bytes()
    # magic, version 2.4, thiszone 0, sigfigs 0, snaplen, linktype 1 (Ethernet)
    assert raw[:4] == bytes.fromhex("d4c3b2a1")
    assert struct.unpack("<HHiIII", raw[4:24])[0:2] == (2, 4)
    assert struct.unpack("<I", raw[20:24])[0] == 1
    assert len(raw) == 24


def test_record_bytes(tmp_path):
    path = tmp_path / "a.pcap"
    with PcapWriter(path) as w:
        w.write(b"\xaa" * 60, timestamp=1700000000.25)
    raw = path.read_bytes()
    assert raw[24:40] == struct.pack("<IIII", 1700000000, 250000, 60, 60)
    assert raw[40:] == b"\xaa" * 60


def test_round_trip(tmp_path):
    path = tmp_path / "rt.pcap"
    frames = [frame(B, A, bytes([i]) * i) for i in range(1, 40)] + [bytes(9014)]
    stamps = [1000.0 + i * 0.001 for i in range(len(frames))]
    write_pcap(path, frames, stamps)
    records = read_pcap(path)
    assert [r.data for r in records] == frames
    assert [r.original_length for r in records] == [len(f) for f in frames]
    assert [round(r.timestamp, 6) for r in records] == [round(s, 6) for s in stamps]


def test_microsecond_rounding_carries_into_seconds(tmp_path):
    path = tmp_path / "c.pcap"
    with PcapWriter(path) as w:
        w.write(b"x" * 14, timestamp=5.9999999)
    assert read_pcap(path)[0].timestamp == 6.0


def test_snaplen_truncates_but_keeps_original_length(tmp_path):
    path = tmp_path / "s.pcap"
    with PcapWriter(path, snaplen=64) as w:
        w.write(bytes(range(100)))
    (record,) = read_pcap(path)
    assert record.data == bytes(range(64)) and record.original_length == 100


def test_each_record_is_on_disk_before_close(tmp_path):
    path = tmp_path / "live.pcap"
    w = PcapWriter(path)
    w.write(frame(B, A))
    w.write(frame(A, B))
    # read while the writer is still open: an interrupted run leaves this
    assert len(read_pcap(path)) == 2
    w.close()


def test_reader_ignores_a_record_cut_short(tmp_path):
    path = tmp_path / "cut.pcap"
    write_pcap(path, [frame(B, A), frame(A, B)])
    path.write_bytes(path.read_bytes()[:-10])
    assert len(read_pcap(path)) == 1


def test_reader_accepts_big_endian_and_nanoseconds():
    header = struct.pack(">IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 65535, 1)
    record = struct.pack(">IIII", 10, 500_000_000, 3, 3) + b"abc"
    (r,) = read_pcap(header + record)
    assert r.data == b"abc" and r.timestamp == 10.5


def test_reader_rejects_other_files():
    with pytest.raises(UsageError):
        PcapReader(b"\x0a\x0d\x0d\x0a" + bytes(40))  # pcapng
    with pytest.raises(UsageError):
        PcapReader(b"short")


def test_recording_transport_records_both_directions(tmp_path):
    path = tmp_path / "rec.pcap"
    with MemoryLink() as link:
        peer = link.endpoint(B)
        with RecordingTransport(link.endpoint(A), path) as rec:
            assert rec.mac == A and rec.mtu == 1500
            request = frame(B, A, b"req")
            rec.send(request)
            assert peer.recv(1) == request
            reply = frame(A, B, b"rsp")
            peer.send(reply)
            assert rec.recv(1) == reply
            assert rec.recv(0.01) is None  # a timeout records nothing
            peer.send_many([reply, reply])
            assert rec.recv_many(5, 1) == [reply, reply]
    assert [r.data for r in read_pcap(path)] == [request, reply, reply, reply]


def test_shared_writer_is_left_open(tmp_path):
    path = tmp_path / "shared.pcap"
    writer = PcapWriter(path)
    with MemoryLink() as link:
        link.endpoint(B)
        with RecordingTransport(link.endpoint(A), writer) as rec:
            rec.send(frame(B, A))
        assert not writer.closed
        writer.write(frame(A, B))
    writer.close()
    assert len(read_pcap(path)) == 2
