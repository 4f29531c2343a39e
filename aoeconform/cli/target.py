"""`aoeconform target`: run the bundled reference target on an interface."""

from __future__ import annotations

import signal
import socket
import sys

from aoeconform.cli.argtypes import integer
from aoeconform.errors import UsageError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "target",
        help="run the reference AoE target (optionally with named defects)",
        description="Export IMAGE (a file, sparse is fine, or mem:SIZE such as mem:64M) "
        "as shelf.slot on an interface, following the protocol strictly unless --quirk names a defect.",
    )
    p.add_argument("image", nargs="?", metavar="IMAGE", help="image file, or mem:SIZE")
    p.add_argument("--iface", "-i", metavar="IF", help="network interface to serve on")
    p.add_argument("--shelf", type=integer(), metavar="S", help="shelf (AoE major) number, 0-65534")
    p.add_argument("--slot", type=integer(), metavar="N", help="slot (AoE minor) number, 0-254")
    p.add_argument("--bufcnt", type=integer(), default=16, metavar="N", help="Buffer Count to advertise and queue (default 16)")
    p.add_argument("--readonly", action="store_true", help="refuse writes (ATA ABRT)")
    p.add_argument("--sync", action="store_true", help="write through to stable storage before acknowledging (O_DSYNC)")
    p.add_argument("--config", metavar="STRING", help="initial config string")
    p.add_argument("--mask", action="append", default=[], metavar="MAC,...", help="initial Mac Mask list (repeatable)")
    p.add_argument("--quirk", action="append", default=[], metavar="NAME", help="break one rule on purpose (repeatable; see --list-quirks)")
    p.add_argument("--reading", action="append", default=[], metavar="NAME",
                   help="take another conforming reading of a rule where the notes accept several (repeatable; see --list-readings)")
    p.add_argument("--list-quirks", action="store_true", help="list the quirk names with a one-line description and exit")
    p.add_argument("--list-readings", action="store_true", help="list the accepted readings the target can take and exit")
    p.set_defaults(func=run)


def _parse_macs(items: list[str]) -> list[bytes]:
    from aoeconform.wire.header import mac_from_str

    macs = []
    for item in items:
        for text in filter(None, (part.strip() for part in item.split(","))):
            try:
                macs.append(mac_from_str(text))
            except ValueError:
                raise UsageError(f"--mask: {text!r} is not a MAC address; write it like 02:00:00:00:00:01") from None
    return macs


def run(args) -> int:
    from aoeconform.target.quirks import QUIRKS, READINGS, check_quirks, quirk_lines

    if args.list_quirks or args.list_readings:
        for line in quirk_lines(READINGS if args.list_readings else QUIRKS):
            print(line)
        return 0
    missing = [flag for flag, value in (("IMAGE", args.image), ("--iface", args.iface), ("--shelf", args.shelf), ("--slot", args.slot)) if value is None]
    if missing:
        raise UsageError(f"target needs {', '.join(missing)}; e.g. aoeconform target mem:64M --iface eth1 --shelf 1 --slot 2")
    quirks = check_quirks(name.strip() for item in args.quirk for name in item.split(",") if name.strip())
    readings = {name.strip() for item in args.reading for name in item.split(",") if name.strip()}
    if readings - READINGS.keys():
        raise UsageError(f"unknown reading {sorted(readings - READINGS.keys())[0]!r}; `aoeconform target --list-readings` lists them")
    quirks = quirks | readings
    mask = _parse_macs(args.mask)
    config = (args.config or "").encode("utf-8", "surrogateescape")

    from aoeconform.target.image import open_image
    from aoeconform.target.logic import Target
    from aoeconform.target.server import TargetServer, open_raw_transport

    # readonly-writes needs a writable file underneath the read-only export
    image = open_image(args.image, readonly=args.readonly and "readonly-writes" not in quirks, sync=args.sync)
    transport = None
    try:
        transport = open_raw_transport(args.iface, args.bufcnt)
        target = Target(
            image,
            shelf=args.shelf,
            slot=args.slot,
            mac=transport.mac,
            mtu=transport.mtu,
            bufcnt=args.bufcnt,
            readonly=args.readonly,
            config=config,
            mask=mask,
            quirks=quirks,
            hostname=socket.gethostname(),
        )
        server = TargetServer(target, transport, log=sys.stderr)

        def on_signal(signum, frame):
            server.stop()

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        server.announce()
        print(
            f"aoeconform target: serving {image.name} ({target.capacity} sectors) as {args.shelf}.{args.slot} "
            f"on {args.iface} mtu {target.mtu}, {target.max_sectors} sectors/frame, bufcnt {args.bufcnt}"
            + (f", quirks {','.join(sorted(quirks))}" if quirks else ""),
            flush=True,
        )
        server.serve_forever()
        server.close()
        print(f"aoeconform target: stopped after {server.frames_in} requests, {server.frames_out} replies", flush=True)
    finally:
        if transport is not None:
            transport.close()
        image.close()
    return 0
