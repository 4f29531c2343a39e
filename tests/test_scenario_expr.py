import pytest

from aoeconform.scenario.expr import ExprError, check_syntax, evaluate


@pytest.mark.parametrize("text, value", [
    ("1 + 2 * 3", 7),
    ("(1 + 2) * 3", 9),
    ("0x10 | 0x01", 0x11),
    ("1 << 4 + 1", 32),  # + binds tighter than <<, as in Python
    ("-3 // 2", -2),
    ("7 % 3", 1),
    ("~0 & 0xFF", 0xFF),
    ("$capacity - 1", 99),
    ("$lba_base + 2 * $max_sectors", 14),
    ("min($capacity, 5, 9)", 5),
    ("max(1, $max_sectors)", 2),
    ("len($config)", 3),
    ("1_000", 1000),
])
def test_values(text, value):
    variables = {"capacity": 100, "lba_base": 10, "max_sectors": 2, "config": b"abc"}
    assert evaluate(text, variables) == value


@pytest.mark.parametrize("text, message", [
    ("$nope + 1", "unknown variable $nope"),
    ("1 // 0", "division by zero"),
    ("1 +", "ends too early"),
    ("(1 + 2", "ends too early"),
    ("__import__('os')", "unexpected"),
    ("open(1)", "unknown function"),
    ("1 2", "unexpected"),
    ("2 ** 3", "unexpected"),
    ("1 << 100000", "out of range"),
    ("", "empty"),
])
def test_errors(text, message):
    with pytest.raises(ExprError, match=message.replace("$", r"\$").replace("(", r"\(")):
        evaluate(text, {})


def test_bytes_need_len():
    with pytest.raises(ExprError, match="needs numbers"):
        evaluate("$config + 1", {"config": b"x"})


def test_syntax_only():
    check_syntax("$anything * (2 + $other)")
    check_syntax("len($x) // 0")  # values are not judged
    with pytest.raises(ExprError):
        check_syntax("1 +* 2")
