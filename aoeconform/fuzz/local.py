"""The fuzzer's in-memory reference target is ``aoeconform.target.host.ThreadHost``;
``ReferenceTarget`` is its name here for code written against this module."""

from aoeconform.target.host import HOST_MAC, TARGET_MAC, ThreadHost as ReferenceTarget

__all__ = ["HOST_MAC", "TARGET_MAC", "ReferenceTarget"]
