"""The ``load`` step: the reference initiator writes and reads back a region
through an impaired link (loss, duplication, reordering made by the harness,
since these kernels have no netem), and the data must come back identical."""

from __future__ import annotations

import time
from typing import Mapping

from aoeconform.wire.constants import SECTOR_SIZE

from .values import pattern_bytes


def run_load(engine, body: Mapping, region: tuple[int, int]) -> tuple[bool, str]:
    from aoeconform.initiator.driver import HARNESS_TIMERS, Initiator
    from aoeconform.transport.impair import ImpairedTransport

    lba, sectors = region
    seconds = float(body.get("seconds", 1.0))
    max_rounds = int(body["rounds"]) if "rounds" in body else None
    seed = engine.options.seed
    impaired = ImpairedTransport(engine.wire.primary, seed=seed, loss=float(body.get("loss", 0)),
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
