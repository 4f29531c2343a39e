"""Test networks: a veth pair and a network namespace for a target under test."""

from aoeconform.lab.netns import (
    BridgedLab,
    DEFAULT_MTU,
    DEFAULT_NAME,
    Lab,
    TargetProcess,
    make_sparse_image,
    parse_size,
    require_ip_command,
    require_root,
)

__all__ = [
    "BridgedLab",
    "DEFAULT_MTU",
    "DEFAULT_NAME",
    "Lab",
    "TargetProcess",
    "make_sparse_image",
    "parse_size",
    "require_ip_command",
    "require_root",
]
