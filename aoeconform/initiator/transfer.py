"""Long sequential transfers over an ``Initiator``, with the pipeline kept full.

A transfer is cut into chunks of whole frames; up to ``depth`` chunks are
in flight, and each completed chunk is replaced at once. The lookahead
matters on a lossy link: while one lost frame waits for its retransmit
timeout its chunk cannot finish, and the window keeps working on the
chunks behind it only if there are some. Read data is handed on in order.
"""

from __future__ import annotations

from collections import deque
from typing import Callable, Deque, Optional, Union

from aoeconform.wire.constants import SECTOR_SIZE

from .driver import Initiator
from .engine import IoRequest

#: frames per chunk: large enough that per-request costs vanish
FRAMES_PER_CHUNK = 64
#: chunks in flight: about a thousand frames of lookahead
DEFAULT_DEPTH = 16

#: called with the number of sectors finished so far
Progress = Callable[[int], None]


def chunk_sectors(ini: Initiator, frames: int = FRAMES_PER_CHUNK) -> int:
    """A chunk of whole frames for this target."""
    if ini.info is None:
        raise RuntimeError("call identify() before transferring")
    return ini.info.sectors_per_frame * frames


def _pump(
    ini: Initiator,
    submit: Callable[[], Optional[IoRequest]],
    deliver: Callable[[IoRequest], None],
    depth: int,
    stop: Optional[Callable[[], bool]] = None,
) -> None:
    """Keep ``depth`` requests unfinished; deliver finished ones in submission order.

    Finished requests behind an unfinished one wait (up to ``depth`` more)
    so the window has work while the head's lost frame is retransmitted.
    """
    queue: Deque[IoRequest] = deque()  # submitted, not yet delivered, in order
    unfinished = 0
    exhausted = False
    backlog = depth * 4  # finished requests held back for in-order delivery, at most
    while True:
        while not exhausted and unfinished < depth and len(queue) < backlog:
            request = submit()
            if request is None:
                exhausted = True
                break
            queue.append(request)
            unfinished += 1
        if not queue:
            return
        if not queue[0].done:
            waiting = [r for r in queue if not r.done]
            ini.wait_any(*waiting)
        unfinished = sum(1 for r in queue if not r.done)
        while queue and queue[0].done:
            deliver(queue.popleft())
            if not exhausted and stop is not None and stop():
                exhausted = True


def read_range(
    ini: Initiator,
    lba: int,
    count: int,
    sink: Callable[[bytes], object],
    *,
    chunk: Optional[int] = None,
    depth: int = DEFAULT_DEPTH,
    progress: Optional[Progress] = None,
    stop: Optional[Callable[[], bool]] = None,
) -> int:
    """Read ``count`` sectors from ``lba``, calling ``sink`` with the data in order.

    ``stop`` is asked after each chunk; once it says True no more chunks are
    submitted and those in flight are finished. Returns the sectors read.
    """
    chunk = chunk or chunk_sectors(ini)
    end = lba + count
    state = {"next": lba, "done": 0}

    def submit() -> Optional[IoRequest]:
        start = state["next"]
        if start >= end:
            return None
        n = min(chunk, end - start)
        state["next"] = start + n
        return ini.submit_read(start, n)

    def deliver(request: IoRequest) -> None:
        sink(request.result())
        state["done"] += request.count
        if progress is not None:
            progress(state["done"])

    _pump(ini, submit, deliver, depth, stop)
    return state["done"]


def write_range(
    ini: Initiator,
    lba: int,
    count: int,
    source: Callable[[int, int], Union[bytes, memoryview]],
    *,
    chunk: Optional[int] = None,
    depth: int = DEFAULT_DEPTH,
    progress: Optional[Progress] = None,
) -> int:
    """Write ``count`` sectors at ``lba``; ``source(offset, n)`` gives the data
    for ``n`` sectors starting ``offset`` sectors into the range. Returns the
    sectors written (all of them, or an exception)."""
    chunk = chunk or chunk_sectors(ini)
    state = {"offset": 0, "done": 0}

    def submit() -> Optional[IoRequest]:
        offset = state["offset"]
        if offset >= count:
            return None
        n = min(chunk, count - offset)
        data = source(offset, n)
        if len(data) != n * SECTOR_SIZE:
            raise ValueError(f"source gave {len(data)} bytes for {n} sectors at offset {offset}")
        state["offset"] = offset + n
        return ini.submit_write(lba + offset, data)

    def deliver(request: IoRequest) -> None:
        request.result()
        state["done"] += request.count
        if progress is not None:
            progress(state["done"])

    _pump(ini, submit, deliver, depth)
    return state["done"]


__all__ = ["DEFAULT_DEPTH", "FRAMES_PER_CHUNK", "chunk_sectors", "read_range", "write_range"]
