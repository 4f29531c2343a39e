"""RTT estimator: numbers worked out by hand from the driver's fixed-point rules (reference §7)."""

import pytest

from aoeconform.session.rtt import RTT_AVG_INIT, RTT_DEV_INIT, RttEstimator


def test_initial_values_give_a_16_5_second_first_timeout():
    # 250 ms << 8 = 64,000,000; a quarter of it, 16,000,000, decodes to 16e6 >> 3 = 2 s
    assert RTT_AVG_INIT == 64_000_000
    assert RTT_DEV_INIT == 16_000_000
    est = RttEstimator()
    assert est.avg_us == 250_000
    assert est.dev_us == 2_000_000
    # 2 * 250 ms + 8 * 2 s
    assert est.retransmit_timeout_us() == 16_500_000
    assert est.retransmit_timeout() == 16.5


def test_hand_computed_sequence():
    est = RttEstimator()
    # sample 0 us: error -250,000; avg 64e6 - 250,000; dev 16e6 + 250,000 - 16e6/8
    est.sample(0)
    assert est.avg_scaled == 63_750_000
    assert est.dev_scaled == 14_250_000
    # (2 * 63,750,000) >> 8 = 498,046 ; (8 * 14,250,000) >> 3 = 14,250,000
    assert est.retransmit_timeout_us() == 498_046 + 14_250_000
    # sample 10 ms: mean was 63,750,000 >> 8 = 249,023; error -239,023
    est.sample(10_000)
    assert est.avg_scaled == 63_750_000 - 239_023 == 63_510_977
    # dev: 14,250,000 + 239,023 - 14,250,000 >> 3 (1,781,250)
    assert est.dev_scaled == 12_707_773
    assert est.avg_us == 248_089
    assert est.dev_us == 1_588_471
    # (2 * 63,510,977) >> 8 = 496,179 ; 8 * dev >> 3 = 12,707,773
    assert est.retransmit_timeout_us() == 13_203_952
    assert est.samples == 2


def test_converges_on_a_steady_round_trip():
    est = RttEstimator()
    for _ in range(5000):
        est.sample(1000)
    assert abs(est.avg_us - 1000) <= 1
    assert est.dev_us <= 1
    assert est.retransmit_timeout_us() < 2100


def test_reset_after_identify_restores_the_first_timeout():
    est = RttEstimator()
    for _ in range(3000):
        est.sample(500)
    assert est.retransmit_timeout_us() < 5000
    est.reset()
    assert est.retransmit_timeout_us() == 16_500_000
    assert est.samples == 0


def test_driver_floor_is_one_microsecond():
    est = RttEstimator()
    est.avg_scaled = 0
    est.dev_scaled = 0
    assert est.unclamped_timeout_us() == 1
    assert est.retransmit_timeout_us() == 1


def test_ceiling_clamps_the_first_timeout():
    est = RttEstimator(min_timeout=0.1, max_timeout=2.0)
    assert est.unclamped_timeout_us() == 16_500_000
    assert est.retransmit_timeout_us() == 2_000_000
    assert est.retransmit_timeout() == 2.0


def test_floor_clamps_a_tiny_timeout():
    est = RttEstimator(min_timeout=0.1, max_timeout=2.0)
    for _ in range(5000):
        est.sample(50)
    assert est.unclamped_timeout_us() < 1000
    assert est.retransmit_timeout_us() == 100_000
    # the estimate itself is not clamped
    assert est.avg_us < 1000


def test_ceiling_below_floor_is_refused():
    with pytest.raises(ValueError, match="below min_timeout"):
        RttEstimator(min_timeout=1.0, max_timeout=0.5)


def test_a_large_sample_raises_the_deviation_fast_and_the_mean_slowly():
    est = RttEstimator()
    est.avg_scaled = 1000 << 8  # steady at 1 ms, no deviation
    est.dev_scaled = 0
    assert est.retransmit_timeout_us() == 2000
    est.sample(101_000)  # error +100,000
    assert est.avg_scaled == 256_000 + 100_000
    assert est.avg_us == 1390  # 356,000 / 256 = 1390.6
    assert est.dev_scaled == 100_000  # dev_us 12,500: gain 1/8
    assert est.retransmit_timeout_us() == 2781 + 100_000


def test_seeding_from_the_first_sample_after_a_reset():
    # RFC 6298 §2.2: mean R, deviation R/2; rto = 2R + 8(R/2) = 6R
    est = RttEstimator(seed_from_first_sample=True)
    assert est.retransmit_timeout_us() == 16_500_000  # before any sample: the driver's start
    est.sample(1000)
    assert (est.avg_us, est.dev_us, est.samples) == (1000, 500, 1)
    assert est.retransmit_timeout_us() == 6000
    # later samples follow the driver's gains: error 256, avg += 1 (256/256), dev += 256 - 500
    est.sample(1256)
    assert est.avg_scaled == (1000 << 8) + 256
    assert est.dev_scaled == (500 << 3) + 256 - 500
    est.reset()
    est.sample(200)
    assert (est.avg_us, est.dev_us) == (200, 100)
