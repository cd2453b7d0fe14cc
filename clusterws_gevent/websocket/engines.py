"""Loading the WebSocket engine an option names (``engine_names.py``)."""
from __future__ import annotations

import importlib
from typing import Any

from ..engine_names import ENGINES, canonical_engine

__all__ = ["load_engine"]


def load_engine(name: str) -> Any:
    """The connection class of the engine ``name``."""
    module, _, attr = ENGINES[canonical_engine(name)].partition(":")
    return getattr(importlib.import_module(module), attr)
