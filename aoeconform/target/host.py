"""The reference target hosted in this process: one launcher per mode.

- ``LoopbackHost``: the target logic answers inside the harness's ``send``
  (``transport.loopback``): synchronous, deterministic and fast; the
  selftest runs every suite against every quirk this way.
- ``ThreadHost``: a thread serves the target on one station of an in-memory
  Ethernet segment (``transport.memory``), the harness has another: replies
  arrive asynchronously, as over a wire, without root.

Out of process, on a real interface or in a lab namespace, the target runs
in ``server.TargetServer`` (``aoeconform target``, ``aoeconform lab``).

Either host's ``restart`` does what restarting a crashed daemon does: a
fresh ``Target`` on the same image. The config string, Mac Mask list,
reservation and any quirk state (a crash) start over, the disk keeps its
data, frames queued for the old target are lost, and the new one announces
itself (rule 46). ``serve`` is the loop that hosts any frame handler in a
thread (also the test suite's small fake targets).
"""

from __future__ import annotations

import threading
from typing import Callable, Iterable, List, Optional

from aoeconform.session.facts import TargetFacts, spoofed_mac
from aoeconform.transport.base import Transport
from aoeconform.transport.loopback import LoopbackTransport
from aoeconform.transport.memory import MemoryLink

from .image import MemoryImage, SparseImage
from .logic import DEFAULT_BUFCNT, Target

#: the addresses the fuzzer's in-memory target has always had
TARGET_MAC = bytes.fromhex("02aaaaaaaa02")
HOST_MAC = bytes.fromhex("020000000001")
#: images above this are sparse (only written sectors are stored)
DENSE_IMAGE_MAX = 64 << 20
#: how often an idle serving thread looks for stop()
_POLL = 0.05

Handler = Callable[[bytes, int], Iterable[bytes]]


def serve(transport: Transport, handle: Handler, stop: threading.Event, idle: Optional[Callable[[], None]] = None) -> None:
    """Hand each frame received to ``handle(frame, burst_index)`` and send what
    it returns, until ``stop`` is set. The burst index counts frames taken
    back to back from the queue, as the server does on a socket (quirks about
    the Buffer Count depend on it); ``idle`` runs whenever the queue is empty
    (the target completes an acknowledged asynchronous write)."""
    burst = 0
    while not stop.is_set():
        frame = transport.recv(0)
        if frame is None:
            if idle is not None:
                idle()
            burst = 0
            frame = transport.recv(_POLL)
            if frame is None:
                continue
        for reply in handle(bytes(frame), burst):
            try:
                transport.send(bytes(reply))
            except OSError:
                pass  # larger than the MTU: the link refuses it, as a NIC would
        burst += 1


class HandlerThread:
    """``serve`` in a daemon thread: ``with HandlerThread(handle, transport):``."""

    def __init__(self, handle: Handler, transport: Transport, idle: Optional[Callable[[], None]] = None, name: str = "aoeconform-target"):
        self._stop = threading.Event()
        self._thread = threading.Thread(target=serve, args=(transport, handle, self._stop, idle), name=name, daemon=True)

    def start(self) -> "HandlerThread":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2 * _POLL + 5)

    def __enter__(self) -> "HandlerThread":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class _Host:
    """What both modes share: the image, the target on it, restart, facts."""

    host: Transport
    #: replies to a spoofed second initiator reach ``host`` (``facts.second_mac``)
    second_initiator = True

    def __init__(self, quirks: Iterable[str] = (), *, shelf: int = 1, slot: int = 2, mtu: int = 1500,
                 image_bytes: int = 8 << 20, bufcnt: int = DEFAULT_BUFCNT, config: bytes = b"", readonly: bool = False,
                 target_mac: bytes = TARGET_MAC, host_mac: bytes = HOST_MAC) -> None:
        self.quirks = tuple(quirks)
        self.shelf, self.slot, self.mtu, self.bufcnt, self.config, self.readonly = shelf, slot, mtu, bufcnt, config, readonly
        self.target_mac, self.host_mac = target_mac, host_mac
        self.image = MemoryImage(image_bytes) if image_bytes <= DENSE_IMAGE_MAX else SparseImage(image_bytes)
        self._lock = threading.Lock()
        self.target = self._new_target()
        self.restarts = 0

    def _new_target(self) -> Target:
        return Target(self.image, shelf=self.shelf, slot=self.slot, mac=self.target_mac, mtu=self.mtu,
                      bufcnt=self.bufcnt, config=self.config, readonly=self.readonly, quirks=self.quirks)

    def _handle(self, frame: bytes, burst: int) -> List[bytes]:
        with self._lock:
            return self.target.process(frame, burst)

    def _idle(self) -> None:
        target = self.target
        if target._pending is not None or target._torn:  # as the server does: the common case costs no lock
            with self._lock:
                self.target.complete_pending()

    def restart(self) -> None:
        """What a --restart-cmd does to a daemon: a fresh process on the same disk."""
        with self._lock:
            self.target.close()
            self._drop_queued()
            self.target = self._new_target()
            self.restarts += 1
        self._announce()

    def _drop_queued(self) -> None:
        raise NotImplementedError

    def _announce(self) -> None:
        raise NotImplementedError

    @property
    def facts(self) -> TargetFacts:
        """What the harness on ``host`` knows of the target without asking."""
        return TargetFacts(mac=self.target_mac, shelf=self.shelf, slot=self.slot, host_mac=self.host.mac, mtu=self.mtu,
                           bufcnt=self.bufcnt, sector_count=self.target.max_sectors, capacity=self.target.capacity,
                           config=self.config, second_mac=spoofed_mac(self.host.mac) if self.second_initiator else b"")

    #: the fuzzer's name for ``facts``
    info = facts

    @property
    def dead(self) -> bool:
        return bool(getattr(self.target, "dead", False))

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class LoopbackHost(_Host):
    """The target answering inside ``host.send`` (``host`` is a ``LoopbackTransport``)."""

    def __init__(self, quirks: Iterable[str] = (), *, name: str = "memory", **options) -> None:
        super().__init__(quirks, **options)
        self.host = self.loopback = LoopbackTransport(self._handle, self.host_mac, self.mtu, name=name, on_idle=self._idle)
        self._announce()

    def _drop_queued(self) -> None:
        pass  # nothing reaches a synchronous target later than its send

    def _announce(self) -> None:
        for frame in self.target.announce():
            self.loopback.inject(frame)


class ThreadHost(_Host):
    """The target served by a thread; the harness speaks through ``host``,
    which (``promiscuous``) also receives the replies to a spoofed second
    initiator."""

    def __init__(self, quirks: Iterable[str] = (), *, host_name: str = "memory:host", promiscuous: bool = True, **options) -> None:
        super().__init__(quirks, **options)
        self.second_initiator = promiscuous
        self.link = MemoryLink("aoeconform")
        self.endpoint = self.link.endpoint(self.target_mac, self.mtu, name="memory:target")
        self.host = self.link.endpoint(self.host_mac, self.mtu, promiscuous=promiscuous, name=host_name)
        self._thread = HandlerThread(self._handle, self.endpoint, self._idle, name="aoeconform-reference-target").start()
        self._announce()

    def _drop_queued(self) -> None:
        while self.endpoint.recv(0) is not None:
            pass

    def _announce(self) -> None:
        for frame in self.target.announce():
            self.endpoint.send(frame)

    def close(self) -> None:
        self._thread.stop()
        with self._lock:
            self.target.close()
        self.link.close()
