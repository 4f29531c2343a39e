"""The fuzzer against the reference target in memory: no root, no network."""

from __future__ import annotations

import json
import os

import pytest

from aoeconform.cli import main
from aoeconform.fuzz import Fuzzer, WritePolicy, load
from aoeconform.fuzz.engine import replay_finding
from aoeconform.fuzz.mutate import DESTRUCTIVE_OPCODES, CaseGenerator
from aoeconform.fuzz.seeds import generated_seeds, load_corpus, default_corpus_dir
from aoeconform.target.host import ThreadHost
from aoeconform.wire.constants import AFLAG_A, ATA_HEADER_END

SEED = 7


def test_clean_target_gives_no_findings(tmp_path):
    with ThreadHost() as ref:
        fuzzer = Fuzzer(ref.host, ref.info, seed=SEED, restart=ref.restart, out_dir=str(tmp_path), health_every=50)
        result = fuzzer.run(cases=600)
    assert result.cases == 600
    assert result.replies > 300
    assert result.health_checks >= 600 // 50
    assert result.findings == [], [f.summary() for f in result.findings]
    assert os.listdir(tmp_path) == []


def test_crash_on_truncated_is_found_saved_and_shrunk(tmp_path):
    with ThreadHost(["crash-on-truncated"]) as ref:
        fuzzer = Fuzzer(ref.host, ref.info, seed=SEED, restart=ref.restart, out_dir=str(tmp_path), health_every=20)
        result = fuzzer.run(cases=300)
        hangs = [f for f in result.findings if f.kind == "unresponsive"]
        assert hangs, f"not found in 300 cases: {result.summary()}"
        finding = hangs[0]
        # saved under a name that says what and which seed, with a pcap beside it
        assert finding.name.startswith("unresponsive-") and finding.name.endswith(f"-seed{SEED}")
        names = set(os.listdir(tmp_path))
        for suffix in (".json", ".pcap", ".min.pcap"):
            assert finding.name + suffix in names
        data = json.loads((tmp_path / f"{finding.name}.json").read_text())
        assert data["seed"] == SEED and data["kind"] == "unresponsive" and data["frames"]
        # shrunk to one frame no longer than the shortest truncated ATA request
        assert finding.reproduced is True
        assert len(finding.shrunk) == 1
        assert len(finding.shrunk[0]) < ATA_HEADER_END
        # and the saved reproducer still makes the target stop answering
        saved = load(str(tmp_path / f"{finding.name}.json"))
        ref.restart()
        assert replay_finding(ref.host, ref.info, saved, restart=ref.restart)
        ref.restart()
        # the harness went on fuzzing after the hang
        assert result.cases == 300 and not result.stopped_early


def test_tag_bit31_cleared_is_found_and_shrunk(tmp_path):
    with ThreadHost(["tag-bit31-cleared"]) as ref:
        fuzzer = Fuzzer(ref.host, ref.info, seed=SEED, restart=ref.restart, out_dir=str(tmp_path))
        result = fuzzer.run(cases=400)
        found = [f for f in result.findings if f.kind == "tag-not-echoed"]
        assert found, result.summary()
        finding = found[0]
        assert finding.reproduced and finding.shrunk
        assert finding.shrunk[-1][20] & 0x80  # bit 31 of the tag survives shrinking
        assert replay_finding(ref.host, ref.info, finding)


def test_tag_bit31_cleared_is_one_finding_not_collisions(tmp_path):
    """Replies whose tag lost bit 31 land on the tags of other cases (0 and
    0x80000000 are both boundary values): they are the one defect, rule 4,
    not also second replies, answers to silent requests or missing replies."""
    with ThreadHost(["tag-bit31-cleared"]) as ref:
        fuzzer = Fuzzer(ref.host, ref.info, seed=2, restart=ref.restart, out_dir=str(tmp_path))
        result = fuzzer.run(cases=3000)
    assert [(f.kind, f.rule) for f in result.findings] == [("tag-not-echoed", 4)], [f.summary() for f in result.findings]
    assert result.findings[0].count > 50


def test_without_restart_hook_a_hang_ends_the_run(tmp_path):
    with ThreadHost(["crash-on-truncated"]) as ref:
        fuzzer = Fuzzer(ref.host, ref.info, seed=SEED, out_dir=str(tmp_path), health_every=20)
        result = fuzzer.run(cases=300)
    assert [f.kind for f in result.findings] == ["unresponsive"]
    assert "restart" in result.stopped_early
    assert result.findings[0].note


def test_same_seed_same_cases():
    with ThreadHost() as ref:
        info = ref.info
    seeds = generated_seeds() + load_corpus(default_corpus_dir())
    first = [CaseGenerator(SEED, seeds, info).case(i) for i in range(300)]
    again = [CaseGenerator(SEED, seeds, info).case(i) for i in range(300)]
    other = [CaseGenerator(SEED + 1, seeds, info).case(i) for i in range(300)]
    assert first == again
    assert [c.frame for c in first] != [c.frame for c in other]
    # a case can be rebuilt from its index alone
    assert CaseGenerator(SEED, seeds, info).case(123) == first[123]
    # and the cases are varied: many mutation kinds, lengths and commands
    assert len({m for c in first for m in c.mutations}) > 20
    assert len({len(c.frame) for c in first}) > 15


def test_no_writes_unless_allowed_and_then_inside_the_window():
    with ThreadHost() as ref:
        info = ref.info
    seeds = generated_seeds()
    for i in range(2000):
        frame = CaseGenerator(SEED, seeds, info).case(i).frame
        if len(frame) >= 28 and frame[19] == 0:
            assert frame[27] not in DESTRUCTIVE_OPCODES, i
    policy = WritePolicy(True, 1000, 16)
    writes = 0
    for i in range(2000):
        frame = CaseGenerator(SEED, seeds, info, policy).case(i).frame
        if len(frame) >= 36 and frame[19] == 0 and frame[27] in DESTRUCTIVE_OPCODES:
            assert frame[27] in (0x30, 0x34)
            lba, scnt = int.from_bytes(frame[28:34], "little"), frame[26]
            assert 1 <= scnt and 1000 <= lba and lba + scnt <= 1016, (i, lba, scnt)
            writes += 1
    assert writes > 20


def test_cli_missing_interface_exits_2_with_one_line(capsys):
    status = main(["fuzz", "--target", "aoecnosuch0:1.2", "--cases", "5"])
    err = capsys.readouterr().err
    assert status == 2
    assert len(err.strip().splitlines()) == 1 and "aoecnosuch0" in err


def test_cli_in_memory_with_quirk_reports_and_exits_1(tmp_path, capsys):
    status = main(["fuzz", "--in-memory", "--quirk", "crash-on-truncated", "--cases", "200", "--seed", "3",
                   "--health-every", "20", "--out", str(tmp_path), "--quiet"])
    out = capsys.readouterr().out
    assert status == 1
    assert "seed 3" in out and "unresponsive" in out
    assert any(name.endswith("-seed3.json") for name in os.listdir(tmp_path))


def test_cli_usage_errors_exit_2(capsys):
    assert main(["fuzz", "--cases", "5"]) == 2
    assert main(["fuzz", "--in-memory", "--quirk", "no-such-quirk"]) == 2
    assert main(["fuzz", "--in-memory", "--lba-window", "1:2"]) == 2


def _clean_run(tmp_path, cases):
    out = tmp_path / "out"
    status = main(["fuzz", "--in-memory", "--cases", str(cases), "--allow-write", "--seed", "1", "--out", str(out), "--quiet"])
    with open(out / "fuzz.json") as f:
        run = json.load(f)
    return status, run


def test_clean_target_with_writes_gives_no_findings(tmp_path):
    status, run = _clean_run(tmp_path, 5000)
    assert (status, run["findings"], run["cases"]) == (0, [], 5000)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_clean_target_100000_cases_give_no_findings(tmp_path):
    status, run = _clean_run(tmp_path, 100_000)
    assert (status, run["findings"], run["cases"]) == (0, [], 100_000)


@pytest.mark.parametrize("quirk, kind", [("duplicate-request-dropped", "duplicate-dropped"),
                                         ("bufcnt-overstated", "bufcnt-not-honoured")])
def test_burst_findings_replay_back_to_back(tmp_path, quirk, kind):
    """A finding of the buffer-count burst keeps the requests sent back to back
    and replays them so: it fires again against the quirk, not against the
    clean target (one at a time, every request would be answered)."""
    policy = None
    with ThreadHost([quirk]) as ref:
        policy = WritePolicy.for_target(True, None, ref.info.capacity)
        fuzzer = Fuzzer(ref.host, ref.info, seed=SEED, policy=policy, restart=ref.restart, out_dir=str(tmp_path), health_every=20)
        result = fuzzer.run(cases=400)
        found = [f for f in result.findings if f.kind == kind]
        assert found, result.summary()
        saved = load(str(tmp_path / f"{found[0].name}.json"))
        assert len(saved.frames) >= 2
        ref.restart()
        assert replay_finding(ref.host, ref.info, saved, restart=ref.restart)
    with ThreadHost() as clean:
        assert not replay_finding(clean.host, clean.info, saved, restart=clean.restart)


@pytest.mark.parametrize("quirk, rules, together", [("torn-overlapping-writes", (20,), 2),
                                                    ("config-torn-set", (44,), 2),
                                                    # charged to rule 22 while a late A=1 write and a lost write look alike
                                                    ("async-write-applied-late", (22, 33), 1)])
def test_concurrent_check_findings_replay(tmp_path, quirk, rules, together):
    """The periodic checks of what is in flight together: two overlapping
    writes in a burst (rule 20), two MACs' config sets back to back (44), an
    A=1 write overwritten at once (33). Their findings keep every request the
    verdict rests on, those that went out back to back as one step, and fire
    again on replay against the quirk, not against the clean target."""
    with ThreadHost([quirk]) as ref:
        policy = WritePolicy.for_target(True, None, ref.info.capacity)
        fuzzer = Fuzzer(ref.host, ref.info, seed=SEED, policy=policy, restart=ref.restart, out_dir=str(tmp_path), health_every=20)
        result = fuzzer.run(cases=400)
        found = [f for f in result.findings if f.rule in rules]
        assert found, result.summary()
        assert found[0].reproduced is True, found[0].note
        saved = load(str(tmp_path / f"{found[0].name}.json"))
        assert max(saved.steps or [1]) == together
        if quirk == "async-write-applied-late":
            assert any(len(f) > ATA_HEADER_END and f[24] & AFLAG_A for f in saved.frames), "the A=1 write is kept"
        ref.restart()
        assert replay_finding(ref.host, ref.info, saved, restart=ref.restart)
    with ThreadHost() as clean:
        assert not replay_finding(clean.host, clean.info, saved, restart=clean.restart)


def test_a_stop_is_one_finding_not_silences_charged_to_other_rules():
    """Cases in flight when the target stops go unanswered, and so does the
    fence after them: their silence is the stop's, not a finding of their own
    rule. (With seed 1 a READ from the second MAC under a reservation was
    sent just after a truncated frame stopped the target, and its silence
    was charged to rule 57 as a finding that no replay could show.)"""
    with ThreadHost(["crash-on-truncated"]) as ref:
        policy = WritePolicy.for_target(True, None, ref.info.capacity)
        fuzzer = Fuzzer(ref.host, ref.info, seed=1, policy=policy, restart=ref.restart, shrink=False,
                        patience=1.0, max_findings=10)
        result = fuzzer.run(cases=200)
    assert result.restarts >= 3  # the target stopped several times with cases in flight
    assert [f.kind for f in result.findings] == ["unresponsive"], [f.signature for f in result.findings]
