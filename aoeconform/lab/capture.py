"""A capture of the AoE frames on one interface, in both directions, in a thread.

Unlike ``RawTransport`` this socket keeps the frames sent from the host
(packet type PACKET_OUTGOING): on the host end of a guest's link those are
the frames the guest receives. Frames are kept cut to ``snaplen`` bytes
(the AoE and ATA headers are all the counts need) and written to a pcap as
they come. The kernel's count of frames it had to drop for want of buffer
space is reported, so counts made from a capture say when they are short.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from typing import List, Optional, Tuple

from aoeconform.errors import NoSuchInterface
from aoeconform.transport.pcap import PcapWriter
from aoeconform.transport.raw import ETH_P_AOE, SO_RCVBUFFORCE, SOL_PACKET, _attach_filter

PACKET_STATISTICS = 6
ETH_P_ALL = 0x0003
DEFAULT_SNAPLEN = 128
_RCVBUF = 32 << 20


def _aoe_only_filter() -> List[bytes]:
    """Classic BPF: keep frames whose EtherType (bytes 12-13) is AoE's."""
    ld_abs_h, jeq_k, ret_k = 0x28, 0x15, 0x06
    return [
        struct.pack("HBBI", ld_abs_h, 0, 0, 12),
        struct.pack("HBBI", jeq_k, 0, 1, ETH_P_AOE),
        struct.pack("HBBI", ret_k, 0, 0, 0xFFFFFFFF),
        struct.pack("HBBI", ret_k, 0, 0, 0),
    ]


class Capture:
    def __init__(self, iface: str, pcap_path: Optional[str] = None, snaplen: int = DEFAULT_SNAPLEN) -> None:
        self.iface = iface
        self.snaplen = snaplen
        #: (timestamp, frame cut to snaplen, length on the wire)
        self.frames: List[Tuple[float, bytes, int]] = []
        self.kernel_drops = 0
        #: receive errors met (the capture goes on after each)
        self.errors: List[str] = []
        try:
            # ETH_P_ALL: only "all protocols" taps see frames sent from this host
            self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        except PermissionError:
            from aoeconform.errors import PermissionDenied

            raise PermissionDenied("capturing needs root or CAP_NET_RAW; rerun with sudo") from None
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, _RCVBUF)
        except OSError:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF)
        try:
            _attach_filter(self._sock, _aoe_only_filter())
            self._sock.bind((iface, ETH_P_ALL))
        except OSError:
            self._sock.close()
            raise NoSuchInterface(f"cannot capture on {iface}: no such interface") from None
        self._sock.settimeout(0.1)
        self._writer = PcapWriter(pcap_path, snaplen=snaplen, flush_every=256) if pcap_path else None
        self.pcap_path = pcap_path
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"capture-{iface}", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        recv = self._sock.recv
        keep = self.frames.append
        snap = self.snaplen
        while not self._stop.is_set():
            try:
                frame = recv(65536)
            except socket.timeout:
                continue
            except OSError as exc:
                # a transient error (ENOBUFS, ENETDOWN while a link changes) must
                # not end the capture silently: counted, and the loop goes on
                self.errors.append(str(exc))
                if len(self.errors) > 100 or self._sock.fileno() < 0:
                    return
                time.sleep(0.001)
                continue
            now = time.time()
            keep((now, frame[:snap], len(frame)))
            if self._writer is not None:
                self._writer.write(frame, now)

    def _statistics(self) -> None:
        try:
            packets, drops = struct.unpack("II", self._sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
            self.kernel_drops += drops
        except OSError:
            pass

    def stop(self) -> List[Tuple[float, bytes, int]]:
        """Stop, close the pcap, and return the frames kept."""
        if not self._stop.is_set():
            time.sleep(0.05)  # the last frames in flight
            self._stop.set()
            self._thread.join(timeout=5)
            self._statistics()
            self._sock.close()
            if self._writer is not None:
                self._writer.close()
        return self.frames

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False
