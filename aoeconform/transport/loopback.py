"""The reference target's logic as a transport, answering inside ``send``.

``LoopbackTransport(handler)`` hands every frame sent to ``handler`` (a
callable taking a frame and a burst index, returning reply frames) and queues
the replies for ``recv``. Nothing can arrive later, so ``recv`` never sleeps:
silence is known as soon as the queue is empty. The selftest runs every
suite against every quirk this way, deterministically and fast.

The burst index counts frames sent since the harness last asked for a reply,
so requests sent back to back reach the logic as one burst, as they would
reach the server's socket queue (the bufcnt-overstated quirk depends on it).
"""

from __future__ import annotations

from collections import deque
from typing import Callable, Optional

from aoeconform.transport.base import Transport

Handler = Callable[[bytes, int], list]


class LoopbackTransport(Transport):
    synchronous = True

    def __init__(self, handler: Handler, mac: bytes, mtu: int = 1500, name: str = "loopback",
                 on_idle: Optional[Callable[[], None]] = None):
        self.handler = handler
        self.mac = bytes(mac)
        self.mtu = mtu
        self.name = name
        self.on_idle = on_idle
        self._queue: deque[bytes] = deque()
        self._burst = 0
        self.sent = 0

    def send(self, frame: bytes) -> None:
        frame = bytes(frame)
        if len(frame) > self.mtu + 14:
            raise OSError(90, f"frame of {len(frame)} bytes exceeds MTU {self.mtu}")  # EMSGSIZE
        self.sent += 1
        for reply in self.handler(frame, self._burst):
            reply = bytes(reply)
            if len(reply) <= self.mtu + 14:  # a real link drops what exceeds the MTU
                self._queue.append(reply)
        self._burst += 1

    def recv(self, timeout: Optional[float]) -> Optional[bytes]:
        self._burst = 0
        if self._queue:
            return self._queue.popleft()
        if self.on_idle is not None:
            self.on_idle()
        return None

    def inject(self, frame: bytes) -> None:
        """Queue a frame as if it arrived unsolicited (start-up announcements)."""
        self._queue.append(bytes(frame))
