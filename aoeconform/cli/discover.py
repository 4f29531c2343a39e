"""`aoeconform discover --iface IF`: list the AoE targets reachable on an interface."""

from __future__ import annotations

import json
import sys

from aoeconform.errors import EXIT_OK, EXIT_UNREACHABLE, UsageError

COLUMNS = ("MAC", "SHELF.SLOT", "BUFCNT", "FIRMWARE", "SECTORS/FRAME", "CONFIG", "MODEL", "SERIAL", "CAPACITY")
CONFIG_WIDTH = 24


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "discover",
        help="find AoE targets on an interface (broadcast Query Config, then IDENTIFY)",
        description="Broadcast a Query Config on the interface, collect the replies, and "
        "IDENTIFY each target. Needs root or CAP_NET_RAW. Exit status 3 when no target answers.",
    )
    parser.add_argument("--iface", required=True, help="interface to send on, e.g. the host end of a lab (aoec0h)")
    parser.add_argument("--timeout", type=float, default=1.0, help="seconds to wait for config replies, and again for IDENTIFY (default 1)")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    parser.add_argument("--no-identify", dest="identify", action="store_false", help="skip IDENTIFY DEVICE (model, serial and capacity stay empty)")
    parser.set_defaults(func=run)


def _config_text(config: bytes) -> str:
    text = "".join(chr(b) if 0x20 <= b < 0x7F else f"\\x{b:02x}" for b in config)
    return text if len(text) <= CONFIG_WIDTH else text[: CONFIG_WIDTH - 3] + "..."


def _capacity_text(record) -> str:
    if record.capacity is None:
        return "-"
    mib = record.capacity * 512 / (1024 * 1024)
    unit, size = ("GiB", mib / 1024) if mib >= 1024 else ("MiB", mib)
    return f"{record.capacity} sectors ({size:.1f} {unit})"


def _row(record) -> tuple:
    from aoeconform.wire import mac_to_str

    return (
        mac_to_str(record.mac),
        record.address,
        str(record.bufcnt),
        f"0x{record.firmware:04x}" + (f" {record.firmware_rev}" if record.firmware_rev else ""),
        str(record.max_sectors),
        _config_text(record.config) or "-",
        record.model or "-",
        record.serial or "-",
        _capacity_text(record),
    )


def format_table(records) -> str:
    rows = [COLUMNS] + [_row(r) for r in records]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def run(args) -> int:
    from aoeconform.initiator.discovery import discover
    from aoeconform.transport.raw import RawTransport

    if not args.timeout > 0:
        raise UsageError(f"--timeout must be a positive number of seconds, got {args.timeout:g}")
    with RawTransport(args.iface) as transport:
        found = discover(transport, args.timeout, identify=args.identify)
    for ignored in found.ignored:
        print(f"aoeconform: note: ignored a reply: {ignored.describe()}", file=sys.stderr)
    for record in found:
        if args.identify and record.identify_error:
            print(f"aoeconform: note: {record.describe()} IDENTIFY failed: {record.identify_error}", file=sys.stderr)
    if args.json:
        print(json.dumps([r.as_dict() for r in found], indent=2))
    elif found:
        print(format_table(found))
    if not found:
        print(
            f"aoeconform: no AoE targets answered on {args.iface} within {args.timeout:g} s; "
            f"check that a target runs on the other end of the link and the link is up",
            file=sys.stderr,
        )
        return EXIT_UNREACHABLE
    return EXIT_OK
