"""pytest-xdist scheduling by target: every item of one target is one work unit.

xdist's own ``--dist loadgroup`` reads ``xdist_group`` marks from node ids it
rewrites on the workers, which pytest 9.2's structured node ids no longer
allow; this scheduler reads the target from the ``[...]`` of the item's name
instead (the plugin names every item after its target when it schedules by
target). Items of no known target stay units of their own.
"""

from __future__ import annotations

from xdist.scheduler import LoadScopeScheduling


def target_of(nodeid: str, labels) -> str | None:
    """The label in ``nodeid``'s parameters (``case/id[LABEL]``, ``test_x[LABEL-3]``), longest first."""
    if not nodeid.endswith("]") or "[" not in nodeid:
        return None
    params = nodeid[nodeid.index("[", nodeid.rfind("::") + 2 if "::" in nodeid else 0) + 1:-1]
    for label in sorted(labels, key=len, reverse=True):
        if params == label or params.startswith(label + "-") or params.endswith("-" + label) or f"-{label}-" in params:
            return label
    return None


class TargetScheduling(LoadScopeScheduling):
    def __init__(self, config, log=None, labels=()):
        super().__init__(config, log)
        self.labels = list(labels)

    def _split_scope(self, nodeid: str) -> str:
        label = target_of(nodeid, self.labels)
        return f"aoe-target:{label}" if label is not None else nodeid
