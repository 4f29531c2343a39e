"""The interface every transport offers: whole Ethernet frames in and out.

A transport carries complete Ethernet frames (destination MAC first, no
FCS). Receiving takes a timeout in seconds and returns ``None`` when the
deadline passes, so callers never busy-wait. Only AoE frames (EtherType
0x88A2) are returned; a transport never hands back a frame it sent itself.
"""

from __future__ import annotations

from typing import Iterable, List, Optional


class Transport:
    """Base class; subclasses implement ``send``, ``recv`` and ``close``, and
    may replace ``recv_many`` and ``send_many`` with faster ones. Callers use
    every method here without probing for it."""

    #: this endpoint's MAC address (6 bytes): the source of frames it sends
    mac: bytes = b"\x00" * 6
    #: the link MTU (payload bytes after the 14-byte Ethernet header)
    mtu: int = 1500
    #: a human-readable name (interface name, or "memory:a")
    name: str = "transport"
    #: every reply has been delivered by the time ``send`` returns (a loopback):
    #: an empty queue then means silence, with no waiting
    synchronous: bool = False

    def send(self, frame: bytes) -> None:
        raise NotImplementedError

    def recv(self, timeout: Optional[float]) -> Optional[bytes]:
        """One frame, or None once ``timeout`` seconds pass (None: wait forever)."""
        raise NotImplementedError

    def recv_many(self, max_frames: int, timeout: Optional[float]) -> List[bytes]:
        """Like ``recv``, then whatever else is already queued, up to
        ``max_frames`` in all: a burst of frames costs one wake-up."""
        first = self.recv(timeout)
        if first is None:
            return []
        frames = [first]
        while len(frames) < max_frames:
            frame = self.recv(0)
            if frame is None:
                break
            frames.append(frame)
        return frames

    def send_many(self, frames: Iterable[bytes]) -> int:
        """Send every frame in order; returns how many were sent."""
        count = 0
        for frame in frames:
            self.send(frame)
            count += 1
        return count

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
