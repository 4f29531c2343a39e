"""The session layer: one conversation with a target for every runner.

Snapshot and restore put the config string, the Mac Mask list and the
reservation back (on the reference target and on vblade); the restart hook
means the same for run, fuzz and replay; the adaptive timeout follows the
round trip.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from aoeconform.errors import UsageError
from aoeconform.target.host import ThreadHost
from aoeconform.session import AdaptiveTimeout, RestartFailed, Session, TargetFacts, TargetState, restart_command, requests
from aoeconform.session.link import TransportLink
from aoeconform.transport.base import Transport
from aoeconform.wire import Directive, Frame, Header, ConfigArg
from aoeconform.wire.constants import CMD_QUERY_CONFIG, DCMD_ADD, FLAG_RESPONSE

OTHER = bytes.fromhex("02aabbccddee")


def _change_everything(session: Session, facts: TargetFacts) -> None:
    assert session.request(requests.config_force_set(facts, b"changed by the test"), 2) is not None
    assert session.request(requests.mask_edit(facts, [Directive(DCMD_ADD, facts.host_mac), Directive(DCMD_ADD, OTHER)]), 2) is not None
    assert session.request(requests.reserve_force_set(facts, [facts.host_mac, OTHER]), 2) is not None


def test_restore_puts_back_config_mask_and_reservation_on_the_reference_target():
    with ThreadHost(config=b"as it was") as ref:
        session = Session(ref.host, ref.info)
        before = session.snapshot()
        assert before == TargetState(b"as it was", (), ())
        _change_everything(session, ref.info)
        changed = session.snapshot()
        assert changed.config == b"changed by the test" and set(changed.mask or ()) == {ref.info.host_mac, OTHER}
        assert set(changed.reservation or ()) == {ref.info.host_mac, OTHER}
        assert session.restore(before) == []
        assert session.snapshot() == before


def test_restore_puts_back_only_the_parts_asked_for():
    with ThreadHost(config=b"as it was") as ref:
        session = Session(ref.host, ref.info)
        before = session.snapshot()
        _change_everything(session, ref.info)
        assert session.restore(before, {"config", "reserve"}) == []
        after = session.snapshot()
        assert after.config == before.config and after.reservation == ()
        assert set(after.mask or ()) == {ref.info.host_mac, OTHER}


def test_restore_reports_a_part_the_target_does_not_take_back():
    # config-nul-truncate stores the string only up to its first NUL
    with ThreadHost(["config-nul-truncate"]) as ref:
        session = Session(ref.host, ref.info)
        problems = session.restore(TargetState(config=b"a\x00b"))
        assert problems and "config string could not be restored" in problems[0]
    with ThreadHost() as ref:
        assert Session(ref.host, ref.info).restore(TargetState(config=b"a\x00b")) == []


@pytest.mark.root
@pytest.mark.vblade
def test_restore_puts_back_config_and_reservation_on_vblade(vblade_lab):
    # not the Mac Mask list: vblade 25 aborts on a delete of a listed MAC (docs/running-against-vblade.md)
    with vblade_lab.transport() as transport:
        facts = TargetFacts(mac=vblade_lab.target_mac, shelf=vblade_lab.shelf, slot=vblade_lab.slot, host_mac=transport.mac, mtu=transport.mtu)
        session = Session(transport, facts)
        assert session.probe()
        before = session.snapshot()
        assert before.config is not None and before.reservation == () and before.mask == ()
        assert session.request(requests.config_force_set(facts, b"changed by the test"), 2) is not None
        assert session.request(requests.reserve_force_set(facts, [facts.host_mac, OTHER]), 2) is not None
        changed = session.snapshot()
        assert changed.config == b"changed by the test" and set(changed.reservation or ()) == {facts.host_mac, OTHER}
        assert session.restore(before, {"config", "reserve"}) == []
        assert session.snapshot() == before


# -- liveness and restart ------------------------------------------------------------------


def test_probe_and_restart_wait_until_the_target_answers_again():
    with ThreadHost(["crash-on-truncated"]) as ref:
        session = Session(ref.host, ref.info, restart=ref.restart)
        assert session.probe()
        # a truncated ATA argument crashes this target
        session.exchange(Header(dst=ref.info.mac, src=ref.info.host_mac, shelf=ref.info.shelf, slot=ref.info.slot).encode() + b"\x40", 0.05)
        assert not session.probe(attempts=2, timeout=0.05)
        assert session.restart() and session.restarts == 1 and session.probe()
    with ThreadHost() as ref:
        session = Session(ref.host, ref.info)
        assert not session.restart() and "no restart hook" in session.restart_error


def test_a_failed_restart_command_is_reported_not_waited_for():
    with ThreadHost() as ref:
        session = Session(ref.host, ref.info, restart=restart_command(f"{sys.executable} -c 'import sys; print(\"boom\", file=sys.stderr); sys.exit(3)'"))
        began = time.monotonic()
        assert not session.restart()
        assert time.monotonic() - began < 5
        assert session.restart_error == "--restart-cmd exited with status 3: boom"


def test_restart_command_is_a_shell_command_line(tmp_path):
    marker = tmp_path / "ran"
    restart_command(f"true && echo yes > {marker}")()
    assert marker.read_text().strip() == "yes"
    with pytest.raises(RestartFailed, match="exited with status 1"):
        restart_command("false")()
    with pytest.raises(UsageError):
        restart_command("  ")


def test_run_fuzz_and_replay_build_the_same_restart_hook():
    """--restart-cmd goes through restart_command in every subcommand (replay
    of a suite case opens its target as run does; of a finding, as fuzz does)."""
    import aoeconform.session.restart as restart_mod
    from aoeconform.cli import fuzz as cli_fuzz
    from aoeconform.scenario import endpoint as scenario_endpoint

    assert cli_fuzz.restart_command is restart_mod.restart_command
    assert scenario_endpoint.restart_command is restart_mod.restart_command


def test_run_and_fuzz_report_a_failed_restart_alike():
    """The same failing --restart-cmd reads the same in the scenario engine's
    notes and in the fuzzer's reason for stopping."""
    from aoeconform.fuzz import Fuzzer
    from aoeconform.scenario import results as R
    from aoeconform.scenario.endpoint import bundled_loopback
    from aoeconform.scenario.engine import Engine, RunOptions

    hook = restart_command("echo nope >&2; exit 4")
    expected = "--restart-cmd exited with status 4: nope"
    endpoint = bundled_loopback()
    endpoint.restart = hook
    try:
        engine = Engine(endpoint, RunOptions(timeout_floor=0.05))
        engine.probe()
        result = R.CaseResult("t/x", "r", "1", "MUST", R.PASSED)
        assert not engine._restart(result)
        assert f"restart failed: {expected}" in result.notes
    finally:
        endpoint.close()
    with ThreadHost() as ref:
        fuzzer = Fuzzer(ref.host, ref.info, restart=hook)
        assert not fuzzer.session.restart()
        assert fuzzer._not_back() == f"target did not come back after a restart ({expected})"


# -- adaptive timeouts ---------------------------------------------------------------------


def test_adaptive_timeout_grows_after_a_slow_reply():
    timing = AdaptiveTimeout(floor=0.001, ceiling=5.0, initial=1.0)
    assert timing.timeout() == 1.0
    for _ in range(20):
        timing.sample(0.001)
    quick = timing.timeout()
    assert quick < 0.05
    timing.sample(0.2)
    assert timing.timeout() > 4 * quick


class _SlowTarget(Transport):
    """Answers each Query Config after ``delay`` seconds of a fake clock."""

    def __init__(self, facts: TargetFacts, clock: list) -> None:
        self.mac, self.facts, self.clock = facts.host_mac, facts, clock
        self.delay = 0.001
        self.queue: list = []

    def send(self, frame: bytes) -> None:
        sent = Frame.decode(frame)
        h = sent.header
        reply = Frame(Header(dst=h.src, src=self.facts.mac, shelf=h.shelf, slot=h.slot, command=CMD_QUERY_CONFIG, tag=h.tag,
                             flags=FLAG_RESPONSE), ConfigArg(bufcnt=16))
        self.queue.append((self.clock[0] + self.delay, reply.encode(pad=True)))

    def recv(self, timeout):
        if not self.queue:
            self.clock[0] += timeout or 0
            return None
        due, frame = self.queue[0]
        if due > self.clock[0] + (timeout or 0):
            self.clock[0] += timeout or 0
            return None
        self.queue.pop(0)
        self.clock[0] = max(self.clock[0], due)
        return frame


def test_a_session_waits_longer_once_a_reply_was_slow():
    now = [0.0]
    facts = TargetFacts(mac=bytes.fromhex("020000000002"), shelf=1, slot=2, host_mac=bytes.fromhex("020000000001"))
    target = _SlowTarget(facts, now)
    session = Session(TransportLink(target, facts.mac, AdaptiveTimeout(floor=0.001), clock=lambda: now[0]), facts, clock=lambda: now[0])
    for _ in range(10):
        assert session.probe(attempts=1)
    quick = session.timeout()
    target.delay = 0.3
    assert session.probe(attempts=1, timeout=1.0)
    assert session.timeout() > quick and session.timeout() > 0.3


# -- requests sent back to back ----------------------------------------------------------------


class _ScriptedTarget(Transport):
    """Answers each request as ``script(tag)`` says: a list of (delay, tag of
    the reply) on a fake clock; replies go back to the request's source MAC."""

    def __init__(self, facts: TargetFacts, clock: list, script) -> None:
        self.facts, self.clock, self.script = facts, clock, script
        self.queue: list = []

    def send(self, frame: bytes) -> None:
        h = Frame.decode(frame).header
        for delay, tag in self.script(h.tag):
            reply = Frame(Header(dst=h.src, src=self.facts.mac, shelf=h.shelf, slot=h.slot, command=CMD_QUERY_CONFIG, tag=tag,
                                 flags=FLAG_RESPONSE), ConfigArg(bufcnt=16))
            self.queue.append((self.clock[0] + delay, reply.encode(pad=True)))
        self.queue.sort(key=lambda item: item[0])

    def recv(self, timeout):
        due = self.queue[0][0] if self.queue else None
        if due is None or due > self.clock[0] + (timeout or 0):
            self.clock[0] += timeout or 0
            return None
        self.clock[0] = max(self.clock[0], due)
        return self.queue.pop(0)[1]


def _burst_session(script):
    now = [0.0]
    facts = TargetFacts(mac=bytes.fromhex("020000000002"), shelf=1, slot=2, host_mac=bytes.fromhex("020000000001"))
    session = Session(_ScriptedTarget(facts, now, script), facts, clock=lambda: now[0])
    return session, facts, now


def _tag(frame: bytes) -> int:
    return int.from_bytes(frame[20:24], "big")


def test_a_burst_keeps_a_duplicate_reply_with_its_request_and_hands_back_strays():
    # tag 1 is answered twice, tag 2 once; tag 9 answers nothing sent (a late reply to something earlier)
    script = {1: [(0.001, 1), (0.002, 1), (0.003, 9)], 2: [(0.004, 2)]}
    session, facts, _ = _burst_session(lambda tag: script.get(tag, []))
    frames = [requests.config_read(facts, tag).encode(pad=True) for tag in (1, 2)]
    replies, others = session.burst(frames, wait=1.0)
    assert [[_tag(r) for r in got] for got in replies] == [[1, 1], [2]]
    assert [_tag(r) for r in others] == [9]


def test_a_burst_gives_a_reply_to_the_requester_it_is_addressed_to():
    # the same tag from our MAC and a second one, answered in reverse order
    session, facts, _ = _burst_session(lambda tag: [(0.001, tag)])
    second = requests.config_read(facts, 5, OTHER).encode(pad=True)
    ours = requests.config_read(facts, 5).encode(pad=True)
    replies, others = session.burst([ours, second], wait=1.0)
    assert [got[0][0:6] for got in replies] == [facts.host_mac, OTHER]
    assert others == []


def test_a_burst_waits_at_most_its_timeout_for_a_silent_request():
    session, facts, now = _burst_session(lambda tag: [] if tag == 2 else [(0.001, tag)])
    frames = [requests.config_read(facts, tag).encode(pad=True) for tag in (1, 2, 3)]
    replies, others = session.burst(frames, wait=0.5)
    assert [len(got) for got in replies] == [1, 0, 1] and others == []
    assert 0.5 <= now[0] < 0.6
    # all answered: it returns at the last reply, not at the timeout
    started = now[0]
    replies, _ = session.burst([frames[0], frames[2]], wait=0.5)
    assert [len(got) for got in replies] == [1, 1] and now[0] - started < 0.01
