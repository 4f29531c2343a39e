"""A boofuzz session against an AoE target, judged by aoeconform's oracles.

    python docs/examples/boofuzz_aoe.py eth1:7.3          # a target of yours
    python docs/examples/boofuzz_aoe.py --reference QUIRK  # the in-memory reference target

boofuzz keeps its web UI (http://localhost:26000 while it runs) and its
database (boofuzz-results/); every rule of the protocol notes a reply breaks
is logged there as a failure, e.g. "rule 8 (error-byte-without-e): ...".
Needs `pip install 'aoeconform[fuzz]'`, and root for a real interface.
"""

import sys

from boofuzz import s_get

from aoeconform.fuzz import boofuzz as aoe


def main(argv):
    if argv[:1] == ["--reference"]:
        from aoeconform.fuzz.local import ReferenceTarget

        ref = ReferenceTarget(argv[1:])
        transport, info = ref.host, ref.info
    else:
        transport, info = aoe.open_interface(argv[0])
    aoe.define_requests(info)
    session, oracle = aoe.session(info, transport, index_end=400)
    for name in aoe.REQUESTS:
        session.connect(s_get(name))
    session.fuzz()
    print("rules broken:", {kind: count for kind, count in oracle.found.items()} or "none")


if __name__ == "__main__":
    main(sys.argv[1:] or ["--reference", "error-byte-echo"])
