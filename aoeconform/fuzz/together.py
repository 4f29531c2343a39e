"""Judging requests that were in flight together.

Some of the engine's periodic checks send requests back to back: a Buffer
Count burst with two writes to the same sectors (rules 19, 20), two config
sets from two MACs (rule 44). Their findings keep those requests as one step
(``Finding.steps``) and a replay sends them back to back again. The engine
and the replay judge them alike, here: the model reads the replies of
requests whose order at the target is not known only where the order does
not matter.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

from aoeconform.wire.constants import CCMD_FORCE_SET, CCMD_SET, CMD_QUERY_CONFIG, CONFIG_HEADER_END, FLAG_ERROR

from .model import TargetModel
from .oracle import Anomaly


def step_groups(frames: Sequence[bytes], steps: Optional[Sequence[int]]) -> List[List[bytes]]:
    """``frames`` cut into the groups that go out back to back (``steps``:
    their sizes; None: each alone). Frames beyond the steps go alone."""
    groups: List[List[bytes]] = []
    position = 0
    for size in steps or ():
        if size > 0 and position < len(frames):
            groups.append(list(frames[position:position + size]))
            position += size
    return groups + [[frame] for frame in frames[position:]]


def together(steps: Optional[Sequence[int]]) -> bool:
    """Whether a finding's steps send more than one frame back to back."""
    return bool(steps) and max(steps or (1,)) > 1


def is_config_set(frame: bytes) -> bool:
    """A Query Config set or force set: two at once race for the config string."""
    return len(frame) >= CONFIG_HEADER_END and frame[19] == CMD_QUERY_CONFIG and frame[29] & 0x0F in (CCMD_SET, CCMD_FORCE_SET)


def step_together(model: TargetModel, frames: Sequence[bytes], replies: Sequence[Sequence[bytes]]) -> List[List[Anomaly]]:
    """The model's verdicts on ``frames``, sent back to back, one list per
    frame. Each is stepped in the order sent, but for config sets: which of
    them the target took first is not known, so the model does not read
    their replies and forgets the string (a later read says which won,
    ``contended_sets``). The writes may have landed in either order, each
    sector one of them whole (rule 20): once all are stepped, each write
    widens the sectors it wrote."""
    found: List[List[Anomaly]] = []
    sets = [is_config_set(f) for f in frames]
    for frame, got, is_set in zip(frames, replies, sets):
        found.append([] if is_set else model.step(frame, got, answered_in_time=bool(got)))
    if any(sets):
        model.admin.config = None
    for frame, got in zip(frames, replies):
        model.overlapped(frame, got)
    return found


def _string(frame: bytes) -> bytes:
    return bytes(frame[CONFIG_HEADER_END:CONFIG_HEADER_END + int.from_bytes(frame[30:32], "big")])


def contended_sets(sets: Sequence[bytes], replies: Sequence[Optional[bytes]], read: bytes) -> Optional[Anomaly]:
    """Config sets of different strings sent back to back on an empty string
    (``replies``: the first reply to each, None if unanswered), then a read
    (``read``, its reply): exactly one may win, and the string is then the
    winner's whole (rule 44). None when that holds or cannot be told."""
    if None in replies or len(read) < CONFIG_HEADER_END:
        return None
    won = [i for i, reply in enumerate(replies) if reply is not None and not reply[14] & FLAG_ERROR]
    string = _string(read)
    strings = [_string(s) for s in sets]
    if len(won) == 1 and string == strings[won[0]]:
        return None
    return Anomaly("config-sets-mixed", f"sets {' and '.join(repr(s) for s in strings)} back to back: "
                                        f"{len(won)} succeeded, the string is now {string!r}")
