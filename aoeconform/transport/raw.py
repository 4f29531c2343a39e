"""AoE frames over a Linux AF_PACKET raw socket bound to one interface.

The socket is bound to EtherType 0x88A2, so the kernel hands us AoE frames
only. Two choices keep the receive path cheap, because it is benchmarked
against vblade:

* Frames we sent ourselves (packet type PACKET_OUTGOING) are dropped in the
  kernel, by PACKET_IGNORE_OUTGOING where the kernel has it and by a small
  classic BPF filter on the packet type otherwise. ``recv`` then uses plain
  ``recv()``: CPython's ``recvfrom()`` on a packet socket builds an address
  tuple and issues an extra SIOCGIFNAME ioctl for every frame.
* Frames addressed to other MACs (PACKET_OTHERHOST) are accepted. One
  interface plays several initiators by sending with made-up source MACs,
  and the target's replies to those MACs must come back to us. On a veth
  pair they arrive without promiscuous mode.

With ``accept_all=False`` only frames to our own MAC, to group (broadcast or
multicast) addresses, or to one of ``extra_macs`` are returned. With
``promiscuous`` the interface is put in promiscuous mode for as long as the
socket is open, so frames to made-up MACs arrive on a real NIC too.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import select
import socket
import struct
import time
from typing import Iterable, List, Optional

from aoeconform.errors import NoSuchInterface, PermissionDenied
from aoeconform.transport.base import Transport

ETH_P_AOE = 0x88A2
ETH_HEADER_LEN = 14

# <linux/if_packet.h>, <asm-generic/socket.h>, <linux/sockios.h>, <linux/filter.h>
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
PACKET_OUTGOING = 4
PACKET_IGNORE_OUTGOING = 23
SO_SNDBUFFORCE = 32
SO_RCVBUFFORCE = 33
SO_ATTACH_FILTER = 26
SIOCGIFMTU = 0x8921
SIOCGIFHWADDR = 0x8927
SKF_AD_OFF = -0x1000
SKF_AD_PKTTYPE = 4

DEFAULT_RCVBUF = 8 * 1024 * 1024
DEFAULT_SNDBUF = 4 * 1024 * 1024

# Room beyond the MTU in the receive buffer (a VLAN tag, a misconfigured
# peer): a frame larger than the buffer would be silently truncated.
_RECV_SLACK = 256


def _drop_outgoing_filter() -> List[bytes]:
    """Classic BPF: return 0 (drop) when the packet type is PACKET_OUTGOING."""
    ld_abs_w = 0x20  # BPF_LD | BPF_W | BPF_ABS
    jeq_k = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
    ret_k = 0x06  # BPF_RET | BPF_K
    pkttype = (SKF_AD_OFF + SKF_AD_PKTTYPE) & 0xFFFFFFFF
    return [
        struct.pack("HBBI", ld_abs_w, 0, 0, pkttype),
        struct.pack("HBBI", jeq_k, 0, 1, PACKET_OUTGOING),
        struct.pack("HBBI", ret_k, 0, 0, 0),
        struct.pack("HBBI", ret_k, 0, 0, 0xFFFFFFFF),
    ]


def _attach_filter(sock: socket.socket, instructions: List[bytes]) -> None:
    program = ctypes.create_string_buffer(b"".join(instructions))
    # struct sock_fprog { unsigned short len; struct sock_filter *filter; }
    fprog = struct.pack("HL", len(instructions), ctypes.addressof(program))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
    # the kernel copies the program during setsockopt; `program` may go now


def _ifreq(sock: socket.socket, request: int, name: str) -> bytes:
    return fcntl.ioctl(sock.fileno(), request, struct.pack("16s16x", name.encode()))


def _set_buffer(sock: socket.socket, forced: int, plain: int, size: int) -> None:
    # The *FORCE variants ignore net.core.[rw]mem_max but need CAP_NET_ADMIN.
    try:
        sock.setsockopt(socket.SOL_SOCKET, forced, size)
    except OSError:
        try:
            sock.setsockopt(socket.SOL_SOCKET, plain, size)
        except OSError:
            pass


class RawTransport(Transport):
    """Send and receive whole AoE Ethernet frames on interface ``iface``."""

    def __init__(
        self,
        iface: str,
        *,
        accept_all: bool = True,
        extra_macs: Iterable[bytes] = (),
        rcvbuf: int = DEFAULT_RCVBUF,
        sndbuf: int = DEFAULT_SNDBUF,
        promiscuous: bool = False,
    ) -> None:
        self.name = iface
        try:
            ifindex = socket.if_nametoindex(iface)
        except OSError:
            raise NoSuchInterface(
                f"interface {iface} does not exist; create a lab with `aoeconform lab up` "
                f"or name an existing interface"
            ) from None
        try:
            # Protocol 0 until bind: the socket receives nothing from other
            # interfaces in between.
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        except PermissionError:
            raise PermissionDenied(
                "raw sockets need root or CAP_NET_RAW; rerun with sudo "
                "or grant the capability to the Python interpreter"
            ) from None
        self._sock = sock
        try:
            self._kernel_drops_outgoing = self._drop_own_frames(sock)
            _set_buffer(sock, SO_RCVBUFFORCE, socket.SO_RCVBUF, rcvbuf)
            _set_buffer(sock, SO_SNDBUFFORCE, socket.SO_SNDBUF, sndbuf)
            try:
                sock.bind((iface, ETH_P_AOE))
            except OSError as exc:
                if exc.errno in (errno.ENODEV, errno.ENXIO):
                    raise NoSuchInterface(
                        f"interface {iface} does not exist; create a lab with `aoeconform lab up`"
                    ) from None
                raise
            if promiscuous:
                # Replies to a spoofed source MAC (a second initiator) pass a real
                # NIC's filter only this way; the membership ends with the socket.
                sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, struct.pack("iHH8s", ifindex, PACKET_MR_PROMISC, 0, b""))
            self.mac = _ifreq(sock, SIOCGIFHWADDR, iface)[18:24]
            self.mtu = struct.unpack_from("i", _ifreq(sock, SIOCGIFMTU, iface), 16)[0]
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self._bufsize = self.mtu + ETH_HEADER_LEN + _RECV_SLACK
        self._poller = select.poll()
        self._poller.register(sock.fileno(), select.POLLIN)
        self._out_poller = select.poll()
        self._out_poller.register(sock.fileno(), select.POLLOUT)
        self.accept_all = accept_all
        self._macs = {bytes(m) for m in extra_macs}
        self._macs.add(self.mac)
        self.closed = False

    @staticmethod
    def _drop_own_frames(sock: socket.socket) -> bool:
        """Ask the kernel not to loop our own frames back; True if it agreed."""
        try:
            sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            return True
        except OSError:
            pass
        try:
            _attach_filter(sock, _drop_outgoing_filter())
            return True
        except OSError:
            return False

    # -- addresses ---------------------------------------------------------

    def add_mac(self, mac: bytes) -> None:
        """Also accept frames to ``mac`` when ``accept_all`` is off."""
        self._macs.add(bytes(mac))

    def remove_mac(self, mac: bytes) -> None:
        if bytes(mac) != self.mac:
            self._macs.discard(bytes(mac))

    def _wanted(self, frame: bytes) -> bool:
        return bool(frame[0] & 1) or frame[0:6] in self._macs

    # -- sending -----------------------------------------------------------

    def send(self, frame: bytes) -> None:
        try:
            self._sock.send(frame)
        except BlockingIOError:
            self._send_when_writable(frame)

    def _send_when_writable(self, frame: bytes) -> None:
        while True:
            self._out_poller.poll(1000)
            try:
                self._sock.send(frame)
                return
            except BlockingIOError:
                continue

    def send_many(self, frames: Iterable[bytes]) -> int:
        """Send every frame in order; returns how many were sent."""
        send = self._sock.send
        count = 0
        for frame in frames:
            try:
                send(frame)
            except BlockingIOError:
                self._send_when_writable(frame)
            count += 1
        return count

    # -- receiving ---------------------------------------------------------

    def _recv_ready(self) -> Optional[bytes]:
        """One wanted frame already queued in the kernel, or None."""
        sock = self._sock
        bufsize = self._bufsize
        while True:
            if self._kernel_drops_outgoing:
                try:
                    frame = sock.recv(bufsize)
                except BlockingIOError:
                    return None
            else:
                try:
                    frame, address = sock.recvfrom(bufsize)
                except BlockingIOError:
                    return None
                if address[2] == PACKET_OUTGOING:
                    continue
            if self.accept_all or self._wanted(frame):
                return frame

    def _wait_readable(self, deadline: Optional[float]) -> bool:
        if deadline is None:
            self._poller.poll()
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        self._poller.poll(remaining * 1000.0)  # milliseconds, rounded up
        return True

    def recv(self, timeout: Optional[float]) -> Optional[bytes]:
        frame = self._recv_ready()
        if frame is not None:
            return frame
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._wait_readable(deadline):
            frame = self._recv_ready()
            if frame is not None:
                return frame
        return None

    def recv_many(self, max_frames: int, timeout: Optional[float]) -> List[bytes]:
        """Wait up to ``timeout`` for a first frame, then take whatever else is
        already queued, up to ``max_frames`` in all. Empty list on timeout."""
        first = self.recv(timeout)
        if first is None:
            return []
        frames = [first]
        recv_ready = self._recv_ready
        while len(frames) < max_frames:
            frame = recv_ready()
            if frame is None:
                break
            frames.append(frame)
        return frames

    # -- lifetime ----------------------------------------------------------

    def fileno(self) -> int:
        return self._sock.fileno()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._sock.close()

    def __repr__(self) -> str:
        mac = ":".join(f"{b:02x}" for b in self.mac)
        return f"RawTransport({self.name!r}, mac={mac}, mtu={self.mtu})"

