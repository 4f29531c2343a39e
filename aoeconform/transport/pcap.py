"""Classic pcap files (not pcapng), written and read without third-party code.

The writer produces the format tcpdump and tshark read by default: little
endian, version 2.4, microsecond timestamps, link type 1 (Ethernet). Each
record is flushed as it is written, so a capture stays complete and
readable if the run is interrupted.

The reader also accepts big-endian files and nanosecond-resolution files
(magic 0xa1b23c4d); timestamps come back as float seconds.

``RecordingTransport`` wraps any transport and records every frame that
goes out and every frame that comes in.
"""

from __future__ import annotations

import io
import os
import struct
import threading
import time
from typing import BinaryIO, Iterator, List, NamedTuple, Optional, Union

from aoeconform.errors import UsageError
from aoeconform.transport.base import Transport

PCAP_MAGIC_USEC = 0xA1B2C3D4
PCAP_MAGIC_NSEC = 0xA1B23C4D
PCAP_VERSION = (2, 4)
LINKTYPE_ETHERNET = 1
DEFAULT_SNAPLEN = 262144

_GLOBAL_HEADER = struct.Struct("<IHHiIII")
_RECORD_HEADER_LE = struct.Struct("<IIII")


class PcapRecord(NamedTuple):
    timestamp: float
    data: bytes
    #: the frame's length on the wire (larger than len(data) if truncated)
    original_length: int


class PcapWriter:
    """Append Ethernet frames to a pcap file (a path or a binary file object)."""

    def __init__(
        self,
        target: Union[str, os.PathLike, BinaryIO],
        *,
        snaplen: int = DEFAULT_SNAPLEN,
        linktype: int = LINKTYPE_ETHERNET,
        flush_every: int = 1,
    ) -> None:
        if isinstance(target, (str, os.PathLike)):
            self._file: BinaryIO = open(target, "wb")
            self._owns_file = True
            self.path: Optional[str] = os.fspath(target)
        else:
            self._file = target
            self._owns_file = False
            self.path = getattr(target, "name", None)
        self.snaplen = snaplen
        self.linktype = linktype
        self.flush_every = max(1, flush_every)
        self._unflushed = 0
        self._lock = threading.Lock()
        self.count = 0
        self.closed = False
        self._file.write(_GLOBAL_HEADER.pack(PCAP_MAGIC_USEC, *PCAP_VERSION, 0, 0, snaplen, linktype))
        self._file.flush()

    def write(self, frame: bytes, timestamp: Optional[float] = None) -> None:
        """Record one frame; ``timestamp`` is seconds since the epoch (now if None)."""
        if timestamp is None:
            timestamp = time.time()
        seconds = int(timestamp)
        micros = int(round((timestamp - seconds) * 1_000_000))
        if micros >= 1_000_000:
            seconds += 1
            micros -= 1_000_000
        captured = frame[: self.snaplen]
        header = _RECORD_HEADER_LE.pack(seconds, micros, len(captured), len(frame))
        with self._lock:
            if self.closed:
                raise ValueError("write to a closed pcap writer")
            # one write call per record keeps records whole if interrupted
            self._file.write(header + bytes(captured))
            self.count += 1
            self._unflushed += 1
            if self._unflushed >= self.flush_every:
                self._file.flush()
                self._unflushed = 0

    def flush(self) -> None:
        with self._lock:
            if not self.closed:
                self._file.flush()
                self._unflushed = 0

    def close(self) -> None:
        with self._lock:
            if self.closed:
                return
            self.closed = True
            self._file.flush()
            if self._owns_file:
                self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class PcapReader:
    """Iterate over the records of a classic pcap file."""

    def __init__(self, source: Union[str, os.PathLike, BinaryIO, bytes]) -> None:
        if isinstance(source, (bytes, bytearray)):
            self._file: BinaryIO = io.BytesIO(bytes(source))
            self._owns_file = True
        elif isinstance(source, (str, os.PathLike)):
            self._file = open(source, "rb")
            self._owns_file = True
        else:
            self._file = source
            self._owns_file = False
        header = self._file.read(_GLOBAL_HEADER.size)
        if len(header) < _GLOBAL_HEADER.size:
            self.close()
            raise UsageError("not a pcap file: shorter than the 24-byte file header")
        for order in ("<", ">"):
            magic = struct.unpack(order + "I", header[:4])[0]
            if magic in (PCAP_MAGIC_USEC, PCAP_MAGIC_NSEC):
                break
        else:
            self.close()
            raise UsageError("not a classic pcap file (pcapng is not supported; convert with `editcap -F pcap`)")
        self._order = order
        self._divisor = 1_000_000 if magic == PCAP_MAGIC_USEC else 1_000_000_000
        _, major, minor, _, _, self.snaplen, self.linktype = struct.unpack(order + "IHHiIII", header)
        self.version = (major, minor)
        self._record = struct.Struct(order + "IIII")

    def __iter__(self) -> Iterator[PcapRecord]:
        read = self._file.read
        record = self._record
        while True:
            header = read(record.size)
            if len(header) < record.size:
                return  # end of file, or a record cut short by an interruption
            seconds, fraction, captured, original = record.unpack(header)
            data = read(captured)
            if len(data) < captured:
                return
            yield PcapRecord(seconds + fraction / self._divisor, data, original)

    def close(self) -> None:
        if self._owns_file:
            self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def read_pcap(source) -> List[PcapRecord]:
    """All records of a pcap file."""
    with PcapReader(source) as reader:
        return list(reader)


def write_pcap(path, frames, timestamps=None) -> None:
    """Write a list of frames (with optional timestamps) to ``path``."""
    with PcapWriter(path) as writer:
        for i, frame in enumerate(frames):
            writer.write(frame, None if timestamps is None else timestamps[i])


class RecordingTransport(Transport):
    """A transport that copies every frame sent and received into a pcap file.

    ``sink`` is a path (the file is created, and closed with the transport)
    or a ``PcapWriter`` (shared; the caller closes it).
    """

    def __init__(self, inner: Transport, sink: Union[str, os.PathLike, PcapWriter]) -> None:
        self.inner = inner
        if isinstance(sink, PcapWriter):
            self.writer = sink
            self._owns_writer = False
        else:
            self.writer = PcapWriter(sink)
            self._owns_writer = True
        self.mac = inner.mac
        self.mtu = inner.mtu
        self.name = inner.name

    def send(self, frame: bytes) -> None:
        self.writer.write(frame)
        self.inner.send(frame)

    def recv(self, timeout: Optional[float]) -> Optional[bytes]:
        frame = self.inner.recv(timeout)
        if frame is not None:
            self.writer.write(frame)
        return frame

    def recv_many(self, max_frames: int, timeout: Optional[float]) -> List[bytes]:
        frames = self.inner.recv_many(max_frames, timeout)
        for frame in frames:
            self.writer.write(frame)
        return frames

    def close(self) -> None:
        try:
            self.inner.close()
        finally:
            if self._owns_writer:
                self.writer.close()
