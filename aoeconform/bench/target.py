"""`aoeconform bench target`: the reference target against vblade, same loop.

Each target runs in its own lab (veth pair and namespace, MTU 9000) on a
64 MiB sparse image. One pipelined raw-socket initiator (``rawloop``)
drives both with 17-sector READ EXT and WRITE EXT at 1 and 16 requests
outstanding. The machine is shared and noisy, so every figure is the
median of several short rounds, and the rounds alternate between targets.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
from dataclasses import dataclass, field

from aoeconform.errors import UsageError
from aoeconform.lab import Lab, make_sparse_image, require_root

from .rawloop import run_loop

SHELF, SLOT = 1, 2
MTU = 9000
IMAGE_BYTES = 64 << 20
SECTORS = 17


@dataclass
class Row:
    op: str
    depth: int
    fps: dict = field(default_factory=dict)  # target -> list of frames/s per round
    mbps: dict = field(default_factory=dict)

    def median_fps(self, target):
        return statistics.median(self.fps[target])

    def median_mbps(self, target):
        return statistics.median(self.mbps[target])


def _start_ours(lab: Lab, image: str):
    argv = [sys.executable, "-m", "aoeconform", "target", image, "--iface", lab.target_if,
            "--shelf", str(SHELF), "--slot", str(SLOT)]
    proc = lab.start_in_netns(argv)
    lab.wait_for_target(SHELF, SLOT, process=proc)
    return proc


def _start_vblade(lab: Lab, image: str):
    return lab.start_vblade(SHELF, SLOT, image)


def run_bench(seconds: float = 0.5, rounds: int = 5, depths=(1, 16), ops=("read", "write"), log=sys.stderr) -> list[Row]:
    require_root("benchmarking")
    if shutil.which("vblade") is None:
        raise UsageError("vblade is not installed; install it with `apt-get install vblade`")
    from aoeconform.transport.raw import RawTransport

    workdir = tempfile.mkdtemp(prefix="aoeconform-bench-")
    tag = f"{os.getpid():x}"[-5:]
    labs = {"ours": Lab(f"aoecbo{tag}", mtu=MTU), "vblade": Lab(f"aoecbv{tag}", mtu=MTU)}
    transports = {}
    try:
        for name, lab in labs.items():
            lab.up()
            image = os.path.join(workdir, f"{name}.img")
            make_sparse_image(image, IMAGE_BYTES)
            (_start_ours if name == "ours" else _start_vblade)(lab, image)
            transports[name] = (RawTransport(lab.host_if), lab.target_mac)
        rows = [Row(op, depth) for op in ops for depth in depths]
        for row in rows:
            for name in labs:
                row.fps[name], row.mbps[name] = [], []
            # warm up both (page cache, sparse allocation for writes)
            for name, (transport, mac) in transports.items():
                run_loop(transport, mac, SHELF, SLOT, write=row.op == "write", depth=row.depth, seconds=min(0.2, seconds), sectors=SECTORS)
            for r in range(rounds):
                order = list(transports) if r % 2 == 0 else list(reversed(transports))
                for name in order:
                    transport, mac = transports[name]
                    result = run_loop(transport, mac, SHELF, SLOT, write=row.op == "write", depth=row.depth, seconds=seconds, sectors=SECTORS)
                    row.fps[name].append(result.frames_per_second)
                    row.mbps[name].append(result.megabytes_per_second)
            if log is not None:
                print(f"  {row.op} depth {row.depth}: ours {row.median_fps('ours'):,.0f} f/s, vblade {row.median_fps('vblade'):,.0f} f/s", file=log, flush=True)
        return rows
    finally:
        for transport, _ in transports.values():
            transport.close()
        for lab in labs.values():
            lab.down()
        shutil.rmtree(workdir, ignore_errors=True)


def report(rows: list[Row], as_json: bool) -> str:
    if as_json:
        return json.dumps([
            {
                "op": row.op, "depth": row.depth, "sectors": SECTORS, "mtu": MTU,
                "ours_fps": row.median_fps("ours"), "vblade_fps": row.median_fps("vblade"),
                "ours_mbps": row.median_mbps("ours"), "vblade_mbps": row.median_mbps("vblade"),
                "ratio": row.median_fps("ours") / row.median_fps("vblade") if row.median_fps("vblade") else None,
                "rounds": {"ours": row.fps["ours"], "vblade": row.fps["vblade"]},
            }
            for row in rows
        ], indent=2)
    lines = [f"{'op':<6} {'depth':>5} {'ours f/s':>10} {'ours MB/s':>10} {'vblade f/s':>11} {'vblade MB/s':>12} {'ratio':>6}"]
    for row in rows:
        ours, theirs = row.median_fps("ours"), row.median_fps("vblade")
        ratio = f"{ours / theirs:.2f}" if theirs else "-"
        lines.append(f"{row.op:<6} {row.depth:>5} {ours:>10,.0f} {row.median_mbps('ours'):>10,.1f} {theirs:>11,.0f} {row.median_mbps('vblade'):>12,.1f} {ratio:>6}")
    lines.append(f"({SECTORS}-sector frames at MTU {MTU}; medians of alternating rounds)")
    return "\n".join(lines)
