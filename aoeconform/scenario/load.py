"""The ``load`` step: the reference initiator writes and reads back a region
through an impaired link (loss, duplication, reordering made by the harness,
since these kernels have no netem), and the data must come back identical."""

from __future__ import annotations

import time
from typing import Mapping, Optional

from aoeconform.transport.base import Transport
from aoeconform.wire.constants import AOE_HEADER_LEN, SECTOR_SIZE, frame_tag

from .values import pattern_bytes


class _TagNoting(Transport):
    """The engine's own transport, noting the tags the reference initiator
    sends on it: replies to them that come late are the harness's own, not
    replies carrying a tag it never sent (observed/run/tags-returned)."""

    def __init__(self, inner: Transport, tags: set) -> None:
        self.inner, self.tags = inner, tags
        self.mac, self.mtu, self.name = inner.mac, inner.mtu, inner.name

    def send(self, frame: bytes) -> None:
        if len(frame) >= AOE_HEADER_LEN:
            self.tags.add(frame_tag(frame))
        self.inner.send(frame)

    def recv(self, timeout: Optional[float]) -> Optional[bytes]:
        return self.inner.recv(timeout)

    def __getattr__(self, name):  # recv_many and the like, where the inner transport has them
        return getattr(self.inner, name)


def run_load(engine, body: Mapping, region: tuple[int, int]) -> tuple[bool, str]:
    from aoeconform.initiator.driver import HARNESS_TIMERS, Initiator
    from aoeconform.transport.impair import ImpairedTransport

    lba, sectors = region
    seconds = float(body.get("seconds", 1.0))
    max_rounds = int(body["rounds"]) if "rounds" in body else None
    seed = engine.options.seed
    impaired = ImpairedTransport(_TagNoting(engine.wire.primary, engine.wire.sent_tags), seed=seed, loss=float(body.get("loss", 0)),
                                 dup=float(body.get("dup", 0)), reorder=float(body.get("reorder", 0)))
    floor = engine.options.timeout_floor
    # the timer preset of the harness's own transfers (per-frame deadlines,
    # losses found from later replies), as `aoeconform io` uses
    timers = dict(HARNESS_TIMERS, max_timeout=max(floor, HARNESS_TIMERS["max_timeout"]))
    ini = Initiator(impaired, engine.facts.shelf, engine.facts.slot, target_mac=engine.facts.mac,
                    dead_after=max(10.0, seconds * 4), config_timeout=max(floor, 0.2), **timers)
    rounds = 0
    start = time.monotonic()
    try:
        ini.identify()
        while True:
            rounds += 1
            data = pattern_bytes(0x10AD + rounds, seed, lba, sectors)
            ini.write(lba, data)
            back = ini.read(lba, sectors)
            if back != data:
                bad = next(i for i in range(sectors) if back[i * SECTOR_SIZE:(i + 1) * SECTOR_SIZE] != data[i * SECTOR_SIZE:(i + 1) * SECTOR_SIZE])
                return False, f"round {rounds}: sector {lba + bad} read back differs from what the initiator wrote"
            if time.monotonic() - start >= seconds or rounds == max_rounds:
                break
    except Exception as exc:  # the initiator's errors say what the target did
        return False, f"round {rounds}: {type(exc).__name__}: {exc}"
    counters = impaired.totals() if hasattr(impaired, "totals") else {}
    engine.wire.exchanges += int(ini.counters().get("frames_sent", 0) or 0)
    return True, f"{rounds} write/read rounds of {sectors} sectors intact under impairment {counters}"
