"""Cases made ahead in a helper process (``aoeconform.fuzz.feed``) are the
cases the loop would have made itself, however far behind or ahead the
helper is, and a helper that dies costs speed, not a different run."""

from __future__ import annotations

import time

import pytest

from aoeconform.fuzz import Fuzzer, WritePolicy
from aoeconform.fuzz.feed import BATCH, CaseFeed
from aoeconform.fuzz.mutate import CaseGenerator
from aoeconform.fuzz.seeds import generated_seeds
from aoeconform.target.host import ThreadHost

SEED = 11


def _generator() -> CaseGenerator:
    with ThreadHost() as ref:
        info = ref.info
    return CaseGenerator(SEED, generated_seeds(), info, WritePolicy(True, 64, 32))


def _until_ahead(feed: CaseFeed, timeout: float = 20.0) -> int:
    """Ask for cases slowly until the helper has delivered one (it starts a
    Python of its own); the next index."""
    end = time.monotonic() + timeout
    index = 0
    while feed.made_ahead == 0 and time.monotonic() < end:
        feed.case(index)
        index += 1
        time.sleep(0.01)
    return index


@pytest.fixture
def fed():
    """(a feed that has delivered a batch, a generator of its own to compare with, the next index)."""
    feed = CaseFeed(_generator())
    try:
        start = _until_ahead(feed)
        assert feed.made_ahead > 0, "the helper never delivered a batch"
        yield feed, _generator(), start
    finally:
        feed.close()


def test_the_feed_gives_the_generator_s_cases_in_order_and_after_jumps(fed):
    feed, local, start = fed
    indices = list(range(start, 3 * BATCH)) + list(range(5 * BATCH + 7, 6 * BATCH)) + [10 * BATCH + 3]
    for index in indices:
        assert feed.case(index) == local.case(index), index
    assert feed.made_ahead > BATCH  # most came from the helper, not the loop
    feed.close()
    assert feed.closed and feed._proc.returncode is not None


def test_a_dead_helper_leaves_the_loop_making_the_same_cases(fed):
    feed, local, start = fed
    feed._proc.kill()
    feed._proc.wait()
    before = feed.made_here
    for index in range(start, 4 * BATCH):
        assert feed.case(index) == local.case(index), index
    assert feed.made_here > before  # what the helper can no longer make


def _findings(feed: bool) -> list:
    with ThreadHost(["stale-read-buffer", "ver-unchecked"]) as ref:
        fuzzer = Fuzzer(ref.host, ref.info, seed=SEED, restart=ref.restart, out_dir=None, shrink=False,
                        policy=WritePolicy(True, 64, 32), patience=1.0, feed=feed)
        result = fuzzer.run(cases=3000)
    assert (result.made_ahead > 0) == feed  # the helper made part of the run's cases, or none
    return sorted((f.signature, f.count, f.case_index) for f in result.findings)


def test_a_run_with_the_feed_finds_what_a_run_without_it_finds():
    with_feed = _findings(True)
    assert with_feed, "the quirks were not found"
    assert with_feed == _findings(False)
