"""An in-memory Ethernet segment, so tests run without root or a network.

``MemoryLink()`` is the wire; ``link.endpoint(mac)`` plugs in a station and
returns a ``Transport``. Delivery follows what a switchless segment (such as
a veth pair) does:

* a frame goes to every *other* endpoint whose MAC equals its destination,
  to all other endpoints when the destination is a group address (broadcast
  or multicast), and to promiscuous endpoints whatever the destination;
* a frame larger than the sender's MTU is refused with EMSGSIZE, as a real
  interface does, and a receiver with a smaller MTU drops it silently;
* a sender never receives its own frame.

Every endpoint has its own thread-safe queue, so a target can run in one
thread and an initiator in another.
"""

from __future__ import annotations

import errno
import queue
import threading
from typing import List, Optional

from aoeconform.transport.base import Transport

ETH_HEADER_LEN = 14
BROADCAST = b"\xff" * 6


def _mac_bytes(mac) -> bytes:
    if isinstance(mac, str):
        mac = bytes.fromhex(mac.replace(":", "").replace("-", ""))
    mac = bytes(mac)
    if len(mac) != 6:
        raise ValueError(f"a MAC address has 6 bytes, not {len(mac)}")
    return mac


class MemoryEndpoint(Transport):
    """One station on a ``MemoryLink``."""

    def __init__(self, link: "MemoryLink", mac: bytes, mtu: int, name: str, promiscuous: bool) -> None:
        self._link = link
        self.mac = mac
        self.mtu = mtu
        self.name = name
        self.promiscuous = promiscuous
        self._queue: "queue.SimpleQueue[bytes]" = queue.SimpleQueue()
        self.closed = False
        #: frames this endpoint sent and received, for assertions in tests
        self.sent_count = 0
        self.received_count = 0

    def send(self, frame: bytes) -> None:
        if self.closed:
            raise OSError(errno.EBADF, "endpoint is closed")
        frame = bytes(frame)
        if len(frame) < ETH_HEADER_LEN:
            raise OSError(errno.EINVAL, "frame shorter than an Ethernet header")
        if len(frame) > self.mtu + ETH_HEADER_LEN:
            raise OSError(errno.EMSGSIZE, f"frame of {len(frame)} bytes exceeds MTU {self.mtu}")
        self.sent_count += 1
        self._link._deliver(self, frame)

    def _enqueue(self, frame: bytes) -> None:
        self._queue.put(frame)

    def recv(self, timeout: Optional[float]) -> Optional[bytes]:
        if timeout is not None and timeout <= 0:
            try:
                frame = self._queue.get_nowait()
            except queue.Empty:
                return None
        else:
            try:
                frame = self._queue.get(timeout=timeout)
            except queue.Empty:
                return None
        self.received_count += 1
        return frame

    def recv_many(self, max_frames: int, timeout: Optional[float]) -> List[bytes]:
        first = self.recv(timeout)
        if first is None:
            return []
        frames = [first]
        while len(frames) < max_frames:
            try:
                frames.append(self._queue.get_nowait())
            except queue.Empty:
                break
        self.received_count += len(frames) - 1
        return frames

    def pending(self) -> int:
        """Frames queued and not yet received."""
        return self._queue.qsize()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._link._detach(self)

    def __repr__(self) -> str:
        mac = ":".join(f"{b:02x}" for b in self.mac)
        return f"MemoryEndpoint({self.name!r}, mac={mac}, mtu={self.mtu})"


class MemoryLink:
    """A shared medium; create stations with ``endpoint``."""

    def __init__(self, name: str = "memory") -> None:
        self.name = name
        self._lock = threading.Lock()
        self._endpoints: List[MemoryEndpoint] = []

    def endpoint(self, mac, mtu: int = 1500, *, promiscuous: bool = False, name: Optional[str] = None) -> MemoryEndpoint:
        mac = _mac_bytes(mac)
        with self._lock:
            ep = MemoryEndpoint(self, mac, mtu, name or f"{self.name}:{len(self._endpoints)}", promiscuous)
            self._endpoints = self._endpoints + [ep]
        return ep

    def _detach(self, ep: MemoryEndpoint) -> None:
        with self._lock:
            self._endpoints = [e for e in self._endpoints if e is not ep]

    def _deliver(self, sender: MemoryEndpoint, frame: bytes) -> None:
        # The endpoint list is replaced, never mutated, so reading it
        # without the lock sees a consistent snapshot.
        dst = frame[0:6]
        group = bool(frame[0] & 1)
        size = len(frame) - ETH_HEADER_LEN
        for ep in self._endpoints:
            if ep is sender or size > ep.mtu:
                continue
            if group or ep.promiscuous or ep.mac == dst:
                ep._enqueue(frame)

    def close(self) -> None:
        for ep in list(self._endpoints):
            ep.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
