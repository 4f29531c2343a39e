"""The reference target in this process, for tests and for trying the fuzzer.

A thread runs the target logic (``aoeconform.target.logic.Target``) on one
endpoint of a ``MemoryLink``; the fuzzer gets the other endpoint. The
restart hook builds a fresh ``Target`` on the same image, as restarting a
crashed daemon would: the config string, Mac Mask list, reservation and any
quirk state (a crash) start over, the disk keeps its data, and frames that
were queued for the dead target are lost.
"""

from __future__ import annotations

import threading
from typing import Iterable, Optional

from aoeconform.scenario.endpoint import SparseImage
from aoeconform.target.image import MemoryImage
from aoeconform.target.logic import Target
from aoeconform.transport.memory import MemoryLink

from aoeconform.session.facts import TargetFacts

from .context import second_mac

TARGET_MAC = bytes.fromhex("02aaaaaaaa02")
HOST_MAC = bytes.fromhex("020000000001")
DEFAULT_IMAGE_BYTES = 8 << 20
_POLL = 0.05


class ReferenceTarget:
    """``with ReferenceTarget(quirks=["crash-on-truncated"]) as ref:`` then
    fuzz ``ref.host`` with ``ref.info`` and ``restart=ref.restart``."""

    def __init__(
        self,
        quirks: Iterable[str] = (),
        *,
        shelf: int = 1,
        slot: int = 2,
        mtu: int = 1500,
        image_bytes: int = DEFAULT_IMAGE_BYTES,
        bufcnt: int = 16,
        config: bytes = b"",
    ) -> None:
        self.quirks = tuple(quirks)
        self.shelf, self.slot, self.mtu, self.bufcnt, self.config = shelf, slot, mtu, bufcnt, config
        self.link = MemoryLink("fuzz")
        self.endpoint = self.link.endpoint(TARGET_MAC, mtu, name="memory:target")
        # promiscuous: it also receives the replies to the second initiator's MAC
        self.host = self.link.endpoint(HOST_MAC, mtu, promiscuous=True, name="memory:host")
        # above 64 MiB only the sectors written are kept (a disk beyond 2^28 sectors costs nothing)
        self.image = MemoryImage(image_bytes) if image_bytes <= 64 << 20 else SparseImage(image_bytes)
        self._lock = threading.Lock()
        self.target = self._new_target()
        self.restarts = 0
        self._stopping = False
        self._thread = threading.Thread(target=self._serve, name="aoeconform-fuzz-reference", daemon=True)
        self._thread.start()
        self._announce()

    def _new_target(self) -> Target:
        return Target(
            self.image, shelf=self.shelf, slot=self.slot, mac=TARGET_MAC, mtu=self.mtu,
            bufcnt=self.bufcnt, config=self.config, quirks=self.quirks,
        )

    def _announce(self) -> None:
        for frame in self.target.announce():
            self.endpoint.send(frame)

    @property
    def info(self) -> TargetFacts:
        return TargetFacts(
            mac=TARGET_MAC, shelf=self.shelf, slot=self.slot, host_mac=HOST_MAC, mtu=self.mtu,
            bufcnt=self.bufcnt, sector_count=self.target.max_sectors, capacity=self.target.capacity,
            second_mac=second_mac(HOST_MAC), config=self.config, mask=[], reservation=[],
        )

    def _serve(self) -> None:
        endpoint = self.endpoint
        burst = 0  # the frame's place in a run that arrived back to back, as the lab's server counts it
        while not self._stopping:
            frame = endpoint.recv(0)
            if frame is None:
                burst = 0
                frame = endpoint.recv(_POLL)
            with self._lock:
                target = self.target
                if frame is None:
                    target.complete_pending()
                    continue
                replies = target.process(frame, burst)
                burst += 1
                for reply in replies:
                    try:
                        endpoint.send(bytes(reply))
                    except OSError:
                        pass  # larger than the MTU: the link refuses it, as a NIC would

    def restart(self) -> None:
        """What a --restart-cmd does to a daemon: a fresh process on the same disk."""
        with self._lock:
            self.target.complete_pending()
            while self.endpoint.recv(0) is not None:
                pass
            self.target = self._new_target()
            self.restarts += 1
        self._announce()

    @property
    def dead(self) -> bool:
        return bool(getattr(self.target, "dead", False))

    def close(self) -> None:
        self._stopping = True
        self._thread.join(timeout=2 * _POLL + 1)
        self.link.close()

    def __enter__(self) -> "ReferenceTarget":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def reference_target(quirks: Optional[Iterable[str]] = None, **kwargs) -> ReferenceTarget:
    return ReferenceTarget(quirks or (), **kwargs)
