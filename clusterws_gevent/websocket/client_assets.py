"""The browser client the server ships (``clusterws_gevent/static/``), as HTTP responses.

``websocket_options["client_path"]`` (default ``/clusterws.js``) serves the classic script
(it defines ``window.ClusterWS``); the same path ending in ``.mjs`` serves it as an ES
module, and ``.d.ts`` its TypeScript declarations. Read once, answered from memory, with
an ETag so that browsers revalidate cheaply.
"""
from __future__ import annotations

import hashlib
from importlib import resources
from typing import Dict, Optional, Tuple

__all__ = ["ClientAssets"]

#: (content type, body, etag)
Asset = Tuple[str, bytes, str]


def _read(name: str) -> bytes:
    return resources.files("clusterws_gevent").joinpath("static").joinpath(name).read_bytes()


class ClientAssets:
    """The client's files, by request path.

    Args:
        path: where the classic script is served (``/clusterws.js``).
    """

    def __init__(self, path: str) -> None:
        script = _read("clusterws.js")
        module = script + b"\nconst ClusterWS = globalThis.ClusterWS;\nexport { ClusterWS };\n" \
                          b"export default ClusterWS;\n"
        base = path[: -len(".js")] if path.endswith(".js") else path
        self._assets: Dict[str, Asset] = {}
        for asset_path, content_type, body in (
                (path, "application/javascript; charset=utf-8", script),
                (base + ".mjs", "text/javascript; charset=utf-8", module),
                (base + ".d.ts", "application/typescript; charset=utf-8", _read("clusterws.d.ts"))):
            self._assets[asset_path] = (content_type, body, '"' + hashlib.sha256(body).hexdigest()[:16] + '"')

    def get(self, path: str) -> Optional[Asset]:
        """The asset served at ``path``, or None."""
        return self._assets.get(path)
