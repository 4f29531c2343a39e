"""The model against the real thing: the reference initiator's --timer linux preset and the
Linux driver through the same bridge, same seed, same impairment.

The stated distance: on the same lossy link, the model's retransmissions and the
duplicates it makes the target see stay within 25% (or 3 frames) of the
driver's, and each side's own count of timeouts agrees with what the wire shows.
Throughput is printed, not bounded: the driver's timer ticks every 100 ms and
the model's transfers run in Python, so the two are not expected to match."""

from conftest import need_uml

DISTANCE = 0.25


def close(model, driver):
    return abs(model - driver) <= max(3, DISTANCE * driver)


def test_the_model_stays_near_the_driver():
    need_uml()
    from aoeconform.bench.linux import run_bench, table

    driver, model = run_bench(seed=2, loss=0.02, dup=0.01, reorder=0.01, size=128 << 10, random_count=4, timeout=120)
    print(table([driver, model], "test"))
    assert driver.ok, driver.problem
    assert model.ok, model.problem
    assert driver.frames_lost > 0
    # each initiator's own count of timeouts is what crossed the wire
    assert close(driver.timeouts, driver.wire["retransmissions"])
    assert close(model.timeouts, model.wire["retransmissions"])
    assert close(model.wire["retransmissions"], driver.wire["retransmissions"]), (model.wire, driver.wire)
    assert close(model.wire["duplicates_delivered"], driver.wire["duplicates_delivered"]), (model.wire, driver.wire)


def test_bad_size_is_a_one_line_error(capsys):
    from aoeconform.cli import main

    assert main(["bench", "linux", "--size", "6000"]) == 2
    assert "multiple of 4096" in capsys.readouterr().err
