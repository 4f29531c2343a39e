"""Every expectation kind, passing and failing (a case must be able to fail),
against the in-memory reference target."""

import pytest

from test_scenario_helpers import one_case, run_text

READ1 = "{ata: {aflags: 0x40, sector_count: 1, cmd_status: 0x24, lba: 0}}"


@pytest.mark.parametrize("pred, outcome", [
    ("0x40", "passed"), ("0x41", "failed"),
    ("{eq: 0x40}", "passed"), ("{ne: 0x40}", "failed"),
    ("{in: [0x40, 0x50]}", "passed"), ("{in: [0x41]}", "failed"),
    ("{not_in: [0x41]}", "passed"), ("{not_in: [0x40]}", "failed"),
    ("{min: 0x40, max: 0x40}", "passed"), ("{min: 0x41}", "failed"), ("{max: 0x3f}", "failed"),
    ("{bits_set: 0x40, bits_clear: 0xA9}", "passed"), ("{bits_set: 0x01}", "failed"), ("{bits_clear: 0x40}", "failed"),
    ('"0x20 + 0x20"', "passed"),
])
def test_reply_field_predicates(pred, outcome):
    r = one_case(f"- send: {READ1}\n  expect: {{reply: {{ata: {{cmd_status: {pred}}}}}}}")
    assert r.outcome == outcome, r.message
    if outcome == "failed":
        step = r.steps[0]
        bad = [c for v in step.verdicts for c in v["checks"] if not c["ok"]]
        assert bad[0]["field"] == "ata.cmd_status" and bad[0]["actual"] == "0x40"


def test_header_fields_and_macs():
    ok = one_case("""
        - send: {command: config}
          expect: {reply: {header: {response: true, error_flag: false, tag: same, src: target, dst: mac, ver: 1, shelf: $shelf, slot: $slot, mbz: 0}}}
    """)
    assert ok.outcome == "passed", ok.message
    bad = one_case("- send: {command: config}\n  expect: {reply: {header: {dst: second_mac}}}")
    assert bad.outcome == "failed" and "header.dst" in bad.message


def test_data_checks():
    r = one_case(f"- send: {READ1}\n  expect: {{reply: {{data: {{length: 512, zero: true, prefix: '0000'}}}}}}")
    assert r.outcome == "passed", r.message
    r = one_case(f"- send: {READ1}\n  expect: {{reply: {{data: {{length: {{min: 513}}}}}}}}")
    assert r.outcome == "failed"
    r = one_case(f"- send: {READ1}\n  expect: {{reply: {{data: {{equals: {{fill: 1, length: 512}}}}}}}}")
    assert r.outcome == "failed"


def test_silence():
    assert one_case("- send: {command: config, header: {shelf: \"$shelf + 1\"}}\n  expect: {silence: true}").outcome == "passed"
    r = one_case("- send: {command: config}\n  expect: {silence: 0.01}")
    assert r.outcome == "failed" and "expected silence" in r.message


def test_missing_reply_is_timeout():
    r = one_case("- send: {command: config, header: {shelf: \"$shelf + 1\"}}\n  expect: {reply: {}}")
    assert r.outcome == "timeout" and "no reply" in r.message


def test_any_of():
    steps = """
        - send: {command: 9, arg: "00"}
          expect:
            any_of:
              - reply: {header: {error: 2}}
              - reply: {header: {error: 1}}
    """
    r = one_case(steps)
    assert r.outcome == "passed"
    assert len(r.steps[0].verdicts[0]["alternatives"]) == 2
    assert one_case(steps.replace("error: 1", "error: 3")).outcome == "failed"
    # silence as an alternative, with the quirk that makes the target silent
    assert one_case(steps.replace("reply: {header: {error: 2}}", "silence: true"), quirks=["unknown-command-silent"]).outcome == "passed"


def test_capture_and_set():
    r = one_case("""
        - send: {command: config}
          expect: {reply: {}, capture: {n: config.bufcnt, t: header.tag}}
        - set: {twice: "$n * 2", blob: {text: "ab"}}
        - send: {command: config}
          expect: {reply: {config: {bufcnt: "$twice // 2"}}}
        - send: {command: config, config: {ccmd: 4, config: "$blob"}}
          expect: {reply: {config: {config: {text: ab}, config_length: "len($blob)"}}}
    """)
    assert r.outcome == "passed", r.message
    r = one_case("- send: {command: config}\n  expect: {reply: {}, capture: {n: config.bufcnt}}\n- send: {command: config}\n  expect: {reply: {config: {bufcnt: \"$n + 1\"}}}")
    assert r.outcome == "failed"


def test_unknown_variable_is_error_with_line():
    r = one_case("- send: {command: config, header: {shelf: $nope}}\n  expect: {reply: {}}")
    assert r.outcome == "error" and "inline.yaml:8" in r.message and "$nope" in r.message


def test_count():
    assert one_case("- send: {command: config}\n  expect: {reply: {}, count: 1}").outcome == "passed"
    assert one_case("- send: {command: config}\n  expect: {reply: {}, count: 2}").outcome == "failed"


def test_duplicate_equivalent():
    steps = f"- duplicate: {{send: {READ1}, same_tag: true, equivalent: true, expect: {{reply: {{ata: {{cmd_status: 0x40}}}}}}}}"
    assert one_case(steps).outcome == "passed"
    assert one_case(steps.replace("same_tag: true", "same_tag: false")).outcome == "passed"
    # a target that drops the second copy fails the equivalence / second reply
    r = one_case(steps.replace("same_tag: true", "copies: 3"), quirks=["bufcnt-overstated"])
    assert r.outcome == "passed"


def test_write_read_verify_shadow():
    steps = """
        - write: {lba: 4, sectors: 3}
        - read_verify: {lba: 4, sectors: 3}
    """
    assert one_case(steps).outcome == "passed"
    r = one_case(steps, quirks=["stale-read-buffer"])
    assert r.outcome == "failed" and "expected as written" in r.message


def test_rejected_short_write_must_leave_media_unchanged():
    steps = """
        - send: {ata: {aflags: 0x41, sector_count: 1, cmd_status: 0x34, lba: 30, data: {fill: 0xEE, length: 100}}}
          expect: {any_of: [{reply: {header: {error_flag: true}}}, {reply: {ata: {cmd_status: {bits_set: 1}}}}]}
        - read_verify: {lba: 30}
    """
    assert one_case(steps).outcome == "passed"
    r = one_case(steps, quirks=["short-write-partial"])
    assert r.outcome == "failed"


def test_async_write_then_flush():
    steps = "- write: {lba: 40, sectors: 2, async: true}\n- flush: {}\n- read_verify: {lba: 40, sectors: 2}"
    assert one_case(steps).outcome == "passed"
    assert one_case(steps, quirks=["async-write-lost"]).outcome == "failed"


def test_batch_orders():
    steps = """
        - batch:
            order: {order}
            window: 2
            sends:
              - write: {{lba: 50}}
              - write: {{lba: 51}}
              - send: {{command: config}}
                expect: {{reply: {{}}}}
        - read_verify: {{lba: 50, sectors: 2}}
    """
    for order in ("as_written", "reversed", "shuffled", "[2, 0, 1]"):
        r = one_case(steps.format(order=order))
        assert r.outcome == "passed", (order, r.message)


def test_lba_window_skips_writes_outside():
    r = one_case("- write: {lba: 100}", lba_window=(200, 10))
    assert r.outcome == "skipped" and r.skip_reason == "excluded_by_window"
    assert one_case("- write: {lba: \"$lba_base\"}", lba_window=(200, 10)).outcome == "passed"


def test_not_permitted_without_allow_write():
    r = one_case("- write: {lba: 1}", allow_write=False)
    assert r.outcome == "skipped" and r.skip_reason == "not_permitted"


def test_capability_skip_unsupported():
    r = one_case("- liveness: {}", requires="[capacity_above_2_28]")
    assert r.outcome == "skipped" and r.skip_reason == "unsupported"


def test_restore_after_config_change():
    text = """
        suite: t
        cases:
          - id: t/set
            requirement: r
            section: "3.2"
            steps:
              - send: {config: {ccmd: 4, config: {text: changed}}}
                expect: {reply: {config: {config: {text: changed}}}}
          - id: t/check
            requirement: r
            section: "3.2"
            steps:
              - send: {config: {ccmd: 0}}
                expect: {reply: {config: {config: ""}}}
    """
    results = run_text(text)
    assert results["t/set"].outcome == "passed"
    assert results["t/check"].outcome == "passed", results["t/check"].message


def test_dead_target_is_reported_and_restarted():
    text = """
        suite: t
        cases:
          - id: t/kill
            requirement: r
            section: "2"
            steps:
              - send: {command: config, truncate: 26}
          - id: t/after
            requirement: r
            section: "2"
            steps:
              - liveness: {}
    """
    results = run_text(text, quirks=["crash-on-truncated"])
    assert results["t/kill"].outcome == "failed" and "stopped answering" in results["t/kill"].message
    assert any("restarted" in n for n in results["t/kill"].notes)
    assert results["t/after"].outcome == "passed"


def test_expected_failures():
    steps = f"- send: {READ1}\n  expect: {{reply: {{ata: {{cmd_status: 0x41}}}}}}"
    assert one_case(steps, expected_failures={"t/c": "known"}).outcome == "xfailed"
    steps = f"- send: {READ1}\n  expect: {{reply: {{ata: {{cmd_status: 0x40}}}}}}"
    assert one_case(steps, expected_failures={"t/c": "known"}).outcome == "xpassed"


def test_step_watchdog_is_timeout():
    from aoeconform.scenario.endpoint import bundled_thread
    from aoeconform.scenario.engine import Engine, RunOptions
    from test_scenario_helpers import load_text

    suite = load_text("""
        suite: t
        cases:
          - id: t/slow
            requirement: r
            section: "1"
            steps:
              - send: {command: config, header: {shelf: 7}}
                expect: {silence: 5}
                timeout: 0.2
    """)
    endpoint = bundled_thread()
    try:
        [r] = Engine(endpoint, RunOptions(timeout_floor=0.05)).run(suite.cases)
    finally:
        endpoint.close()
    assert r.outcome == "timeout" and "watchdog" in r.message
    assert r.duration < 2


def test_restart_and_advertisement():
    r = one_case("- restart: {}\n- expect: {match: any, reply: {header: {command: 1, response: true, ver: 1}}}")
    assert r.outcome == "passed", r.message
    r = one_case("- restart: {}\n- expect: {match: any, reply: {header: {command: 1}}}", quirks=["no-advertisement"])
    assert r.outcome == "timeout"


def test_load_step():
    r = one_case("- load: {seconds: 0.2, loss: 0.05, dup: 0.05, reorder: 0.05, lba: 64, sectors: 8}")
    assert r.outcome == "passed", r.message


def test_second_interface_carries_second_mac():
    """With a second transport, frames from the second MAC leave through it
    and its replies are collected there."""
    from aoeconform.scenario.endpoint import BUNDLED_SHELF, BUNDLED_SLOT, BUNDLED_TARGET_MAC, TargetEndpoint
    from aoeconform.scenario.engine import Engine, RunOptions
    from aoeconform.target.host import ThreadHost
    from test_scenario_helpers import load_text

    host = ThreadHost(shelf=BUNDLED_SHELF, slot=BUNDLED_SLOT, target_mac=BUNDLED_TARGET_MAC, image_bytes=1 << 20)
    first = host.link.endpoint("02:00:00:00:00:01", name="memory:0")
    second = host.link.endpoint("02:00:00:00:00:02", name="memory:1")
    suite = load_text("""
        suite: t
        cases:
          - id: t/second
            requirement: r
            section: "3.3"
            steps:
              - send: {command: config, header: {src: second_mac}}
                expect: {reply: {header: {dst: second_mac}}}
    """)
    try:
        endpoint = TargetEndpoint(first, BUNDLED_TARGET_MAC, BUNDLED_SHELF, BUNDLED_SLOT, second=second)
        assert endpoint.second_mode == "second interface memory:1"
        [r] = Engine(endpoint, RunOptions(timeout_floor=0.05)).run(suite.cases)
        assert r.outcome == "passed", r.message
        assert [f.iface for f in r.frames if f.direction == "out"][0] == "memory:1"
    finally:
        host.close()
