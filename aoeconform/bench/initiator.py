"""`aoeconform bench initiator`: the reference initiator against a bare loop, and under loss.

In one lab (veth pair and namespace, MTU 9000) vblade exports a 64 MiB
image. Two readers take turns, sequentially, for ``seconds`` each round:

* the reference initiator (``Initiator`` with ``HARNESS_TIMERS``, reads
  pipelined by ``initiator.transfer.read_range``);
* the bare loop (``bench.rawloop``): 16 READ EXT of 17 sectors always
  outstanding, no codec, no retransmission logic.

Then the initiator reads through the harness's fault injection with
0.1%, 1% and 5% of frames dropped in each direction. Loss is compared
with the initiator through the same fault-injection layer at 0%, which
isolates what the losses cost from what the layer costs (both figures are
printed). The machine is shared and noisy: every figure is the median of
several rounds, and the rounds alternate their order.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

from aoeconform.errors import UsageError

SHELF, SLOT = 1, 2
MTU = 9000
IMAGE_BYTES = 64 << 20
BARE_DEPTH = 16
BARE_SECTORS = 17
DEFAULT_LOSSES = (0.001, 0.01, 0.05)
#: each initiator reads this long, unmeasured, before its first round
WARM_UP = 0.3
#: aims from the issue: ours against the bare loop, and 1% loss against lossless
AIM_RATIO = 0.7
AIM_LOSS = (0.01, 0.8)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "initiator",
        help="the reference initiator against a bare raw-socket loop and under loss (needs root and vblade)",
        description="Read sequentially from vblade in a lab (MTU 9000) with the reference initiator and "
        "with a bare pipelined loop (16 outstanding 17-sector reads), then with injected loss.",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--seconds", type=float, default=1.0, help="length of one round in seconds (default 1)")
    p.add_argument("--rounds", type=int, default=5, help="rounds per reader; medians are reported (default 5)")
    p.add_argument("--losses", default=",".join(str(x) for x in DEFAULT_LOSSES),
                   help="loss probabilities to try, comma-separated (default 0.001,0.01,0.05)")
    p.set_defaults(func=run)


@dataclass
class Reader:
    """One way of reading, and what each round measured."""

    name: str
    loss: Optional[float] = None  # None: no fault-injection layer at all
    mbps: List[float] = field(default_factory=list)
    counters: Dict[str, int] = field(default_factory=dict)  # summed over the measured rounds

    @property
    def median(self) -> float:
        return statistics.median(self.mbps) if self.mbps else 0.0


class _Ours:
    """The reference initiator on one transport, identified once and warmed up."""

    COUNTED = ("frames_sent", "retransmissions", "fast_retransmissions", "timeout_retransmissions", "timeouts",
               "fast_losses", "fast_recoveries", "duplicate_replies", "late_replies")

    def __init__(self, transport):
        from aoeconform.initiator.driver import HARNESS_TIMERS, Initiator

        self.ini = Initiator(transport, SHELF, SLOT, dead_after=30.0, **HARNESS_TIMERS)
        self.capacity = self.ini.identify().capacity or 0
        self.next_lba = 0
        self.read_for(WARM_UP)

    def read_for(self, seconds: float) -> tuple:
        """Read sequentially (wrapping at the end) for ``seconds``: (MB/s, counter deltas)."""
        from aoeconform.initiator.transfer import read_range

        before = self.ini.counters()
        sectors = 0
        start = time.perf_counter()
        end = start + seconds

        def stop() -> bool:
            return time.perf_counter() >= end

        while not stop():
            count = self.capacity - self.next_lba
            done = read_range(self.ini, self.next_lba, count, _discard, stop=stop)
            sectors += done
            self.next_lba = (self.next_lba + done) % self.capacity
        elapsed = time.perf_counter() - start
        after = self.ini.counters()
        return sectors * 512 / elapsed / 1e6, {k: after[k] - before[k] for k in self.COUNTED}


def _discard(data) -> None:
    pass


def _drain(transport, quiet: float = 0.02) -> None:
    """Let late and duplicate replies of the last round arrive and drop them."""
    while transport.recv(quiet) is not None:
        pass


def _add(total: Dict[str, int], delta: Dict[str, int]) -> None:
    for key, value in delta.items():
        total[key] = total.get(key, 0) + value


def run_bench(seconds: float = 1.0, rounds: int = 5, losses: Sequence[float] = DEFAULT_LOSSES, log=sys.stderr) -> dict:
    from aoeconform.lab import Lab, make_sparse_image, require_root
    from aoeconform.transport.impair import ImpairedTransport
    from aoeconform.transport.raw import RawTransport

    from .rawloop import run_loop

    require_root("benchmarking")
    if shutil.which("vblade") is None:
        raise UsageError("vblade is not installed; install it with `apt-get install vblade`")
    workdir = tempfile.mkdtemp(prefix="aoeconform-bench-initiator-")
    lab = Lab(f"aoecbi{os.getpid():x}"[:14], mtu=MTU)
    transport = None
    try:
        lab.up()
        image = os.path.join(workdir, "disk.img")
        make_sparse_image(image, IMAGE_BYTES)
        lab.start_vblade(SHELF, SLOT, image)
        transport = RawTransport(lab.host_if)
        target_mac = lab.target_mac

        bare = Reader("bare")
        ours = Reader("ours")
        layer = Reader("ours, fault layer at 0%", 0.0)
        lossy = [Reader(f"ours, {p:.1%} loss", p) for p in losses]
        engines = {id(ours): _Ours(transport)}
        for reader in [layer] + lossy:
            # its own seed per loss rate; loss in both directions, as on a real link
            impaired = ImpairedTransport(transport, seed=17, loss=reader.loss or 0.0, direction="both")
            engines[id(reader)] = _Ours(impaired)
            _drain(transport)
        # a warm-up for the bare loop too (page cache, the target's buffers)
        run_loop(transport, target_mac, SHELF, SLOT, write=False, depth=BARE_DEPTH, seconds=WARM_UP, sectors=BARE_SECTORS)

        order = [bare, ours, layer] + lossy
        for r in range(rounds):
            for reader in (order if r % 2 == 0 else list(reversed(order))):
                _drain(transport)
                if reader is bare:
                    result = run_loop(transport, target_mac, SHELF, SLOT, write=False, depth=BARE_DEPTH,
                                      seconds=seconds, sectors=BARE_SECTORS)
                    reader.mbps.append(result.megabytes_per_second)
                    _add(reader.counters, {"frames": result.frames, "stalls": result.stalls})
                else:
                    mbps, delta = engines[id(reader)].read_for(seconds)
                    reader.mbps.append(mbps)
                    _add(reader.counters, delta)
            if log is not None:
                print(f"  round {r + 1}/{rounds}: bare {bare.mbps[-1]:.0f} MB/s, ours {ours.mbps[-1]:.0f} MB/s, "
                      + ", ".join(f"{x.loss:.1%} loss {x.mbps[-1]:.0f}" for x in lossy), file=log, flush=True)
        rtt = engines[id(ours)].ini.counters()
        return _result(seconds, rounds, bare, ours, layer, lossy, rtt)
    finally:
        if transport is not None:
            transport.close()
        lab.down()
        shutil.rmtree(workdir, ignore_errors=True)


def _ratio(a: float, b: float) -> Optional[float]:
    return a / b if b else None


def _result(seconds, rounds, bare, ours, layer, lossy, rtt) -> dict:
    from aoeconform.initiator.driver import HARNESS_TIMERS

    return {
        "mtu": MTU,
        "seconds": seconds,
        "rounds": rounds,
        "timers": HARNESS_TIMERS,
        "bare": {"depth": BARE_DEPTH, "sectors": BARE_SECTORS, "mb_per_s": bare.median, "rounds_mb_per_s": bare.mbps,
                 "counters": bare.counters},
        "ours": {"mb_per_s": ours.median, "rounds_mb_per_s": ours.mbps, "counters": ours.counters,
                 "rtt_avg_us": rtt["rtt_avg_us"], "rtt_dev_us": rtt["rtt_dev_us"],
                 "retransmit_timeout_us": rtt["retransmit_timeout_us"]},
        "ratio": _ratio(ours.median, bare.median),
        "fault_layer": {"mb_per_s": layer.median, "rounds_mb_per_s": layer.mbps, "counters": layer.counters,
                        "fraction_of_ours": _ratio(layer.median, ours.median)},
        "loss": [
            {"loss": x.loss, "mb_per_s": x.median, "rounds_mb_per_s": x.mbps,
             "fraction_of_lossless": _ratio(x.median, layer.median),
             "fraction_of_ours_without_layer": _ratio(x.median, ours.median),
             "counters": x.counters}
            for x in lossy
        ],
        "aims": {"ratio": AIM_RATIO, "loss": AIM_LOSS[0], "fraction": AIM_LOSS[1]},
    }


def _fmt(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2f}"


def report(result: dict, as_json: bool) -> str:
    if as_json:
        return json.dumps(result, indent=2)
    bare, ours = result["bare"], result["ours"]
    lines = [
        f"sequential reads from vblade, MTU {result['mtu']}, medians of {result['rounds']} alternating rounds of {result['seconds']:g} s",
        f"  bare loop ({bare['depth']} outstanding, {bare['sectors']}-sector reads)  {bare['mb_per_s']:8.1f} MB/s",
        f"  reference initiator                              {ours['mb_per_s']:8.1f} MB/s   ours/bare {_fmt(result['ratio'])} (aim >= {AIM_RATIO})",
        f"  reference initiator, fault layer at 0%           {result['fault_layer']['mb_per_s']:8.1f} MB/s   "
        f"{_fmt(result['fault_layer']['fraction_of_ours'])} of ours (the layer's own cost)",
    ]
    for row in result["loss"]:
        c = row["counters"]
        aim = f" (aim >= {AIM_LOSS[1]})" if row["loss"] == AIM_LOSS[0] else ""
        lines.append(
            f"  {row['loss']:5.1%} loss each way                           {row['mb_per_s']:8.1f} MB/s   "
            f"{_fmt(row['fraction_of_lossless'])} of lossless{aim}; {c.get('retransmissions', 0)} retransmissions "
            f"({c.get('fast_retransmissions', 0)} fast, {c.get('timeout_retransmissions', 0)} after timeouts), "
            f"{c.get('late_replies', 0)} late replies"
        )
    lines.append(
        f"  RTT avg {ours['rtt_avg_us'] / 1000:.2f} ms, dev {ours['rtt_dev_us'] / 1000:.2f} ms, "
        f"retransmit timeout {ours['retransmit_timeout_us'] / 1000:.2f} ms (harness timers)"
    )
    return "\n".join(lines)


def run(args) -> int:
    if args.seconds <= 0 or args.rounds < 1:
        raise UsageError("--seconds must be positive and --rounds at least 1")
    try:
        losses = [float(x) for x in args.losses.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"--losses {args.losses!r}: give probabilities separated by commas, e.g. 0.001,0.01") from None
    if any(not 0 < p < 1 for p in losses):
        raise UsageError("--losses: each value must be between 0 and 1 (0.01 is 1%)")
    result = run_bench(seconds=args.seconds, rounds=args.rounds, losses=losses)
    print(report(result, args.json))
    return 0
