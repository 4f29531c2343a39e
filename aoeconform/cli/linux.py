"""`aoeconform linux`: the kernel's own AoE driver (user-mode Linux) against a target."""

from __future__ import annotations

import argparse
import json

from aoeconform.cli.argtypes import integer, seconds
from aoeconform.cli.lab import add_impairment_flags, bridge_spec_from_args, impairment_requested
from aoeconform.errors import EXIT_FAILURES, EXIT_OK, EXIT_UNREACHABLE, UsageError


def _size(text: str) -> int:
    from aoeconform.lab.netns import parse_size

    try:
        return parse_size(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "linux",
        help="run the Linux kernel's AoE driver (user-mode Linux) against a target and report what it saw",
        description="Boot Linux (Debian's user-mode-linux) with aoe.ko on a lab link to the bundled reference "
        "target (default), to vblade (--vblade), or on your interface (--target IF[:S.N]); write seeded data "
        "sequentially and at random offsets with O_DIRECT, read it back and compare; print what the driver saw "
        "and what crossed the wire. Needs root and `apt-get install user-mode-linux`.",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument("--vblade", action="store_true", help="Debian's vblade in a lab instead of the bundled target")
    where.add_argument("--target", metavar="IF[:S.N]", help="attach the guest to this interface (it must reach the target)")
    p.add_argument("--quirk", action="append", default=[], metavar="NAME", help="a quirk of the bundled target (repeatable)")
    p.add_argument("--mtu", type=integer(68), default=1500, help="lab MTU (default 1500; 9000 for jumbo frames); with --target the interface's own")
    p.add_argument("--image-size", type=_size, default=64 << 20, metavar="SIZE", help="lab image size (default 64M)")
    p.add_argument("--size", type=_size, default=4 << 20, metavar="SIZE", help="bytes the workload writes and reads back (default 4M)")
    p.add_argument("--offset", type=_size, default=0, metavar="SIZE", help="where the region starts (default 0; 4 KiB aligned)")
    p.add_argument("--block", type=_size, default=64 << 10, metavar="SIZE", help="bytes per I/O (default 64K)")
    p.add_argument("--random-writes", type=integer(0), default=64, metavar="N", help="writes at random offsets (default 64)")
    p.add_argument("--seed", type=integer(0), default=1, help="seed of the data and offsets (default 1)")
    p.add_argument("--iflist", default="vec0", metavar="IFS", help="aoe_iflist (default vec0, the guest's only NIC)")
    p.add_argument("--maxout", type=integer(1), metavar="N", help="aoe_maxout (driver default 64)")
    p.add_argument("--deadsecs", type=integer(1), metavar="S", help="aoe_deadsecs (driver default 180)")
    p.add_argument("--timeout", type=seconds, default=120.0, help="seconds before a hung guest is killed (default 120)")
    p.add_argument("--bridge", action="store_true",
                   help="put the impairment bridge between guest and target even with no impairment "
                   "(any of the flags below implies it; lab targets only)")
    add_impairment_flags(p)
    p.add_argument("--impair-from", choices=["boot", "workload"], default="workload",
                   help="impair from boot (discovery and IDENTIFY too), or from the workload on (default: after "
                   "a clean 1 MiB warm-up read, so the driver's RTT estimate, which starts at 250 ms, has settled)")
    p.add_argument("--pcap", metavar="FILE", help="write the frames seen at the guest's side here "
                   "(through the bridge, the target's side goes beside it as FILE-target.pcap)")
    p.add_argument("--json", metavar="FILE", help="write the full report as JSON here")
    p.set_defaults(func=run)


def run(args) -> int:
    from aoeconform.lab.linux import BUNDLED, VBLADE, LinuxRun, format_report, run_linux
    from aoeconform.lab.uml import DriverParams, GuestError, uml_problem
    from aoeconform.lab.workload import WorkloadSpec

    if args.quirk and (args.vblade or args.target):
        raise UsageError("--quirk applies to the bundled target only")
    bridge = None
    if args.bridge or impairment_requested(args) or args.only != "all" or args.tag is not None:
        if args.target:
            raise UsageError("the impairment bridge needs a lab target: drop --target, or impair your own network")
        bridge = bridge_spec_from_args(args)
    spec = WorkloadSpec(seed=args.seed, offset=args.offset, size=args.size, block=args.block,
                        random_writes=args.random_writes)
    try:
        spec.check(args.image_size if not args.target else None)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.quirk:
        from aoeconform.target.quirks import check_quirks

        check_quirks(args.quirk)
    problem = uml_problem()
    if problem:
        raise UsageError(problem)
    run_spec = LinuxRun(
        target=args.target or (VBLADE if args.vblade else BUNDLED),
        mtu=args.mtu,
        params=DriverParams(aoe_iflist=args.iflist, aoe_maxout=args.maxout, aoe_deadsecs=args.deadsecs),
        workload=spec,
        quirks=tuple(args.quirk),
        image_bytes=args.image_size,
        timeout=args.timeout,
        pcap=args.pcap,
        bridge=bridge,
        impair_from=args.impair_from,
    )
    from aoeconform.cli.run import _sigterm_interrupts

    try:
        # SIGTERM (`timeout`, a cancelled job) ends it like Ctrl-C: guest, bridge and lab taken down
        with _sigterm_interrupts():
            report = run_linux(run_spec)
    except GuestError as exc:
        raise UsageError(str(exc)) from None
    for line in format_report(report):
        print(line)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report.as_dict(), f, indent=1, default=str)
    if report.ok:
        return EXIT_OK
    return EXIT_UNREACHABLE if not report.device_found and not report.guest.killed else EXIT_FAILURES
