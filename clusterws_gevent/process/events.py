"""What the master's loop handles (``process/master.py``): signals, child exits, ready children."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union

__all__ = ["SignalReceived", "ChildExited", "ChildReady", "Event"]


@dataclass(frozen=True)
class SignalReceived:
    """A signal reached the master (``name``: TERM, INT, HUP, TTIN or TTOU)."""

    name: str


@dataclass(frozen=True)
class ChildExited:
    """A child exited (its wait status)."""

    pid: int
    status: int


@dataclass(frozen=True)
class ChildReady:
    """A child wrote its ready byte: it serves."""

    pid: int


Event = Union[SignalReceived, ChildExited, ChildReady]
