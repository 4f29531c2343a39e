"""`aoeconform bench fuzz`: fuzz cases per second against vblade, three ways.

In one lab (veth pair and namespace, MTU 1500, vblade on a 64 MiB sparse
image), each round measures:

* **ours**: ``aoeconform.fuzz.Fuzzer`` over a raw socket, pipelined, every
  reply decoded and checked, health checks every 100 cases (shrinking off:
  this measures the loop, not the findings), cases made ahead by its helper
  process (``fuzz.feed``) as in any run of two seconds or more;
* **boofuzz**: a boofuzz ``Session`` over its ``RawL2SocketConnection`` with
  an AoE ATA request described in ``s_initialize`` blocks, a bounded number
  of cases, once with ``reuse_target_connection=True`` and the case
  database in memory, once with boofuzz's defaults (a new socket per case,
  the database in a temporary directory). No web UI (``web_port=None``),
  no console logger, a receive timeout of 50 ms;
* **bare**: a plain AF_PACKET loop sending one valid Query Config read and
  waiting for its reply, one at a time: the ceiling of a serial Python loop.

Rounds are short and bounded in count and time; the figures are medians.
Beside cases per second, each contender's own CPU time per case is shown
(this process's user and system time over its cases, syscalls included,
ours with its helper's, the target's excluded): on a shared machine the rate follows the CPU share
the process gets, the CPU cost per case does not.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import socket
import statistics
import sys
import tempfile
import time
from typing import Dict, List, Optional, Tuple

from aoeconform.errors import UsageError
from aoeconform.lab import Lab, make_sparse_image, require_root

SHELF, SLOT = 1, 2
MTU = 1500
IMAGE_BYTES = 64 << 20
BOOFUZZ_RECV_TIMEOUT = 0.05
#: cases per boofuzz round: bounded so a round stays within a few seconds
BOOFUZZ_CASES = {"boofuzz-tuned": 4000, "boofuzz-defaults": 120}
ROUND_CASE_CAP = 200_000

COLUMNS = ("ours", "boofuzz-tuned", "boofuzz-defaults", "bare")


def register(subparsers) -> None:
    p = subparsers.add_parser("fuzz", help="fuzz cases per second: ours vs boofuzz vs a bare raw-socket loop, against vblade (needs root)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--seconds", type=float, default=2.0, help="length of one round of ours and of bare (default 2)")
    p.add_argument("--rounds", type=int, default=3, help="rounds per contender; medians are reported (default 3)")
    p.set_defaults(func=_run)


def _run(args) -> int:
    if args.seconds <= 0 or args.rounds < 1:
        raise UsageError("--seconds must be positive and --rounds at least 1")
    results, cpu = run_bench(seconds=args.seconds, rounds=args.rounds)
    print(report(results, args.json, cpu))
    return 0


# -- contenders ---------------------------------------------------------------------------


class _Cpu:
    """This process's CPU seconds over a block, with those of the children it
    waited for in it (ours: the helper that makes cases ahead, ``fuzz.feed``):
    ``with _Cpu() as cpu: ...; cpu.seconds``."""

    @staticmethod
    def _now() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    def __enter__(self) -> "_Cpu":
        self.seconds = 0.0
        self._start = self._now()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = self._now() - self._start


def _ours(iface: str, seconds: float, seed: int) -> tuple:
    from aoeconform.fuzz import Fuzzer
    from aoeconform.initiator.addressing import open_target

    from aoeconform.fuzz.seeds import generated_seeds

    transport, info = open_target(f"{iface}:{SHELF}.{SLOT}", timeout=2.0, identify=True)
    try:
        # ATA requests only, as boofuzz's definition below; the Mac Mask seeds
        # would soon lock vblade up (add and delete in one frame, see corpora/)
        seeds = [s for s in generated_seeds() if s.command == 0]
        fuzzer = Fuzzer(transport, info, seed=seed, seeds=seeds, shrink=False, out_dir=None)
        with _Cpu() as cpu:
            result = fuzzer.run(cases=ROUND_CASE_CAP, seconds=seconds)
        return result.cases_per_second, cpu.seconds / max(1, result.cases)
    finally:
        transport.close()


def _bare(iface: str, target_mac: bytes, seconds: float) -> tuple:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x88A2))
    try:
        sock.setsockopt(263, 23, 1)  # PACKET_IGNORE_OUTGOING
    except OSError:
        pass
    sock.bind((iface, 0x88A2))
    src = sock.getsockname()[4]
    frame = bytearray((target_mac + src + b"\x88\xa2" + bytes((0x10, 0, 0, SHELF, SLOT, 1)) + bytes(12)).ljust(60, b"\0"))
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    done = 0
    tag = 0
    try:
        with _Cpu() as cpu:
            end = time.monotonic() + seconds
            start = time.monotonic()
            while time.monotonic() < end and done < ROUND_CASE_CAP:
                tag = (tag + 1) & 0x7FFFFFFF
                frame[20:24] = tag.to_bytes(4, "big")
                sock.send(frame)
                want = bytes(frame[20:24])
                while True:
                    if not poller.poll(1000):
                        break  # lost: go on with the next
                    reply = sock.recv(2048)
                    if reply[20:24] == want and reply[14] & 0x08:
                        done += 1
                        break
        return done / (time.monotonic() - start), cpu.seconds / max(1, done)
    finally:
        sock.close()


def _boofuzz(iface: str, target_mac: bytes, host_mac: bytes, tuned: bool, cases: int, workdir: str) -> tuple:
    """Cases per second of a boofuzz Session sending ``cases`` mutated ATA requests."""
    import boofuzz
    from boofuzz import Session, Target, s_block, s_byte, s_bytes, s_dword, s_get, s_initialize, s_static, s_word

    name = f"aoe-ata-{'tuned' if tuned else 'defaults'}-{time.monotonic_ns()}"
    s_initialize(name)
    s_static(target_mac, name="dst")
    s_static(host_mac, name="src")
    s_static(b"\x88\xa2", name="ethertype")
    with s_block("aoe-header"):
        s_byte(0x10, name="ver_flags", fuzzable=True)
        s_byte(0, name="error", fuzzable=True)
        s_word(SHELF, name="major", endian=">", fuzzable=True)
        s_byte(SLOT, name="minor", fuzzable=True)
        s_byte(0, name="command", fuzzable=True)
        s_dword(0x01020304, name="tag", endian=">", fuzzable=True)
    with s_block("ata-arg"):
        s_byte(0x40, name="aflags", fuzzable=True)
        s_byte(0, name="err_feature", fuzzable=True)
        s_byte(1, name="sector_count", fuzzable=True)
        s_byte(0x24, name="cmd_status", fuzzable=True)  # READ SECTORS EXT: never a write
        s_bytes(bytes(6), name="lba", size=6, fuzzable=True)
        s_word(0, name="reserved", endian=">", fuzzable=True)
    s_static(bytes(24), name="padding")

    connection = boofuzz.RawL2SocketConnection(iface, ethernet_proto=0x88A2, recv_timeout=BOOFUZZ_RECV_TIMEOUT, send_timeout=1.0, mtu=MTU + 14)
    options = dict(
        target=Target(connection=connection),
        web_port=None,
        fuzz_loggers=[],
        index_end=cases,
        sleep_time=0.0,
        receive_data_after_each_request=True,
    )
    if tuned:
        options.update(reuse_target_connection=True, db_filename=":memory:")
    else:
        options.update(db_filename=os.path.join(workdir, f"boofuzz-{time.monotonic_ns()}.db"))
    session = Session(**options)
    session.connect(s_get(name))
    start = time.monotonic()
    with _Cpu() as cpu:
        session.fuzz()
    elapsed = time.monotonic() - start
    done = session.num_cases_actually_fuzzed
    return (done / elapsed if elapsed else 0.0), cpu.seconds / max(1, done)


# -- the run -------------------------------------------------------------------------------


def run_bench(seconds: float = 2.0, rounds: int = 3, log=sys.stderr) -> Tuple[Dict[str, List[float]], Dict[str, List[float]]]:
    """(cases per second, CPU seconds per case), each contender's rounds."""
    require_root("benchmarking")
    if shutil.which("vblade") is None:
        raise UsageError("vblade is not installed; install it with `apt-get install vblade`")
    try:
        import boofuzz  # noqa: F401
    except ImportError:
        raise UsageError("boofuzz is not installed; install the `fuzz` extra (pip install 'aoeconform[fuzz]')") from None
    workdir = tempfile.mkdtemp(prefix="aoeconform-bench-fuzz-")
    lab = Lab(f"aoecbf{os.getpid() % 100000}", mtu=MTU)
    results: Dict[str, List[float]] = {name: [] for name in COLUMNS}
    cpu: Dict[str, List[float]] = {name: [] for name in COLUMNS}

    def record(name: str, figures: tuple) -> None:
        results[name].append(figures[0])
        cpu[name].append(figures[1])

    cwd = os.getcwd()
    try:
        lab.up()
        image = os.path.join(workdir, "disk.img")
        make_sparse_image(image, IMAGE_BYTES)
        lab.start_vblade(SHELF, SLOT, image)
        os.chdir(workdir)  # anything boofuzz writes by default lands here
        for round_index in range(rounds):
            record("ours", _ours(lab.host_if, seconds, seed=round_index))
            record("boofuzz-tuned", _boofuzz(lab.host_if, lab.target_mac, lab.host_mac, True, BOOFUZZ_CASES["boofuzz-tuned"], workdir))
            record("boofuzz-defaults", _boofuzz(lab.host_if, lab.target_mac, lab.host_mac, False, BOOFUZZ_CASES["boofuzz-defaults"], workdir))
            record("bare", _bare(lab.host_if, lab.target_mac, seconds))
            if log is not None:
                figures = ", ".join(f"{name} {values[-1]:,.0f}/s" for name, values in results.items())
                print(f"round {round_index + 1}/{rounds}: {figures}", file=log, flush=True)
    finally:
        os.chdir(cwd)
        lab.down()
        shutil.rmtree(workdir, ignore_errors=True)
    return results, cpu


def medians(results: Dict[str, List[float]]) -> Dict[str, float]:
    return {name: statistics.median(values) for name, values in results.items() if values}


def report(results: Dict[str, List[float]], as_json: bool, cpu: Optional[Dict[str, List[float]]] = None) -> str:
    m = medians(results)
    c = medians(cpu or {})
    ours = m.get("ours", 0.0)

    def ratio(other: str):
        return ours / m[other] if m.get(other) else None

    ratios = {
        "ours/boofuzz-tuned": ratio("boofuzz-tuned"),
        "ours/boofuzz-defaults": ratio("boofuzz-defaults"),
        "ours/bare": ratio("bare"),
    }
    if as_json:
        return json.dumps({"mtu": MTU, "cases_per_second": m, "ratios": ratios, "rounds": results,
                           "cpu_us_per_case": {name: round(v * 1e6, 1) for name, v in c.items()},
                           "boofuzz_cases_per_round": BOOFUZZ_CASES, "boofuzz_recv_timeout": BOOFUZZ_RECV_TIMEOUT}, indent=2)
    lines = [f"{'contender':<18} {'cases/s (median)':>17} {'CPU us/case':>12}  rounds"]
    for name in COLUMNS:
        if name in m:
            used = f"{c[name] * 1e6:,.1f}" if name in c else "-"
            lines.append(f"{name:<18} {m[name]:>17,.0f} {used:>12}  " + ", ".join(f"{v:,.0f}" for v in results[name]))
    lines.append("")
    for name, value in ratios.items():
        lines.append(f"{name:<22} {'-' if value is None else f'{value:.2f}'}")
    lines.append(f"(vblade at MTU {MTU}; boofuzz: RawL2SocketConnection, {BOOFUZZ_RECV_TIMEOUT * 1000:.0f} ms receive timeout, "
                 f"tuned = reuse_target_connection and in-memory DB; bare = one valid request outstanding)")
    return "\n".join(lines)


if __name__ == "__main__":  # python -m aoeconform.bench.fuzz [--json]
    import argparse

    parser = argparse.ArgumentParser(prog="python -m aoeconform.bench.fuzz")
    register(parser.add_subparsers())
    sys.exit(parser.parse_args(["fuzz", *sys.argv[1:]]).func(parser.parse_args(["fuzz", *sys.argv[1:]])))
