"""``aoeconform list``: the cases of suites, without sending anything."""

from __future__ import annotations

import json

from aoeconform.errors import EXIT_OK


def register(subparsers) -> None:
    from .run import SUITES_HELP, add_selection_flags

    p = subparsers.add_parser("list", help="list case ids, levels, sections and requirements (sends nothing)")
    p.add_argument("suites", nargs="*", metavar="SUITE", help=SUITES_HELP)
    add_selection_flags(p)
    p.add_argument("--json", action="store_true", help="one JSON document instead of a table")
    p.set_defaults(func=run)


def run(args) -> int:
    from .run import prepare

    args.expectations = None
    _, _, chosen, _ = prepare(args)
    if args.json:
        print(json.dumps([{"id": c.id, "level": c.level, "section": c.section, "rule": c.rule, "tags": c.tags,
                           "requires": c.requires, "requirement": c.requirement, "file": c.file, "line": c.line}
                          for c in chosen], indent=1))
        return EXIT_OK
    width = max(len(c.id) for c in chosen)
    for c in chosen:
        print(f"{c.id:<{width}}  {c.level:<6} §{c.section:<6} {c.requirement}")
    print(f"{len(chosen)} cases")
    return EXIT_OK
