"""The names of the WebSocket engines (the seed's ``websocketOptions.engine``), for the
options to validate without importing any engine (``websocket/engines.py`` loads them).

Names map to ``module:Class`` strings so that choosing an engine imports only that
engine: gevent-websocket is loaded only when asked for.
"""
from __future__ import annotations

from typing import Dict

__all__ = ["ENGINES", "ENGINE_ALIASES", "DEFAULT_ENGINE", "canonical_engine"]

ENGINES: Dict[str, str] = {
    # websockets' sans-I/O core driven by a greenlet: the default.
    "builtin": "clusterws_gevent.websocket.builtin_engine:BuiltinConnection",
    # gevent-websocket 0.10.1's frame reader: the compatibility engine.
    "gevent-websocket": "clusterws_gevent.websocket.gevent_engine:GeventWebSocketConnection",
}
#: The seed's engine names, so that a config ported from Node keeps working.
ENGINE_ALIASES: Dict[str, str] = {"@clusterws/ws": "builtin", "ws": "builtin"}
DEFAULT_ENGINE = "builtin"


def canonical_engine(name: str) -> str:
    """The registry name of ``name`` (an alias resolved).

    Raises:
        KeyError: unknown engine.
    """
    name = ENGINE_ALIASES.get(name, name)
    if name not in ENGINES:
        raise KeyError(name)
    return name
