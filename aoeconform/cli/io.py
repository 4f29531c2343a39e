"""`aoeconform io identify|read|write|verify`: the reference initiator from the command line.

Every action finds its target with ``--target IF[:SHELF.SLOT]`` (discovery,
unimpaired), then runs IDENTIFY and the transfer through the harness's own
fault injection when ``--loss``, ``--dup`` or ``--reorder`` ask for it. A
summary line reports MB/s, retransmissions, duplicate and late replies and
the RTT estimate. ``write`` and ``verify`` overwrite the target and refuse
to run without ``--yes``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from typing import Optional

from aoeconform.cli.argtypes import integer, probability, seconds
from aoeconform.errors import EXIT_FAILURES, EXIT_OK, UsageError

SECTOR = 512
#: verify writes this much by default (from --lba, up to the end of the device)
DEFAULT_VERIFY_SECTORS = 16384
#: the verify pattern is made in blocks of this many sectors, each from its own seed
PATTERN_BLOCK_SECTORS = 64
#: a terminal progress bar appears only for transfers that last longer than this
PROGRESS_AFTER = 0.5
PROGRESS_INTERVAL = 0.1
PROGRESS_WIDTH = 30


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", "-t", required=True, metavar="IF[:S.N]",
                   help="interface, and shelf.slot when several targets answer there (e.g. aoec0h:1.2)")
    p.add_argument("--timeout", type=seconds, default=1.0, help="seconds to wait for discovery replies (default 1)")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    timers = p.add_argument_group("timers")
    timers.add_argument("--timer", choices=("harness", "linux"), default="harness",
                        help="harness (default): per-frame deadlines, estimate seeded by the first round trip, "
                        "5 ms floor, 0.5 s ceiling; linux: the driver's 100 ms timer and 250 ms start")
    timers.add_argument("--dead-after", type=seconds, default=20.0,
                        help="give up (exit 3) when a frame goes unanswered this long (default 20 s; Linux: 180)")
    imp = p.add_argument_group("impairment (applied by the harness to this initiator's frames)")
    imp.add_argument("--loss", type=probability, default=0.0, metavar="P", help="drop each frame with probability P")
    imp.add_argument("--dup", type=probability, default=0.0, metavar="P", help="duplicate each frame with probability P")
    imp.add_argument("--reorder", type=probability, default=0.0, metavar="P",
                     help="hold a frame back behind the next --reorder-depth frames with probability P")
    imp.add_argument("--reorder-depth", type=int, default=3, metavar="N", help="frames a reordered frame waits for (default 3)")
    imp.add_argument("--direction", choices=("both", "send", "recv"), default="both",
                     help="which frames to impair: both (default), send (requests) or recv (replies)")
    imp.add_argument("--seed", type=int, default=1, metavar="N",
                     help="seed for the impairments (and for verify's data pattern); default 1")


def _destructive(p: argparse.ArgumentParser) -> None:
    p.add_argument("--yes", "--allow-write", dest="yes", action="store_true",
                   help="confirm that the target's sectors may be overwritten")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "io",
        help="identify, read, write or verify a target with the reference initiator",
        description="Drive one AoE target with the reference initiator (Linux-style retransmission "
        "and congestion window), optionally through injected loss, duplication and reordering. "
        "Needs root or CAP_NET_RAW. Exit status 2 for bad arguments or a missing interface, "
        "3 when the target does not answer, 1 when verify finds different data.",
    )
    actions = parser.add_subparsers(dest="io_action", metavar="ACTION", required=True)

    p = actions.add_parser("identify", help="Query Config and IDENTIFY DEVICE: what the target is")
    _common(p)
    p.set_defaults(func=run_identify)

    p = actions.add_parser("read", help="read sectors into a file")
    _common(p)
    p.add_argument("--lba", type=integer(0), default=0, help="first sector (default 0)")
    p.add_argument("--count", type=integer(0), required=True, help="number of sectors")
    p.add_argument("--out", "-o", required=True, metavar="FILE", help="where to write the data ('-' for stdout)")
    p.set_defaults(func=run_read)

    p = actions.add_parser("write", help="write a file's contents to sectors (destructive: needs --yes)")
    _common(p)
    p.add_argument("--lba", type=integer(0), default=0, help="first sector (default 0)")
    p.add_argument("--in", "-i", dest="infile", required=True, metavar="FILE",
                   help="data to write, a whole number of 512-byte sectors ('-' for stdin)")
    _destructive(p)
    p.set_defaults(func=run_write)

    p = actions.add_parser("verify", help="write a seeded pattern, read it back, compare (destructive: needs --yes)")
    _common(p)
    p.add_argument("--lba", type=integer(0), default=0, help="first sector (default 0)")
    p.add_argument("--count", type=integer(0), default=None,
                   help=f"number of sectors (default {DEFAULT_VERIFY_SECTORS}, or up to the end of the device)")
    _destructive(p)
    p.set_defaults(func=run_verify)


# --- plumbing ------------------------------------------------------------------
class _Session:
    """An identified target, the impairment around it, and the counters of a run."""

    def __init__(self, args):
        from aoeconform.initiator.addressing import open_target
        from aoeconform.initiator.driver import TIMERS, Initiator
        from aoeconform.transport.impair import ImpairedTransport

        if args.reorder and args.reorder_depth < 1:
            raise UsageError(f"--reorder-depth must be at least 1, got {args.reorder_depth}")
        self.raw, self.record = open_target(args.target, args.timeout, identify=False)
        try:
            self.impaired = None
            transport = self.raw
            if args.loss or args.dup or args.reorder:
                self.impaired = transport = ImpairedTransport(
                    self.raw, seed=args.seed, loss=args.loss, dup=args.dup, reorder=args.reorder,
                    reorder_depth=args.reorder_depth, direction=args.direction,
                )
            self.ini = Initiator(transport, self.record.shelf, self.record.slot, target_mac=self.record.mac,
                                 dead_after=args.dead_after, **TIMERS[args.timer])
            self.info = self.ini.attach(self.record)
        except BaseException:
            self.raw.close()
            raise

    def check_range(self, lba: int, count: int) -> None:
        capacity = self.info.capacity or 0
        if count < 1:
            raise UsageError("--count must be at least 1 sector")
        if lba + count > capacity:
            raise UsageError(
                f"sectors {lba}..{lba + count - 1} run past the end of {self.record.address}, "
                f"which has {capacity} sectors (last lba {capacity - 1})"
            )

    def close(self) -> None:
        transport = self.impaired or self.raw
        transport.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def summary(self, what: str, sectors: int, seconds: float) -> dict:
        counters = self.ini.counters()
        out = {
            "target": self.record.address,
            "mac": ":".join(f"{b:02x}" for b in self.record.mac),
            "operation": what,
            "sectors": sectors,
            "bytes": sectors * SECTOR,
            "seconds": seconds,
            "mb_per_s": sectors * SECTOR / seconds / 1e6 if seconds > 0 else 0.0,
            "counters": counters,
        }
        if self.impaired is not None:
            out["impairment"] = {d: c.as_dict() for d, c in self.impaired.counters.items()}
        return out


def summary_line(summary: dict) -> str:
    c = summary["counters"]
    line = (
        f"{summary['operation']} {summary['sectors']} sectors ({summary['bytes'] / 1048576:.1f} MiB) "
        f"of {summary['target']} in {summary['seconds']:.2f} s: {summary['mb_per_s']:.1f} MB/s; "
        f"{c['retransmissions']} retransmissions ({c.get('fast_retransmissions', 0)} fast, {c.get('timeout_retransmissions', 0)} after timeouts), {c['duplicate_replies']} duplicates, "
        f"{c['late_replies']} late replies; RTT avg {c['rtt_avg_us'] / 1000:.2f} ms dev {c['rtt_dev_us'] / 1000:.2f} ms"
    )
    imp = summary.get("impairment")
    if imp:
        dropped = sum(d["dropped"] for d in imp.values())
        duplicated = sum(d["duplicated"] for d in imp.values())
        reordered = sum(d["reordered"] for d in imp.values())
        line += f"; injected: {dropped} dropped, {duplicated} duplicated, {reordered} reordered"
    return line


class Progress:
    """A one-line bar on stderr, only on a terminal and only once a transfer takes a while."""

    def __init__(self, label: str, total_sectors: int, stream=None):
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty()
        self.label = label
        self.total = total_sectors
        self.start = time.monotonic()
        self.next_draw = self.start + PROGRESS_AFTER
        self.drawn = False

    def __call__(self, done_sectors: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now < self.next_draw:
            return
        self.next_draw = now + PROGRESS_INTERVAL
        fraction = done_sectors / self.total if self.total else 1.0
        filled = int(fraction * PROGRESS_WIDTH)
        rate = done_sectors * SECTOR / (now - self.start) / 1e6
        self.stream.write(
            f"\r{self.label} [{'#' * filled}{'.' * (PROGRESS_WIDTH - filled)}] {fraction * 100:5.1f}% "
            f"{done_sectors * SECTOR / 1048576:.1f}/{self.total * SECTOR / 1048576:.1f} MiB {rate:.1f} MB/s"
        )
        self.stream.flush()
        self.drawn = True

    def finish(self) -> None:
        if self.drawn:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self.drawn = False


def _report(args, summary: dict, to_stderr: bool = False) -> None:
    out = sys.stderr if to_stderr else sys.stdout
    if args.json:
        print(json.dumps(summary, indent=2), file=sys.stdout if not to_stderr else sys.stderr)
    else:
        print(summary_line(summary), file=out)


def pattern(seed: int, lba: int, count: int) -> bytes:
    """The verify pattern for ``count`` sectors at ``lba``: the same bytes for
    a sector whatever range it is made in (blocks of 64 sectors, each from
    its own seed)."""
    first_block = lba // PATTERN_BLOCK_SECTORS
    last_block = (lba + count - 1) // PATTERN_BLOCK_SECTORS
    data = b"".join(
        random.Random((seed << 48) ^ block).randbytes(PATTERN_BLOCK_SECTORS * SECTOR)
        for block in range(first_block, last_block + 1)
    )
    start = (lba - first_block * PATTERN_BLOCK_SECTORS) * SECTOR
    return data[start:start + count * SECTOR]


def _need_yes(args, what: str, lba: int, count: Optional[int]) -> None:
    if args.yes:
        return
    span = f"sectors {lba}.." + (f"{lba + count - 1}" if count else "")
    raise UsageError(f"io {what} overwrites {span} of the target on {args.target}; add --yes to confirm")


# --- actions -------------------------------------------------------------------
def run_identify(args) -> int:
    with _Session(args) as s:
        info = s.info
        data = {
            "target": s.record.address,
            "mac": ":".join(f"{b:02x}" for b in info.mac),
            "bufcnt": info.bufcnt,
            "firmware": info.firmware,
            "config_sector_count": info.sector_count,
            "sectors_per_frame": info.sectors_per_frame,
            "config": info.config.decode("utf-8", "backslashreplace"),
            "model": info.model,
            "serial": info.serial,
            "firmware_revision": info.firmware_rev,
            "capacity_sectors": info.capacity,
            "capacity_bytes": (info.capacity or 0) * SECTOR,
            "lba48": info.lba48,
            "counters": s.ini.counters(),
        }
    if args.json:
        print(json.dumps(data, indent=2))
        return EXIT_OK
    rows = [
        ("target", f"{data['target']} at {data['mac']}"),
        ("model", data["model"] or "-"),
        ("serial", data["serial"] or "-"),
        ("firmware", f"0x{info.firmware:04x} (AoE), {info.firmware_rev or '-'} (ATA)"),
        ("capacity", f"{info.capacity} sectors ({(info.capacity or 0) * SECTOR / 1048576:.1f} MiB), "
                     f"{'48' if info.lba48 else '28'}-bit LBA"),
        ("buffer count", str(info.bufcnt)),
        ("sectors/frame", f"{info.sectors_per_frame} (config says {info.sector_count})"),
        ("config", data["config"] or "-"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return EXIT_OK


def run_read(args) -> int:
    from aoeconform.initiator.transfer import read_range

    to_stdout = args.out == "-"
    with _Session(args) as s:
        s.check_range(args.lba, args.count)
        out = sys.stdout.buffer if to_stdout else _open_out(args.out)
        progress = Progress("read", args.count)
        try:
            start = time.monotonic()
            done = read_range(s.ini, args.lba, args.count, out.write, progress=progress)
            seconds = time.monotonic() - start
            out.flush()
        finally:
            progress.finish()
            if not to_stdout:
                out.close()
        summary = s.summary("read", done, seconds)
    _report(args, summary, to_stderr=to_stdout)
    return EXIT_OK


def _open_out(path: str):
    try:
        return open(path, "wb")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None


def run_write(args) -> int:
    from aoeconform.initiator.transfer import write_range

    if args.infile == "-":
        data = sys.stdin.buffer.read()
    else:
        try:
            with open(args.infile, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise UsageError(f"cannot read {args.infile}: {exc.strerror}") from None
    if not data or len(data) % SECTOR:
        raise UsageError(
            f"{args.infile} holds {len(data)} bytes, not a whole number of {SECTOR}-byte sectors; "
            f"pad it (e.g. truncate -s %{SECTOR} FILE)"
        )
    count = len(data) // SECTOR
    _need_yes(args, "write", args.lba, count)
    view = memoryview(data)
    with _Session(args) as s:
        s.check_range(args.lba, count)
        progress = Progress("write", count)
        try:
            start = time.monotonic()
            done = write_range(s.ini, args.lba, count,
                               lambda offset, n: view[offset * SECTOR:(offset + n) * SECTOR], progress=progress)
            s.ini.flush()
            seconds = time.monotonic() - start
        finally:
            progress.finish()
        summary = s.summary("write", done, seconds)
    _report(args, summary)
    return EXIT_OK


def run_verify(args) -> int:
    from aoeconform.initiator.transfer import read_range, write_range

    _need_yes(args, "verify", args.lba, args.count)
    with _Session(args) as s:
        count = args.count
        if count is None:
            count = max(0, min(DEFAULT_VERIFY_SECTORS, (s.info.capacity or 0) - args.lba))
        s.check_range(args.lba, count)
        seed, lba = args.seed, args.lba
        progress = Progress("write", count)
        try:
            start = time.monotonic()
            write_range(s.ini, lba, count, lambda offset, n: pattern(seed, lba + offset, n), progress=progress)
            s.ini.flush()
        finally:
            progress.finish()
        mismatches: dict = {"sectors": 0, "first": None}
        position = {"lba": lba}

        def compare(data: bytes) -> None:
            at = position["lba"]
            n = len(data) // SECTOR
            expected = pattern(seed, at, n)
            if data != expected:
                for i in range(n):
                    if data[i * SECTOR:(i + 1) * SECTOR] != expected[i * SECTOR:(i + 1) * SECTOR]:
                        mismatches["sectors"] += 1
                        if mismatches["first"] is None:
                            mismatches["first"] = at + i
            position["lba"] = at + n

        progress = Progress("read", count)
        try:
            read_range(s.ini, lba, count, compare, progress=progress)
            seconds = time.monotonic() - start
        finally:
            progress.finish()
        summary = s.summary("verify (write, read back)", 2 * count, seconds)
    summary["mismatched_sectors"] = mismatches["sectors"]
    summary["first_mismatch_lba"] = mismatches["first"]
    if mismatches["sectors"]:
        if args.json:
            print(json.dumps(summary, indent=2))
        print(
            f"aoeconform: error: verify found {mismatches['sectors']} of {count} sectors different from what was "
            f"written, the first at lba {mismatches['first']} ({summary_line(summary)})",
            file=sys.stderr,
        )
        return EXIT_FAILURES
    _report(args, summary)
    return EXIT_OK
