"""`livedub camera`: placeholder while the live runner lands."""

from __future__ import annotations


def register(sub) -> None:
    pass


def live_demo(*args, **kwargs) -> int:
    return 0
