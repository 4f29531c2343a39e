"""The fuzzer's model of the config string, the Mac Mask list and the
reservation (fuzz.model_admin): each oracle fires on the quirk that breaks
its rule, and stays silent on the clean reference target and on every
reading a rule accepts (quirks.READINGS), for the scripted requests and for
mutated fuzz cases from both MACs."""

from __future__ import annotations

import pytest

from aoeconform.fuzz.admin_requests import AdminRequests, admin_script
from aoeconform.fuzz.context import WritePolicy, second_mac
from aoeconform.session import TargetFacts
from aoeconform.target.host import HOST_MAC, TARGET_MAC, ThreadHost
from aoeconform.fuzz.model_admin import AdminModel, changes_state
from aoeconform.fuzz.mutate import CaseGenerator
from aoeconform.fuzz.oracle import KINDS
from aoeconform.fuzz.seeds import generated_seeds
from aoeconform.target.image import MemoryImage
from aoeconform.target.logic import Target
from aoeconform.target.quirks import QUIRKS, READINGS
from aoeconform.wire.constants import CCMD_FORCE_SET, CCMD_READ, CCMD_SET, CCMD_TEST, DCMD_ADD, RCMD_FORCE_SET, RCMD_READ, RCMD_SET

#: quirk -> the anomaly kind that must report it
FIRES = {
    "config-test-mismatch": "config-test-answered",
    "config-prefix-mismatch": "config-prefix-answered",
    "config-prefix-empty-silent": "config-prefix-unanswered",
    "config-set-overwrites": "config-set-overwrote",
    "config-stale-bytes": "config-length-unchecked",
    "config-nul-truncate": "config-string-mangled",
    "config-text-only": "config-string-mangled",
    "config-version-nibble-required": "config-version-required",
    "config-read-echoes-request": "config-read-string",
    "config-force-as-set": "config-force-refused",
    "config-ccmd-unchecked": "config-ccmd-accepted",
    "trailing-bytes-rejected": "trailing-bytes-refused",
    "ver-unchecked": "side-effect-under-ver",
    "mask-not-enforced": "mask-not-enforced",
    "mask-wrong-index": "mask-wrong-index",
    "mask-dircount-overstated": "mask-dircount",
    "mask-duplicate-entries": "mask-duplicate",
    "mask-mcmd-unchecked": "mask-mcmd-accepted",
    "mask-dircount-unchecked": "mask-dircount-unchecked",
    "reserve-not-enforced": "reserve-not-enforced",
    "reserve-set-steals": "reserve-set-stole",
    "reserve-nmacs-overstated": "reserve-list",
    "reserve-set-refuses-holder": "reserve-set-refused",
    "reserve-force-refused": "reserve-force-refused",
    "reserve-release-ignored": "reserve-release-ignored",
    "reserve-locks-out-holder": "reserve-holder-refused",
    "reserve-silent-to-others": "reserve-silent",
    "reserve-nmacs-unchecked": "reserve-nmacs-unchecked",
    "reserve-forgotten-on-config-set": "reserve-list",
}


def _target(quirks=()):
    target = Target(MemoryImage(1 << 20), shelf=1, slot=2, mac=TARGET_MAC, quirks=quirks)
    info = TargetFacts(mac=TARGET_MAC, shelf=1, slot=2, host_mac=HOST_MAC, sector_count=target.max_sectors,
                      capacity=target.capacity, second_mac=second_mac(HOST_MAC))
    return target, info


def _drive(target, model, frames):
    """Each frame through the target and the model, in order: the anomalies."""
    found = []
    for frame in frames:
        if target.dead:
            break
        replies = [r for r in target.handle(frame) if r[20:24] == frame[20:24]]
        found += model.step(frame, replies)
    return found


def test_every_kind_names_a_rule_of_the_notes():
    for kind in set(FIRES.values()):
        rule, text = KINDS[kind]
        assert 1 <= rule <= 58 and text


@pytest.mark.parametrize("reading", [None, *READINGS])
def test_script_silent_on_clean_target_and_readings(reading):
    target, info = _target([reading] if reading else [])
    model = AdminModel(info, config=b"", mask=[], reservation=[])
    assert _drive(target, model, admin_script(info, lba=10)) == []
    # the script leaves the target as it found it, and the model knows it
    assert (target.config, target.mask, target.reservation) == (b"", [], [])
    assert (model.config, model.mask, model.reservation) == (b"", [], [])


@pytest.mark.parametrize("quirk", sorted(FIRES))
def test_script_fires_on_quirk(quirk):
    target, info = _target([quirk])
    model = AdminModel(info, config=b"", mask=[], reservation=[])
    kinds = {a.kind for a in _drive(target, model, admin_script(info, lba=10))}
    assert FIRES[quirk] in kinds
    assert quirk in QUIRKS and KINDS[FIRES[quirk]][0] in QUIRKS[quirk].rules or FIRES[quirk] == "trailing-bytes-refused"


def test_unknown_state_is_learnt_not_judged():
    """A target whose string, list and reservation the model does not know:
    nothing is judged until a reply tells, then everything is."""
    target, info = _target(["config-set-overwrites"])
    target.config = b"preset"
    r = AdminRequests(info)
    model = AdminModel(info)
    assert _drive(target, model, [r.config(CCMD_SET, b"mine"), r.reserve(RCMD_SET, [info.second_mac], src=info.second_mac)]) == []
    assert model.config == b"mine"  # a set answered with success while unknown teaches the new string
    assert model.reservation == [info.second_mac]
    assert _drive(target, model, [r.config_read()]) == [] and model.config == b"mine"
    assert [a.kind for a in _drive(target, model, [r.config(CCMD_SET, b"other")])] == ["config-set-overwrote"]


def test_silence_is_judged_only_when_settled():
    target, info = _target(["config-prefix-empty-silent"])
    r = AdminRequests(info)
    model = AdminModel(info, config=b"", mask=[], reservation=[])
    prefix = r.config(2, b"")
    assert model.step(prefix, [], answered_in_time=False) == []
    assert [a.kind for a in model.step(prefix, [])] == ["config-prefix-unanswered"]
    # the second MAC's silence with the list unknown may be the list's doing
    model.mask = None
    assert model.step(r.config_read(src=info.second_mac), []) == []


def test_masked_out_answers_and_unknown_list():
    target, info = _target(["mask-not-enforced"])
    r = AdminRequests(info)
    model = AdminModel(info, config=b"", mask=[], reservation=[])
    assert _drive(target, model, [r.mask_edit([(DCMD_ADD, info.host_mac)])]) == [] and model.mask == [info.host_mac]
    assert model.masked_out(r.read(0, src=info.second_mac)) and not model.masked_out(r.read(0))
    assert [a.kind for a in _drive(target, model, [r.read(0, src=info.second_mac)])] == ["mask-not-enforced"]
    model.forget()
    assert model.masked_out(r.read(0)) is None and model.may_refuse_reserved(r.read(0))


def test_changes_state():
    _, info = _target()
    r = AdminRequests(info)
    changing = [r.config(CCMD_SET, b"x"), r.config(CCMD_FORCE_SET), r.config(9), r.mask_edit([]), r.reserve(RCMD_SET),
                r.reserve(RCMD_FORCE_SET), r.reserve(7), r.config_read()[:28]]
    reading = [r.config_read(), r.config(CCMD_TEST, b"x"), r.mask_read(), r.reserve(RCMD_READ), r.read(0), r.write(0, b"x")]
    assert all(changes_state(f) for f in changing)
    assert not any(changes_state(f) for f in reading)
    assert r.config(CCMD_READ)[29] & 0xF == CCMD_READ


def _fuzz(quirks, cases, seed=3):
    """Mutated fuzz cases (a tenth of them from the second MAC) through the target and the model."""
    target, info = _target(quirks)
    policy = WritePolicy.for_target(True, None, info.capacity)
    generator = CaseGenerator(seed, generated_seeds(), info, policy)
    model = AdminModel(info, config=b"", mask=[], reservation=[])
    found = _drive(target, model, [generator.case(i).frame for i in range(cases)])
    return found, generator


@pytest.mark.parametrize("reading", [None, *READINGS])
def test_fuzz_cases_silent_on_clean_target_and_readings(reading):
    found, generator = _fuzz([reading] if reading else [], 4000)
    assert found == []
    sources = {generator.case(i).frame[6:12] for i in range(200)}
    assert sources == {HOST_MAC, second_mac(HOST_MAC)}


@pytest.mark.parametrize("quirk", ["config-test-mismatch", "mask-not-enforced", "reserve-not-enforced", "reserve-set-steals",
                                   "reserve-locks-out-holder", "mask-wrong-index", "config-force-as-set"])
def test_fuzz_cases_find_quirk(quirk):
    found, _ = _fuzz([quirk], 4000)
    assert FIRES[quirk] in {a.kind for a in found}


def test_reference_target_in_memory_answers_the_second_mac():
    """The in-memory host endpoint also receives the replies to the second
    MAC (promiscuous, as a raw socket on a veth is), so the fuzzer can speak from it."""
    with ThreadHost() as ref:
        info = ref.info
        assert info.second_mac and info.second_mac != info.host_mac
        frame = AdminRequests(info).config_read(src=info.second_mac)
        ref.host.send(frame)
        reply = ref.host.recv(2.0)
        while reply is not None and reply[20:24] != frame[20:24]:
            reply = ref.host.recv(2.0)  # the start-up advertisement comes first
        assert reply is not None and reply[0:6] == info.second_mac


@pytest.mark.parametrize("quirk", ["config-test-mismatch", "config-set-overwrites", "mask-not-enforced", "mask-wrong-index",
                                   "reserve-locks-out-holder", "reserve-not-enforced", "reserve-silent-to-others"])
def test_fuzzer_finds_quirk_in_memory(quirk):
    """The whole fuzzer (engine, fence, model) against the in-memory target:
    the oracle named for the quirk's rule is the one that reports it."""
    from aoeconform.fuzz.selftest import fuzz_quirk

    result = fuzz_quirk(quirk, seconds=20)
    assert result.found, result.as_dict()
    assert result.kind == FIRES[quirk] and result.rule in QUIRKS[quirk].rules, result.as_dict()


@pytest.mark.parametrize("quirk", [None, "config-torn-set"])
def test_two_force_sets_back_to_back_are_never_mixed(quirk):
    """Rule 44: two sets in one burst (from two MACs) leave one string whole."""
    target, info = _target([quirk] if quirk else [])
    r = AdminRequests(info)
    model = AdminModel(info, config=b"", mask=[], reservation=[])
    burst = [r.config(CCMD_FORCE_SET, b"first, the longer"), r.config(CCMD_FORCE_SET, b"second", src=info.second_mac)]
    found = []
    for index, frame in enumerate(burst):
        found += model.step(frame, [x for x in target.handle(frame, index) if x[20:24] == frame[20:24]])
    assert [a.kind for a in found] == (["config-sets-mixed"] if quirk else [])
    assert KINDS["config-sets-mixed"][0] in QUIRKS["config-torn-set"].rules


def _responded(frame: bytes) -> bytes:
    """``frame`` with the R flag set: a response, which a target must ignore (rule 2)."""
    return frame[:14] + bytes((frame[14] | 0x08,)) + frame[15:]


@pytest.mark.parametrize("quirk,ignored", [
    ("answers-responses", _responded),
    ("any-ethertype", lambda f: f[:12] + b"\x08\x00" + f[14:]),
    ("wrong-slot", lambda f: f[:18] + b"\x03" + f[19:]),
])
@pytest.mark.parametrize("attributed", [True, False])
def test_an_ignored_request_answered_anyway_is_forgotten(quirk, ignored, attributed):
    """A request a target must ignore (R set, another EtherType, another slot)
    that the target acted on: what it may have changed is unknown, whether
    its reply was read as its own or not (a reply with a tag another case
    shares), so the read after it is no second, wrongly charged finding."""
    target, info = _target([quirk])
    r = AdminRequests(info)
    model = AdminModel(info, config=b"", mask=[], reservation=[])
    assert _drive(target, model, [r.config(CCMD_SET, b"before"), r.reserve(RCMD_SET, [info.host_mac])]) == []
    for frame in (ignored(r.config(CCMD_FORCE_SET, b"after")), ignored(r.reserve(RCMD_FORCE_SET, []))):
        replies = target.handle(frame)
        assert replies  # the quirk acts on it
        model.step(frame, replies if attributed else [], answered_in_time=attributed)
    assert model.config is None and model.reservation is None
    assert _drive(target, model, [r.config_read(), r.reserve(RCMD_SET, [], src=info.second_mac)]) == []


def test_failing_edit_under_another_ver_teaches_no_list():
    """A Mac Mask edit under Ver 2 whose directive fails: the reply's Dir Count
    is the failing directive's index, not the list's size."""
    target, info = _target(["ver-unchecked"])
    r = AdminRequests(info)
    model = AdminModel(info, config=b"", mask=[], reservation=[])
    assert _drive(target, model, [r.mask_edit([(DCMD_ADD, info.host_mac)])]) == [] and model.mask == [info.host_mac]
    assert _drive(target, model, [r.mask_edit([(0xFF, info.second_mac)], ver=2)]) == []
    assert model.mask is None
    assert _drive(target, model, [r.read(0, src=info.second_mac), r.mask_read()]) == []


def test_a_read_that_echoed_teaches_no_string():
    """A target whose config read answered with the request's own string
    (rule 36): its reads that hold the request's string teach nothing, so the
    string it really holds gives no second finding (an empty set refused, a
    matching test unanswered)."""
    target, info = _target(["config-read-echoes-request"])
    r = AdminRequests(info)
    model = AdminModel(info, config=b"", mask=[], reservation=[])
    assert _drive(target, model, [r.config(CCMD_SET, b"held")]) == []
    assert [a.kind for a in _drive(target, model, [r.config_read()])] == ["config-read-string"]
    assert model.config is None
    assert _drive(target, model, [r.config_read(), r.config(CCMD_SET, b"other"), r.config(CCMD_TEST, b""), r.config_read(b"x")]) == []
    assert model.config is None


def test_masked_out_sender_answered_late_is_forgotten():
    """A masked-out sender's config set whose reply was not read as its own:
    the target may have acted on it."""
    target, info = _target(["mask-not-enforced"])
    r = AdminRequests(info)
    model = AdminModel(info, config=b"", mask=[info.host_mac], reservation=[])
    frame = r.config(CCMD_FORCE_SET, b"theirs", src=info.second_mac)
    assert target.handle(frame) and model.step(frame, [], answered_in_time=False) == []
    assert model.config is None
    assert _drive(target, model, [r.config_read()]) == []


def test_replay_setup_sets_the_reservation_before_the_config_string():
    """reserve-forgotten-on-config-set: a finding's replay setup must set the
    string after the reservation, or the defect it rests on never shows."""
    from aoeconform.fuzz.model import TargetModel

    _, info = _target()
    setup = TargetModel(info, WritePolicy())._setup(b"string", [info.host_mac], [info.host_mac])
    assert [f[19] for f in setup] == [3, 1, 2]
    for quirks, kinds in (([], []), (["reserve-forgotten-on-config-set"], ["reserve-list"])):
        target, _ = _target(quirks)
        model = AdminModel(info, config=b"", mask=[], reservation=[])
        r = AdminRequests(info)
        assert [a.kind for a in _drive(target, model, list(setup) + [r.reserve(RCMD_READ)])] == kinds


def test_a_list_that_named_a_mac_twice_no_longer_says_who_is_let_in():
    """mask-duplicate-entries: after a delete of the MAC it listed twice, the
    target still lists it once but enforces nothing: a consequence of the
    duplicate (rule 48), not a second defect charged to rule 51."""
    target, info = _target(["mask-duplicate-entries"])
    r = AdminRequests(info)
    model = AdminModel(info, config=b"", mask=[], reservation=[])
    add = [(DCMD_ADD, info.host_mac)]
    assert [a.kind for a in _drive(target, model, [r.mask_edit(add), r.mask_edit(add)])] == ["mask-duplicate"]
    _drive(target, model, [r.mask_edit([(2, info.host_mac)]), r.mask_read()])
    assert model.masked_out(r.read(0, src=info.second_mac)) is None
    assert _drive(target, model, [r.read(0, src=info.second_mac), r.config_read(src=info.second_mac)]) == []
    model.forget()  # a restart: a fresh list is read again
    assert not model.list_doubled


def test_a_release_ignored_leaves_a_listed_zero_mac_to_the_next_read():
    """reserve-release-ignored: a reservation of the host and the all-zero MAC
    (a set may name it) survives a release. The release's reply lists both;
    the model cannot tell a zero MAC set from counted padding, so the list is
    unknown until read, and the read that lists both is no second finding
    (rule 54) beside the ignored release (rule 56)."""
    target, info = _target(["reserve-release-ignored"])
    r = AdminRequests(info)
    model = AdminModel(info, config=b"", mask=[], reservation=[])
    zero = bytes(6)
    assert _drive(target, model, [r.reserve(RCMD_SET, [info.host_mac, zero])]) == []
    assert [a.kind for a in _drive(target, model, [r.reserve(RCMD_SET, [])])] == ["reserve-release-ignored"]
    assert _drive(target, model, [r.reserve(RCMD_READ, [])]) == []
    assert sorted(model.reservation) == sorted([info.host_mac, zero])
