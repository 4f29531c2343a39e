"""Tags in the Linux layout (reference §2 "Tag")."""

from aoeconform.initiator.tags import (
    TAG_TOOL_BIT,
    TagAllocator,
    make_tag,
    tag_counter,
    tag_has_tool_bit,
    tag_ticks,
)


def test_layout_time_counter_and_clear_top_bit():
    tags = TagAllocator()  # 1 ms ticks
    tag = tags.new_tag(now=12.3456)
    assert tag_ticks(tag) == 12345
    assert tag_counter(tag) == 1
    assert not tag_has_tool_bit(tag)
    assert tag == (1 << 16) | 12345
    assert tag_counter(tags.new_tag(12.3456)) == 2


def test_time_field_wraps_at_16_bits():
    tags = TagAllocator()
    tag = tags.new_tag(now=65.537)  # 65537 ms
    assert tag_ticks(tag) == 1


def test_counter_is_15_bits_and_wraps_to_zero():
    tags = TagAllocator(counter=0x7FFE)
    assert tag_counter(tags.new_tag(0)) == 0x7FFF
    tag = tags.new_tag(0)
    assert tag_counter(tag) == 0
    assert tag & TAG_TOOL_BIT == 0


def test_tool_bit_option():
    tags = TagAllocator(tool_bit=True)
    tag = tags.new_tag(1.0)
    assert tag_has_tool_bit(tag)
    assert tag & 0x7FFFFFFF == (1 << 16) | 1000


def test_every_tag_is_fresh():
    tags = TagAllocator()
    seen = {tags.new_tag(5.0) for _ in range(1000)}
    assert len(seen) == 1000


def test_make_tag_truncates_fields():
    assert make_tag(0x12345, 0x18001) == (0x0001 << 16) | 0x2345
    assert make_tag(1, 1, tool_bit=True) == TAG_TOOL_BIT | 0x10001


def test_elapsed_and_send_time_recovered_from_the_tag():
    tags = TagAllocator()
    tag = tags.new_tag(now=100.000)
    assert tags.elapsed_ticks(tag, now=100.250) == 250
    # like the driver's tsince: one tick added
    assert tags.elapsed_us(tag, now=100.250) == 251_000
    assert abs(tags.send_time(tag, now=100.250) - 100.0) < 1e-9


def test_send_time_across_the_16_bit_wrap():
    tags = TagAllocator()
    tag = tags.new_tag(now=65.530)  # tick 65530
    assert tags.elapsed_ticks(tag, now=65.540) == 10  # tick 65540 & 0xFFFF = 4
    assert abs(tags.send_time(tag, now=65.540) - 65.530) < 1e-9


def test_coarser_tick():
    tags = TagAllocator(tick=0.004)  # HZ=250 jiffies
    tag = tags.new_tag(now=1.0)
    assert tag_ticks(tag) == 250
    assert tags.elapsed_ticks(tag, now=1.1) == 25
