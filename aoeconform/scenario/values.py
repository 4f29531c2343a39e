"""Turning the values a suite writes into numbers, bytes and MAC addresses.

Integer fields take a number or an expression string (``"$capacity - 1"``,
see ``expr``). Byte fields take a hex string, ``"$name"`` (a bytes
variable), or one of the generator mappings below. MAC fields take a role
name (``mac``, ``second_mac``, ``target``, ``broadcast``), ``"$name"``, or
the address written out.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Mapping, Optional

from .expr import ExprError, evaluate

SECTOR = 512
BYTE_GENERATORS = ("text", "fill", "pattern", "repeat", "concat", "var", "hex")
MAC_ROLES = ("mac", "second_mac", "target", "target_mac", "broadcast")
_MAC_TEXT = re.compile(r"^[0-9a-fA-F]{2}([:-][0-9a-fA-F]{2}){5}$")
_HEX_SEPARATORS = re.compile(r"[\s:_-]")


class ValueError_(ValueError):
    """A value in a suite cannot be turned into what the field needs."""


def integer(value: Any, variables: Mapping[str, Any], what: str = "value") -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            result = evaluate(value, variables)
        except ExprError as exc:
            raise ValueError_(f"{what}: {exc}") from None
        if isinstance(result, bytes):
            if len(result) > 8:
                raise ValueError_(f"{what}: {value!r} is {len(result)} bytes, not a number")
            return int.from_bytes(result, "big")
        return int(result)
    raise ValueError_(f"{what}: expected a number or an expression, got {value!r}")


def parse_hex(text: str, what: str = "bytes") -> bytes:
    cleaned = _HEX_SEPARATORS.sub("", text)
    if cleaned.startswith(("0x", "0X")):
        cleaned = cleaned[2:]
    try:
        return bytes.fromhex(cleaned)
    except ValueError:
        raise ValueError_(f"{what}: {text!r} is not hex (write bytes as \"00ff10\", or use {{text: ...}})") from None


def pattern_bytes(pattern: int, seed: int, lba: int, sectors: int) -> bytes:
    """Deterministic data for ``sectors`` sectors starting at ``lba``.

    Every sector is different and depends on the run's seed, the pattern
    number and the sector's own LBA, so a sector that lands in the wrong
    place, or an old sector read back, never looks right by accident."""
    out = bytearray()
    for i in range(sectors):
        key = f"{seed}:{pattern}:{lba + i}".encode()
        block = hashlib.blake2b(key, digest_size=64).digest()
        # 8 × 64 bytes, each chunk varied by its index
        out += b"".join(hashlib.blake2b(block + bytes([j]), digest_size=64).digest() for j in range(SECTOR // 64))
    return bytes(out)


def byte_value(value: Any, variables: Mapping[str, Any], *, seed: int = 0, lba: int = 0, what: str = "bytes",
               default_sectors: Optional[int] = None) -> bytes:
    if value is None:
        return b""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        if value.startswith("$"):
            name = value[1:]
            if name not in variables:
                raise ValueError_(f"{what}: unknown variable {value}")
            got = variables[name]
            if isinstance(got, int):
                raise ValueError_(f"{what}: {value} is a number, not bytes")
            return bytes(got)
        return parse_hex(value, what)
    if isinstance(value, list):
        return b"".join(byte_value(v, variables, seed=seed, lba=lba, what=what) for v in value)
    if not isinstance(value, Mapping):
        raise ValueError_(f"{what}: expected bytes (hex string or generator), got {value!r}")
    if "hex" in value:
        return parse_hex(str(value["hex"]), what)
    if "text" in value:
        return str(value["text"]).encode("utf-8")
    if "var" in value:
        data = byte_value("$" + str(value["var"]).lstrip("$"), variables, what=what)
        start = integer(value.get("start", 0), variables, what)
        end = value.get("end")
        return data[start:] if end is None else data[start:integer(end, variables, what)]
    if "concat" in value:
        return b"".join(byte_value(v, variables, seed=seed, lba=lba, what=what) for v in value["concat"])
    if "fill" in value:
        fill = integer(value["fill"], variables, what) & 0xFF
        if "length" not in value and "sectors" not in value and default_sectors is not None:
            return bytes([fill]) * (SECTOR * default_sectors)
        return bytes([fill]) * _length(value, variables, what)
    if "repeat" in value:
        unit = byte_value(value["repeat"], variables, what=what) if not isinstance(value["repeat"], str) or value["repeat"].startswith("$") else parse_hex(value["repeat"], what)
        length = _length(value, variables, what)
        if not unit:
            raise ValueError_(f"{what}: repeat of nothing")
        return (unit * (length // len(unit) + 1))[:length]
    if "pattern" in value:
        pattern = integer(value["pattern"], variables, what)
        start = integer(value["lba"], variables, what) if "lba" in value else lba
        if "sectors" in value:
            return pattern_bytes(pattern, seed, start, integer(value["sectors"], variables, what))
        if "length" not in value and default_sectors is not None:
            return pattern_bytes(pattern, seed, start, default_sectors)
        length = _length(value, variables, what)
        return pattern_bytes(pattern, seed, start, (length + SECTOR - 1) // SECTOR)[:length]
    raise ValueError_(f"{what}: a byte value mapping needs one of {', '.join(BYTE_GENERATORS)}")


def _length(value: Mapping, variables, what) -> int:
    if "length" in value:
        n = integer(value["length"], variables, what)
    elif "sectors" in value:
        n = SECTOR * integer(value["sectors"], variables, what)
    else:
        raise ValueError_(f"{what}: give length or sectors")
    if n < 0 or n > 1 << 24:
        raise ValueError_(f"{what}: length {n} is out of range")
    return n


def mac_value(value: Any, roles: Mapping[str, bytes], variables: Mapping[str, Any], what: str = "mac") -> bytes:
    if isinstance(value, (bytes, bytearray)) and len(value) == 6:
        return bytes(value)
    if isinstance(value, str):
        if value in roles:
            return roles[value]
        if value.startswith("$"):
            got = byte_value(value, variables, what=what)
            if len(got) != 6:
                raise ValueError_(f"{what}: {value} holds {len(got)} bytes, not a MAC address")
            return got
        if _MAC_TEXT.match(value):
            return bytes(int(p, 16) for p in re.split("[:-]", value))
        cleaned = _HEX_SEPARATORS.sub("", value)
        if len(cleaned) == 12:
            return parse_hex(cleaned, what)
    raise ValueError_(f"{what}: {value!r} is not a MAC address or one of {', '.join(MAC_ROLES)}")


def describe_bytes(data: bytes, limit: int = 16) -> str:
    if len(data) <= limit:
        return data.hex() or "(empty)"
    return f"{data[:limit].hex()}… ({len(data)} bytes)"
