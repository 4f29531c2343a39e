"""IDENTIFY DEVICE data: 256 little-endian words; strings hold two characters per word, high byte first."""

from __future__ import annotations

import pytest

from aoeconform.wire import DecodeError, IdentifyData

# words 10-19: serial "1.2:vm"; 23-26: firmware "V25"; 27-46: model "Coraid EtherDrive vblade"
SERIAL_HEX = "2e31 3a32 6d76 2020 2020 2020 2020 2020 2020 2020"
FIRMWARE_HEX = "3256 2035 2020 2020"
MODEL_HEX = "6f43 6172 6469 4520 6874 7265 7244 7669 2065 6276 616c 6564 2020 2020 2020 2020 2020 2020 2020 2020"


def vblade_identify(capacity_lo=0x0000, capacity_hi=0x0002, word83="0054", word86="0014") -> bytes:
    """The 512 bytes vblade sends for a 64 MiB image (131072 = 0x00020000 sectors)."""
    words = bytearray(512)

    def put(word, hex_text):
        raw = bytes.fromhex(hex_text.replace(" ", ""))
        words[2 * word:2 * word + len(raw)] = raw

    put(10, SERIAL_HEX)
    put(23, FIRMWARE_HEX)
    put(27, MODEL_HEX)
    put(47, "0080")
    put(49, "0002")
    put(50, "0040")
    put(60, capacity_lo.to_bytes(2, "little").hex() + capacity_hi.to_bytes(2, "little").hex())
    put(83, word83)
    put(84, "0040")
    put(86, word86)
    put(87, "0040")
    put(93, "0b40")
    put(100, capacity_lo.to_bytes(2, "little").hex() + capacity_hi.to_bytes(2, "little").hex() + "00000000")
    return bytes(words)


def test_vblade_block():
    ident = IdentifyData.decode(vblade_identify())
    assert ident.model == "Coraid EtherDrive vblade"
    assert ident.serial == "1.2:vm"
    assert ident.firmware == "V25"
    assert ident.words[83] == 0x5400 and ident.words[86] == 0x1400
    assert ident.lba48_supported and ident.lba48_enabled and ident.lba48
    assert ident.lba28_capacity == ident.lba48_capacity == ident.capacity_sectors == 131072
    assert ident.encode() == vblade_identify()


def test_lba48_from_word_86_alone_like_linux():
    ident = IdentifyData.decode(vblade_identify(word83="0040", word86="0004"))
    assert not ident.lba48_supported and ident.lba48
    assert ident.capacity_sectors == 131072


def test_no_lba48_uses_words_60_61():
    raw = bytearray(vblade_identify(word83="0040", word86="0000"))
    raw[200:208] = bytes.fromhex("ffffffff00000000")  # a 48-bit count nobody should read
    ident = IdentifyData.decode(bytes(raw))
    assert not ident.lba48 and ident.capacity_sectors == 131072


def test_build_caps_the_28_bit_capacity():
    ident = IdentifyData.build(0x1_2345_6789, model="m", serial="s", firmware="f")
    raw = ident.encode()
    assert raw[120:124] == bytes.fromhex("ffff" "ff0f")  # words 60-61: 0x0FFFFFFF
    assert raw[200:208] == bytes.fromhex("8967 4523 0100 0000".replace(" ", ""))
    assert ident.capacity_sectors == 0x1_2345_6789


def test_build_strings_are_padded_with_spaces_and_cut_to_size():
    ident = IdentifyData.build(8, model="M" * 50, serial="ab", firmware="x")
    raw = ident.encode()
    assert raw[20:24] == bytes.fromhex("6261 2020".replace(" ", ""))
    assert ident.model == "M" * 40 and ident.serial == "ab" and ident.firmware == "x"


def test_build_without_lba48():
    ident = IdentifyData.build(1000, lba48=False)
    assert not ident.lba48 and ident.lba48_capacity == 0 and ident.capacity_sectors == 1000


@pytest.mark.parametrize("length, word", [(0, 0), (1, 0), (100, 50), (511, 255)])
def test_short_block_names_the_missing_word(length, word):
    with pytest.raises(DecodeError) as info:
        IdentifyData.decode(vblade_identify()[:length])
    assert info.value.field == f"identify word {word}"
    assert info.value.offset == 36 + 2 * word
    assert f"of {length} bytes" in str(info.value)


def test_longer_data_uses_the_first_512_bytes():
    ident = IdentifyData.decode(vblade_identify() + b"\xff" * 24)
    assert ident.encode() == vblade_identify()
