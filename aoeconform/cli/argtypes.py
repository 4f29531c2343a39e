"""Argument types shared by the subcommands: each turns bad text into a
one-line argparse error (exit status 2) that says what was expected."""

from __future__ import annotations

import argparse
from typing import Callable, Optional


def integer(minimum: Optional[int] = None) -> Callable[[str], int]:
    """A whole number (decimal, or 0x.. hex), at least ``minimum`` when given."""

    def parse(text: str) -> int:
        try:
            value = int(text, 0)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if minimum is not None and value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def seconds(text: str) -> float:
    """A positive number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def probability(text: str) -> float:
    """A probability from 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a probability; use a value from 0 to 1 (0.05 for 5%)")
    return value
