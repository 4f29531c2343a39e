"""boofuzz users: a boofuzz Session with aoeconform's request definitions,
connection and oracle finds a quirk of the reference target, and nothing
against the clean one. In memory, no root."""

from __future__ import annotations

import pytest

pytest.importorskip("boofuzz")

from boofuzz import s_get  # noqa: E402

from aoeconform.fuzz import boofuzz as aoe_boofuzz  # noqa: E402
from aoeconform.target.host import ThreadHost  # noqa: E402

#: enough cases to reach the Error byte, the second fuzzed field of the header
CASES = 130


class Failures:
    """A boofuzz fuzz logger that keeps what log_fail says (boofuzz's own
    loggers print or write a database; this one lets the test read it)."""

    def __init__(self):
        self.failures = []

    def log_fail(self, description=""):
        self.failures.append(description)

    def __getattr__(self, name):  # every other logger call: nothing to keep
        return lambda *args, **kwargs: None


def _fuzz(quirks, request="aoe-ata", cases=CASES):
    logger = Failures()
    with ThreadHost(quirks) as ref:
        assert aoe_boofuzz.define_requests(ref.info) == aoe_boofuzz.REQUESTS
        session, oracle = aoe_boofuzz.session(ref.info, ref.host, timeout=0.1, web_port=None, fuzz_loggers=[logger],
                                              db_filename=":memory:", index_end=cases)
        session.connect(s_get(request))
        session.fuzz()
        return session, oracle, logger


def test_a_boofuzz_session_finds_an_echoed_error_byte():
    session, oracle, logger = _fuzz(["error-byte-echo"])
    assert oracle.found["error-byte-without-e"] >= 1, dict(oracle.found)
    assert any(f.startswith("rule 8 (error-byte-without-e)") for f in logger.failures), logger.failures[:5]
    # boofuzz moves on from a field after a few failures (crash_threshold_element)
    assert session.num_cases_actually_fuzzed < CASES


def test_the_clean_target_gives_the_same_session_nothing():
    session, oracle, logger = _fuzz([])
    assert not oracle.found and not logger.failures, logger.failures[:5]
    assert session.num_cases_actually_fuzzed == CASES


def test_a_target_that_dies_is_reported_unresponsive():
    """mbz-crash: the first request with a must-be-zero flag bit kills it."""
    _, oracle, logger = _fuzz(["mbz-crash"], cases=40)
    assert oracle.found["unresponsive"] >= 1, dict(oracle.found)
    assert any(f.startswith("rule 15 (unresponsive)") for f in logger.failures)


def test_writes_stay_reads_without_a_window():
    """Fuzzed ATA opcodes never write: the connection makes writes reads."""
    with ThreadHost([]) as ref:
        conn = aoe_boofuzz.AoeConnection(ref.host, ref.info)
        aoe_boofuzz.define_requests(ref.info)
        frame = bytearray(s_get("aoe-ata").render())
        frame[27] = 0x34  # WRITE SECTORS EXT
        conn.send(bytes(frame) + bytes(512))
        assert conn.last_request[27] == 0x24
        assert conn.recv(0) and conn.replies
