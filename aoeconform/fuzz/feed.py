"""Cases made ahead of time in a helper process.

Making a case (choose a seed, mutate it, encode it) costs the fuzz loop
about as much as judging its reply, and it depends on nothing but the seed,
the case's index and what was known of the target before the run
(``CaseGenerator`` reseeds per index). So a helper process makes batches of
cases ahead of the loop, and the loop only unpacks them: on a two-core
machine the loop keeps its core for sending and judging.

The helper is asked for one batch at a time, ahead of the index the loop
is at. A case not ready when the loop needs it is made in the loop, as
without a feed: the cases are the same either way, only where they are
made differs, so a slow or dead helper costs speed, never a different run.

The helper is ``python -m aoeconform.fuzz.feed`` over its standard input
and output (the generator arrives pickled; then each request is a first
index and each answer that batch), not a ``multiprocessing`` child, which
would import the parent's main script again.
"""

from __future__ import annotations

import collections
import os
import pickle
import select
import struct
import subprocess
import sys
from typing import IO, Deque, Optional, Tuple

from .mutate import Case, CaseGenerator

#: cases per batch: a batch costs the loop one read per a few milliseconds of cases
BATCH = 256
_LENGTH = struct.Struct("<I")
_INDEX = struct.Struct("<q")
_Row = Tuple[int, bytes, Tuple[str, ...], str, bool]


def _read_exactly(stream: IO[bytes], count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = stream.read(count - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def _read_message(stream: IO[bytes]) -> bytes:
    (length,) = _LENGTH.unpack(_read_exactly(stream, _LENGTH.size))
    return _read_exactly(stream, length)


def _write_message(stream: IO[bytes], payload: bytes) -> None:
    stream.write(_LENGTH.pack(len(payload)) + payload)
    stream.flush()


def serve(source: IO[bytes], sink: IO[bytes]) -> None:
    """The helper: a pickled generator, then batches for asked-for first indices until a negative one."""
    generator: CaseGenerator = pickle.loads(_read_message(source))
    while True:
        (first,) = _INDEX.unpack(_read_exactly(source, _INDEX.size))
        if first < 0:
            return
        rows = []
        for index in range(first, first + BATCH):
            case = generator.case(index)
            rows.append((case.index, case.frame, case.mutations, case.seed, case.expect_reply))
        _write_message(sink, pickle.dumps((first, rows), protocol=pickle.HIGHEST_PROTOCOL))


class CaseFeed:
    """``case(index)`` as ``generator.case(index)``, mostly made by the helper."""

    def __init__(self, generator: CaseGenerator) -> None:
        self.generator = generator
        # the package the parent runs, installed or not
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p))
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "aoeconform.fuzz.feed"], env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            close_fds=True, start_new_session=True,  # a Ctrl-C goes to the fuzzer, which closes the feed
        )
        assert self._proc.stdin is not None and self._proc.stdout is not None  # both piped above
        self._stdin: IO[bytes] = self._proc.stdin
        self._stdout: IO[bytes] = self._proc.stdout
        self._poller = select.poll()
        self._poller.register(self._stdout.fileno(), select.POLLIN)
        self._ready: Deque[_Row] = collections.deque()
        #: the first index of the batch asked for and not yet received
        self._asked: Optional[int] = None
        #: the first index not yet asked for
        self._ahead = 0
        self.made_here = 0
        self.made_ahead = 0
        self.closed = False
        try:
            _write_message(self._stdin, pickle.dumps(generator, protocol=pickle.HIGHEST_PROTOCOL))
        except OSError:
            self.close()

    def case(self, index: int) -> Case:
        ready = self._ready
        while True:
            while ready and ready[0][0] < index:
                ready.popleft()  # made too late: the loop made these itself
            if ready or self._asked is None or not self._receive():
                break
        self._ask(index)
        if ready and ready[0][0] == index:
            self.made_ahead += 1
            return Case(*ready.popleft())
        self.made_here += 1
        return self.generator.case(index)

    def _receive(self) -> bool:
        """Take the asked-for batch if it has come; False if not yet."""
        if not self._poller.poll(0):
            return False
        try:
            first, rows = pickle.loads(_read_message(self._stdout))
        except (EOFError, OSError, pickle.UnpicklingError, ValueError):
            self.close()
            return False
        self._asked = None
        self._ready.extend(rows)
        self._ahead = max(self._ahead, first + BATCH)
        return True

    def _ask(self, index: int) -> None:
        """Keep one batch asked for ahead of the loop once half of what is ready is used."""
        if self.closed or self._asked is not None:
            return
        if self._ready and self._ready[-1][0] - index >= BATCH // 2:
            return
        first = max(self._ahead, index + 1)
        try:
            self._stdin.write(_INDEX.pack(first))
            self._stdin.flush()
        except (OSError, ValueError):
            self.close()
            return
        self._asked = first
        self._ahead = first + BATCH

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self._stdin.write(_INDEX.pack(-1))
            self._stdin.close()
        except (OSError, ValueError):
            pass
        try:
            self._proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=1.0)
        self._stdout.close()


if __name__ == "__main__":
    try:
        serve(sys.stdin.buffer, sys.stdout.buffer)
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        pass
    os._exit(0)
