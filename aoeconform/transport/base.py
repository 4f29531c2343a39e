"""The interface every transport offers: whole Ethernet frames in and out.

A transport carries complete Ethernet frames (destination MAC first, no
FCS). Receiving takes a timeout in seconds and returns ``None`` when the
deadline passes, so callers never busy-wait. Only AoE frames (EtherType
0x88A2) are returned; a transport never hands back a frame it sent itself.
"""

from __future__ import annotations

from typing import Optional


class Transport:
    """Base class; subclasses implement ``send``, ``recv`` and ``close``."""

    #: this endpoint's MAC address (6 bytes): the source of frames it sends
    mac: bytes = b"\x00" * 6
    #: the link MTU (payload bytes after the 14-byte Ethernet header)
    mtu: int = 1500
    #: a human-readable name (interface name, or "memory:a")
    name: str = "transport"

    def send(self, frame: bytes) -> None:
        raise NotImplementedError

    def recv(self, timeout: Optional[float]) -> Optional[bytes]:
        """One frame, or None once ``timeout`` seconds pass (None: wait forever)."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
