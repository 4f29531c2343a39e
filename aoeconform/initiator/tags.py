"""Tags in the Linux initiator's layout (reference §2, "Tag").

    bit 31      clear: left to user tools (aoetools set it); optional here
    bits 16-30  a 15-bit counter, bumped for every frame sent
    bits 0-15   the send time in ticks, modulo 2**16

Because the send time travels in the tag, the age of any reply can be
computed from the tag alone, even for a reply whose frame was forgotten
(the driver feeds those late replies into its RTT estimate). Every
retransmission takes a fresh tag, so a late reply to an old copy can be
told apart from the answer to the new one.
"""

from __future__ import annotations

TAG_TIME_BITS = 16
TAG_TIME_MASK = (1 << TAG_TIME_BITS) - 1  # 0xFFFF
TAG_COUNTER_SHIFT = 16
TAG_COUNTER_MASK = 0x7FFF  # 15 bits
TAG_TOOL_BIT = 1 << 31

#: default tick: 1 ms, like a HZ=1000 kernel's jiffies
DEFAULT_TICK = 0.001


def tag_ticks(tag: int) -> int:
    """The send time field (ticks modulo 2**16)."""
    return tag & TAG_TIME_MASK


def tag_counter(tag: int) -> int:
    """The 15-bit counter field."""
    return (tag >> TAG_COUNTER_SHIFT) & TAG_COUNTER_MASK


def tag_has_tool_bit(tag: int) -> bool:
    return bool(tag & TAG_TOOL_BIT)


def make_tag(ticks: int, counter: int, tool_bit: bool = False) -> int:
    """Assemble a tag from its fields (each truncated to its width)."""
    tag = (ticks & TAG_TIME_MASK) | ((counter & TAG_COUNTER_MASK) << TAG_COUNTER_SHIFT)
    return tag | TAG_TOOL_BIT if tool_bit else tag


class TagAllocator:
    """Hands out tags; ``now`` (seconds, any epoch) is always passed in."""

    __slots__ = ("tick", "tool_bit", "counter", "_per_second")

    def __init__(self, tick: float = DEFAULT_TICK, tool_bit: bool = False, counter: int = 0):
        if tick <= 0:
            raise ValueError(f"tick must be positive, got {tick}")
        self.tick = tick
        self._per_second = 1.0 / tick
        self.tool_bit = tool_bit
        self.counter = counter & TAG_COUNTER_MASK

    def ticks(self, now: float) -> int:
        """Current time in ticks, modulo 2**16."""
        return int(now * self._per_second) & TAG_TIME_MASK

    def new_tag(self, now: float) -> int:
        """A tag for a frame sent at ``now``; the counter is bumped first, as in the driver."""
        self.counter = (self.counter + 1) & TAG_COUNTER_MASK
        tag = (int(now * self._per_second) & TAG_TIME_MASK) | (self.counter << TAG_COUNTER_SHIFT)
        return tag | TAG_TOOL_BIT if self.tool_bit else tag

    def elapsed_ticks(self, tag: int, now: float) -> int:
        """Ticks since the tag was made, assuming less than 2**16 ticks passed."""
        return (self.ticks(now) - (tag & TAG_TIME_MASK)) & TAG_TIME_MASK

    def elapsed_us(self, tag: int, now: float) -> int:
        """Age of a tag in microseconds, rounded up by one tick like the driver's ``tsince``."""
        return int(round((self.elapsed_ticks(tag, now) + 1) * self.tick * 1_000_000))

    def send_time(self, tag: int, now: float) -> float:
        """The latest time <= ``now`` (to one tick) whose tick count matches the tag's.

        Exact only if the frame was sent less than 2**16 ticks ago
        (65.5 s with the default tick).
        """
        return (int(now * self._per_second) - self.elapsed_ticks(tag, now)) * self.tick
