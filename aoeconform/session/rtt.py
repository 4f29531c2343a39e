"""Round-trip time estimator of the Linux AoE initiator (reference §7).

Jacobson/Karels ("Congestion Avoidance and Control", 1988) in integer
microseconds and fixed point, so the numbers match the driver exactly:

* the mean is stored multiplied by 2**RTT_AVG_SCALE (gain 1/256);
* the mean deviation is stored multiplied by 2**RTT_DEV_SCALE (gain 1/8);
* the retransmit timeout is 2*mean + 8*deviation, never below 1 µs.

Starting values (``reset``, run on every IDENTIFY): mean 250 ms; the scaled
deviation is a quarter of the scaled mean, i.e. 64e6/4 = 16e6, which decodes
to 16e6 / 2**3 = 2 s. The first timeout is therefore
2 * 250 ms + 8 * 2 s = 16.5 s.

No clock is read here: callers pass measured round trips in.

``seed_from_first_sample`` departs from the driver on purpose (off by
default): after a reset the first measured round trip R sets mean R and
deviation R/2, as RFC 6298 section 2.2 does for TCP, instead of being
folded into the 250 ms starting guess with gain 1/256. With the driver's
rule the timeout needs some 1,400 round trips to come down from seconds
to a LAN's milliseconds, and every loss in that time stalls for seconds.
"""

from __future__ import annotations

from typing import Optional

USEC_PER_SEC = 1_000_000

RTT_AVG_SCALE = 8  # mean stored x256: gain 1/256
RTT_DEV_SCALE = 3  # deviation stored x8: gain 1/8

#: 250 ms in scaled units (64,000,000)
RTT_AVG_INIT = (USEC_PER_SEC // 4) << RTT_AVG_SCALE
#: a quarter of the scaled mean (16,000,000), i.e. a 2 s deviation
RTT_DEV_INIT = RTT_AVG_INIT // 4

#: the driver never returns a zero timeout
MIN_TIMEOUT_US = 1


class RttEstimator:
    """Smoothed round-trip time and the retransmit timeout derived from it.

    ``min_timeout`` and ``max_timeout`` (seconds) clamp
    ``retransmit_timeout``; the defaults reproduce the driver (a 1 µs floor
    and no ceiling). The estimate itself is never clamped.
    """

    __slots__ = ("avg_scaled", "dev_scaled", "samples", "seed_from_first_sample", "_floor_us", "_ceiling_us")

    def __init__(
        self,
        min_timeout: float = 0.0,
        max_timeout: Optional[float] = None,
        seed_from_first_sample: bool = False,
    ):
        self.seed_from_first_sample = seed_from_first_sample
        self._floor_us = max(MIN_TIMEOUT_US, int(round(min_timeout * USEC_PER_SEC)))
        self._ceiling_us = None if max_timeout is None else int(round(max_timeout * USEC_PER_SEC))
        if self._ceiling_us is not None and self._ceiling_us < self._floor_us:
            raise ValueError(
                f"max_timeout ({max_timeout} s) is below min_timeout ({min_timeout} s); "
                "raise the ceiling or lower the floor"
            )
        self.reset()

    def reset(self) -> None:
        """Back to the starting estimate (the driver does this on every IDENTIFY)."""
        self.avg_scaled = RTT_AVG_INIT
        self.dev_scaled = RTT_DEV_INIT
        self.samples = 0

    def sample(self, rtt_us: int) -> None:
        """Fold one measured round trip (integer microseconds) into the estimate."""
        if not self.samples and self.seed_from_first_sample:
            self.avg_scaled = rtt_us << RTT_AVG_SCALE
            self.dev_scaled = (rtt_us // 2) << RTT_DEV_SCALE
            self.samples = 1
            return
        error = rtt_us - (self.avg_scaled >> RTT_AVG_SCALE)
        self.avg_scaled += error
        if error < 0:
            error = -error
        self.dev_scaled += error - (self.dev_scaled >> RTT_DEV_SCALE)
        self.samples += 1

    @property
    def avg_us(self) -> int:
        """Smoothed round trip, microseconds (truncated like the driver)."""
        return self.avg_scaled >> RTT_AVG_SCALE

    @property
    def dev_us(self) -> int:
        """Smoothed mean deviation, microseconds (truncated)."""
        return self.dev_scaled >> RTT_DEV_SCALE

    def unclamped_timeout_us(self) -> int:
        """The driver's own value: 2*mean + 8*deviation, at least 1 µs."""
        timeout = ((2 * self.avg_scaled) >> RTT_AVG_SCALE) + ((8 * self.dev_scaled) >> RTT_DEV_SCALE)
        return timeout if timeout > 0 else MIN_TIMEOUT_US

    def retransmit_timeout_us(self) -> int:
        """The timeout with this estimator's floor and ceiling applied, microseconds."""
        timeout = self.unclamped_timeout_us()
        if timeout < self._floor_us:
            timeout = self._floor_us
        if self._ceiling_us is not None and timeout > self._ceiling_us:
            timeout = self._ceiling_us
        return timeout

    def retransmit_timeout(self) -> float:
        """The clamped timeout in seconds."""
        return self.retransmit_timeout_us() / USEC_PER_SEC

    def __repr__(self) -> str:
        return (
            f"RttEstimator(avg={self.avg_us}us, dev={self.dev_us}us, "
            f"rto={self.retransmit_timeout_us()}us, samples={self.samples})"
        )
