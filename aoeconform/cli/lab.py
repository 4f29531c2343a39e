"""`aoeconform lab up|down|status`: a veth pair and a namespace to test in."""

from __future__ import annotations

import shlex
import sys

from aoeconform.errors import EXIT_OK, EXIT_UNREACHABLE


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "lab",
        help="create or remove a test network (veth pair + network namespace)",
        description="Create or remove a veth pair whose target end lives in its own network "
        "namespace. Needs root. Both actions are idempotent.",
    )
    actions = parser.add_subparsers(dest="lab_action", metavar="ACTION", required=True)

    up = actions.add_parser("up", help="create the lab (replacing a stale one of the same name)")
    _add_name(up)
    up.add_argument("--mtu", type=int, default=1500, help="MTU of both veth ends (default 1500; 9000 for jumbo frames)")
    up.set_defaults(func=_up)

    down = actions.add_parser("down", help="remove the lab and stop anything running in it")
    _add_name(down)
    down.set_defaults(func=_down)

    status = actions.add_parser("status", help="say whether the lab exists (exit status 3 if not)")
    _add_name(status)
    status.set_defaults(func=_status)


def _add_name(parser) -> None:
    parser.add_argument("--name", default="aoec0", help="lab name: 'aoec' plus up to 10 letters or digits (default aoec0)")


def _up(args) -> int:
    from aoeconform.lab import Lab

    lab = Lab(args.name, mtu=args.mtu).up()
    ns, target_if = shlex.quote(lab.netns), shlex.quote(lab.target_if)
    python = shlex.quote(sys.executable)
    print(f"lab {lab.name} is up (MTU {lab.mtu})")
    print(f"  host interface:   {lab.host_if}   (the harness sends here: --iface {lab.host_if})")
    print(f"  namespace:        {lab.netns}")
    print(f"  target interface: {lab.target_if}   (inside {lab.netns})")
    print("start a target in it, for example:")
    print(f"  truncate -s 64M disk.img && ip netns exec {ns} vblade 1 1 {target_if} disk.img")
    print(f"  ip netns exec {ns} {python} -m aoeconform target mem:64M --iface {target_if} --shelf 1 --slot 1")
    print(f"remove it with: aoeconform lab down --name {lab.name}")
    return EXIT_OK


def _down(args) -> int:
    from aoeconform.lab import Lab

    Lab(args.name).down()
    print(f"lab {args.name} is down")
    return EXIT_OK


def _status(args) -> int:
    from aoeconform.lab import Lab

    lab = Lab(args.name)
    if lab.exists():
        print(f"lab {lab.name} exists: host interface {lab.host_if}, namespace {lab.netns}, target interface {lab.target_if}")
        return EXIT_OK
    print(f"lab {lab.name} does not exist; create it with `aoeconform lab up --name {lab.name}`")
    return EXIT_UNREACHABLE
