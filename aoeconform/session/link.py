"""How a session reaches its target: send a frame, wait for replies by tag.

``TransportLink`` works over any ``Transport`` and times each reply with the
Linux driver's estimator (``rtt.RttEstimator``, seeded by the first round
trip), so a session's waits follow the target's round trip: short on a
quick link, longer once a slow reply has been seen. The scenario engine has
a link of its own over its recording ``Wire``.
"""

from __future__ import annotations

import time
from typing import Callable, Collection, Dict, List, Optional, Tuple

from aoeconform.transport.base import Transport
from aoeconform.wire.constants import AOE_HEADER_LEN, ETH_P_AOE, ETHERTYPE_BYTES, FLAG_RESPONSE, SRC_BYTES, VER_FLAGS_BYTE, frame_tag

from .rtt import USEC_PER_SEC, RttEstimator

_AOE = ETH_P_AOE.to_bytes(2, "big")

#: a session's wait before any round trip has been measured
INITIAL_TIMEOUT = 1.0
#: the shortest and the longest wait once round trips have been measured
TIMEOUT_FLOOR = 0.05
TIMEOUT_CEILING = 5.0


class AdaptiveTimeout:
    """The retransmit timeout of ``RttEstimator`` (2 × mean + 8 × deviation),
    clamped to [floor, ceiling]; ``initial`` until the first sample."""

    def __init__(self, floor: float = TIMEOUT_FLOOR, ceiling: float = TIMEOUT_CEILING, initial: float = INITIAL_TIMEOUT):
        self.estimator = RttEstimator(min_timeout=floor, max_timeout=ceiling, seed_from_first_sample=True)
        self.initial = min(max(initial, floor), ceiling)

    def sample(self, seconds: float) -> None:
        self.estimator.sample(max(1, int(seconds * USEC_PER_SEC)))

    def timeout(self) -> float:
        return self.estimator.retransmit_timeout() if self.estimator.samples else self.initial


class Link:
    """What a ``Session`` needs from the link to its target."""

    #: every reply has been delivered by the time ``send`` returns (a loopback)
    synchronous = False

    def send(self, raw: bytes) -> None:
        raise NotImplementedError

    def wait(self, tags: Collection[int], timeout: float, first_only: bool = True) -> Tuple[List[bytes], List[bytes]]:
        """(replies carrying one of ``tags``, other frames from the target) seen
        within ``timeout`` seconds, or until the first reply with ``first_only``."""
        raise NotImplementedError

    def drain(self, quiet: float = 0.0) -> List[bytes]:
        """Frames from the target queued now, and arriving within ``quiet`` seconds of each other."""
        raise NotImplementedError

    def timeout(self) -> float:
        """How long to wait for a reply now."""
        raise NotImplementedError


class TransportLink(Link):
    def __init__(self, transport: Transport, target_mac: bytes, timing: Optional[AdaptiveTimeout] = None,
                 clock: Callable[[], float] = time.monotonic):
        self.transport = transport
        self.target_mac = target_mac
        self.timing = timing or AdaptiveTimeout()
        self.clock = clock
        self.synchronous = transport.synchronous
        self._sent_at: Dict[int, float] = {}

    def _from_target(self, frame: bytes) -> bool:
        """An AoE reply, or a frame from the target's MAC (a reply without R is still its answer)."""
        return (len(frame) >= AOE_HEADER_LEN and frame[ETHERTYPE_BYTES] == _AOE
                and (bool(frame[VER_FLAGS_BYTE] & FLAG_RESPONSE) or frame[SRC_BYTES] == self.target_mac))

    def send(self, raw: bytes) -> None:
        if len(raw) >= AOE_HEADER_LEN:
            self._sent_at[frame_tag(raw)] = self.clock()
        self.transport.send(raw)

    def wait(self, tags: Collection[int], timeout: float, first_only: bool = True) -> Tuple[List[bytes], List[bytes]]:
        matched: List[bytes] = []
        others: List[bytes] = []
        clock = self.clock
        end = clock() + timeout
        while True:
            remaining = end - clock()
            if remaining <= 0:
                break
            reply = self.transport.recv(remaining)
            if reply is None:
                break
            if not self._from_target(reply):
                continue
            tag = frame_tag(reply)
            if tag in tags:
                matched.append(reply)
                sent = self._sent_at.pop(tag, None)
                if sent is not None:
                    self.timing.sample(clock() - sent)
                if first_only:
                    break
            else:
                others.append(reply)
        for tag in tags:
            self._sent_at.pop(tag, None)
        return matched, others

    def drain(self, quiet: float = 0.0) -> List[bytes]:
        frames: List[bytes] = []
        while True:
            frame = self.transport.recv(quiet)
            if frame is None:
                return frames
            if self._from_target(frame):
                frames.append(frame)

    def timeout(self) -> float:
        return self.timing.timeout()
