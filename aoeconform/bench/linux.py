"""`aoeconform bench linux`: the reference initiator's Linux timer preset against the real driver.

Both initiators run the same workload (``lab.workload``: the region written
in ``block``-sized requests, random writes, read back) against the same
target, each through its own guest link and an impairment bridge with the
same seed and rates, after the same clean 1 MiB warm-up read (impairments
start after it, when both have an RTT estimate from a clean link). Both
sides are counted the same way, from the bridge's captures
(``lab.wirestats``): retransmissions on the initiator's link, duplicates
delivered on the target's; beside them each initiator's own count of
timeouts (Linux: its ``retransmit`` lines, which are all timeouts).

The model runs in a process of its own (``python -m aoeconform.bench.linux
--model CONFIG``) so that the bridge thread and it do not share a Python
interpreter lock, as the guest and the bridge do not.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Dict, List

from aoeconform.errors import UsageError

WARMUP_BYTES = 1 << 20


@dataclass
class Side:
    """What one initiator did."""

    name: str
    ok: bool = False
    problem: str = ""
    seconds: float = 0.0
    bytes: int = 0
    #: the initiator's own count of frames resent after a timeout
    timeouts: int = 0
    wire: Dict = field(default_factory=dict)
    bridge: Dict = field(default_factory=dict)

    @property
    def mb_per_s(self) -> float:
        return self.bytes / self.seconds / 1e6 if self.seconds > 0 else 0.0

    @property
    def frames_lost(self) -> int:
        return sum(self.bridge.get(d, {}).get("dropped", 0) for d in ("to_target", "to_initiator"))

    def as_dict(self) -> Dict:
        out = asdict(self)
        out.update(mb_per_s=round(self.mb_per_s, 3), frames_lost=self.frames_lost)
        return out


def _workload_seconds(phases: List[Dict]) -> tuple:
    return sum(p["seconds"] for p in phases), sum(p["bytes"] for p in phases)


# -- the model, in its own process ------------------------------------------------------


def model_main(config_path: str) -> int:
    """Identify, warm up, say "warm", wait for a line on stdin, run the workload, print JSON."""
    from aoeconform.initiator.driver import LINUX_TIMERS, Initiator
    from aoeconform.lab.workload import SECTOR, ExpectedRegion, WorkloadSpec, random_writes, sequential_block
    from aoeconform.transport.raw import RawTransport

    with open(config_path) as f:
        config = json.load(f)
    spec = WorkloadSpec.from_dict(config["spec"])
    out: Dict = {"phases": [], "ok": False, "error": ""}
    with RawTransport(config["iface"]) as transport:
        ini = Initiator(transport, config["shelf"], config["slot"], maxout_cap=int(config.get("maxout", 64)),
                        dead_after=float(config.get("deadsecs", 180)), **LINUX_TIMERS)
        ini.identify()
        for lba in range(0, config["warmup"] // SECTOR, 128):
            ini.read(lba, 128)
        print("warm", flush=True)
        sys.stdin.readline()
        try:
            writes = random_writes(spec)
            expected = ExpectedRegion(spec, writes)
            for name, items in (("seq", [(pos, sequential_block(spec, pos)) for pos in range(0, spec.size, spec.block)]),
                                ("random", writes)):
                start = time.monotonic()
                for pos, data in items:
                    ini.write((spec.offset + pos) // SECTOR, data)
                out["phases"].append({"name": name, "bytes": sum(len(d) for _, d in items),
                                      "seconds": time.monotonic() - start})
            start = time.monotonic()
            mismatches = 0
            for pos in range(0, spec.size, spec.block):
                n = min(spec.block, spec.size - pos)
                if ini.read((spec.offset + pos) // SECTOR, n // SECTOR) != expected.block(pos):
                    mismatches += 1
            out["phases"].append({"name": "verify", "bytes": spec.size, "seconds": time.monotonic() - start})
            out["ok"] = mismatches == 0
            if mismatches:
                out["error"] = f"{mismatches} blocks read back differently"
        except Exception as exc:  # reported to the host as the model's failure
            out["error"] = f"{type(exc).__name__}: {exc}"
        out["counters"] = ini.counters()
    print(json.dumps(out, default=str), flush=True)
    return 0


def _read_line(proc: subprocess.Popen, deadline: float) -> str:
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.1)
        if ready:
            return proc.stdout.readline()
        if proc.poll() is not None:
            return proc.stdout.readline()
    return ""


# -- both sides -------------------------------------------------------------------------------


def run_bench(target: str = "bundled", mtu: int = 1500, seed: int = 1, loss: float = 0.01, dup: float = 0.01,
              reorder: float = 0.01, size: int = 1 << 20, block: int = 64 << 10, random_count: int = 16,
              timeout: float = 300.0) -> List[Side]:
    """The driver, then the model, against one target in one lab; returns both sides."""
    from aoeconform.lab.bridge import BridgeSpec
    from aoeconform.lab.linux import VBLADE, BridgeThread, LinuxRun, drive_guest, lab_name
    from aoeconform.lab.netns import GuestLink, Lab, make_sparse_image
    from aoeconform.lab.uml import GuestError, uml_problem
    from aoeconform.lab.wirestats import analyse
    from aoeconform.lab.workload import WorkloadSpec

    problem = uml_problem()
    if problem:
        raise UsageError(problem)
    spec = WorkloadSpec(seed=seed, offset=8 << 20, size=size, block=block, random_writes=random_count)
    bridge_spec = BridgeSpec.symmetric(seed=seed, loss=loss, dup=dup, reorder=reorder)
    workdir = tempfile.mkdtemp(prefix="aoeconform-bench-linux-")
    lab = Lab(lab_name(), mtu=mtu).up()
    sides: List[Side] = []
    try:
        image = make_sparse_image(os.path.join(workdir, "disk.img"), 64 << 20)
        shelf, slot = 1, 2
        if target == VBLADE:
            proc = lab.start_vblade(shelf, slot, image, log_path=os.path.join(workdir, "target.log"))
        else:
            proc = lab.start_reference_target(shelf, slot, image, log_path=os.path.join(workdir, "target.log"))

        # the driver
        run = LinuxRun(target=f"{lab.host_if}:{shelf}.{slot}", mtu=mtu, workload=spec, bridge=bridge_spec,
                       warmup=WARMUP_BYTES, timeout=timeout, pcap=os.path.join(workdir, "driver.pcap"))
        try:
            report = drive_guest(lab.host_if, shelf, slot, run, "bench", workdir=workdir)
        except GuestError as exc:
            raise UsageError(str(exc)) from None
        seconds, nbytes = _workload_seconds(report.guest.workload.get("phases", []))
        sides.append(Side("Linux aoe.ko (user-mode Linux)", ok=report.ok, problem=report.problem, seconds=seconds,
                          bytes=nbytes, timeouts=report.guest.driver_count("retransmit"),
                          wire=report.wire.as_dict(), bridge=report.bridge))

        # the model, on a link of its own through a bridge with the same seed
        link = GuestLink(lab_name(), mtu).up()
        try:
            bridge = BridgeThread(link.bridge_if, lab.host_if, bridge_spec, os.path.join(workdir, "model.pcap"),
                                  workdir, enabled=False)
            config_path = os.path.join(workdir, "model.json")
            with open(config_path, "w") as f:
                json.dump({"iface": link.initiator_if, "shelf": shelf, "slot": slot, "spec": asdict(spec),
                           "warmup": WARMUP_BYTES}, f)
            model = subprocess.Popen([sys.executable, "-m", "aoeconform.bench.linux", "--model", config_path],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True)
            side = Side("aoeconform initiator, --timer linux")
            try:
                deadline = time.monotonic() + timeout
                if _read_line(model, deadline).strip() != "warm":
                    side.problem = "the model did not finish its warm-up"
                else:
                    bridge.core.enabled = True
                    assert model.stdin is not None
                    model.stdin.write("go\n")
                    model.stdin.flush()
                    line = _read_line(model, deadline)
                    result: Dict = json.loads(line) if line.strip() else {"error": "no result before the deadline"}
                    side.seconds, side.bytes = _workload_seconds(result.get("phases", []))
                    side.ok = bool(result.get("ok"))
                    side.problem = result.get("error", "")
                    side.timeouts = int(result.get("counters", {}).get("timeout_retransmissions", 0))
            finally:
                if model.poll() is None:
                    model.kill()
                model.wait(5)
                bridge.stop()
            side.wire = analyse(bridge.initiator_frames(), bridge.target_frames()).as_dict()
            side.bridge = bridge.core.counters()
            sides.append(side)
        finally:
            link.down()
        proc.stop()
    finally:
        lab.down()
        shutil.rmtree(workdir, ignore_errors=True)
    return sides


def table(sides: List[Side], title: str) -> str:
    lines = [title, "",
             "| initiator | MB/s | seconds | frames lost by the bridge | timeouts (own count) | retransmissions (wire) "
             "| duplicates delivered to the target | late replies | read-back |",
             "|---|---|---|---|---|---|---|---|---|"]
    for s in sides:
        w = s.wire
        lines.append(f"| {s.name} | {s.mb_per_s:.2f} | {s.seconds:.1f} | {s.frames_lost} | {s.timeouts} | "
                     f"{w.get('retransmissions', 0)} | {w.get('duplicates_delivered') or 0} | {w.get('late_replies', 0)} | "
                     f"{'byte-exact' if s.ok else 'FAILED: ' + s.problem} |")
    return "\n".join(lines)


def register(subparsers) -> None:
    from aoeconform.cli.argtypes import integer, probability

    p = subparsers.add_parser(
        "linux",
        help="the reference initiator's --timer linux against the Linux driver, same bridge, seed and impairment",
        description="Run the Linux AoE driver (user-mode Linux) and the reference initiator with its Linux timer "
        "preset, one after the other, against the same target through the impairment bridge with the same seed "
        "and rates, and print retransmissions, duplicates delivered, timeouts and throughput side by side. "
        "Needs root and user-mode-linux.",
    )
    p.add_argument("--vblade", action="store_true", help="Debian's vblade as the target (default: the bundled target)")
    p.add_argument("--mtu", type=integer(68), default=1500, help="lab MTU (default 1500)")
    p.add_argument("--seed", type=integer(0), default=1, help="seed of the bridge and the data (default 1)")
    p.add_argument("--loss", type=probability, default=0.01, help="loss both ways (default 0.01)")
    p.add_argument("--dup", type=probability, default=0.01, help="duplication both ways (default 0.01)")
    p.add_argument("--reorder", type=probability, default=0.01, help="reordering both ways (default 0.01)")
    p.add_argument("--size", type=integer(4096), default=1 << 20, help="bytes of the workload region (default 1 MiB)")
    p.add_argument("--random-writes", type=integer(0), default=16, help="random writes (default 16)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_run)


def _run(args) -> int:
    if args.size % 4096:
        raise UsageError("--size must be a multiple of 4096")
    from aoeconform.cli.run import _sigterm_interrupts

    with _sigterm_interrupts():  # SIGTERM takes everything down as Ctrl-C does
        sides = run_bench(target="vblade" if args.vblade else "bundled", mtu=args.mtu, seed=args.seed,
                          loss=args.loss, dup=args.dup, reorder=args.reorder, size=args.size,
                          random_count=args.random_writes)
    if args.json:
        print(json.dumps([s.as_dict() for s in sides], indent=1, default=str))
    else:
        print(table(sides, f"{'vblade' if args.vblade else 'bundled target'}, MTU {args.mtu}, loss {args.loss}, "
                           f"dup {args.dup}, reorder {args.reorder} both ways, seed {args.seed}, "
                           f"{args.size // 1024} KiB + {args.random_writes} random writes"))
    return 0 if all(s.ok for s in sides) else 1


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--model":
        sys.exit(model_main(sys.argv[2]))
    sys.exit("usage: python -m aoeconform.bench.linux --model CONFIG (run by `aoeconform bench linux`)")
