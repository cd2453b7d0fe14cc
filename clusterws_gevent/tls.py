"""Server TLS contexts from the TLS options: certificate and key files, or the seed's PEM
texts (Node's ``cert``/``key``), written to a private temporary file for ``ssl`` to load.

``ssl`` is imported when a context is made, never at import: ``python -m clusterws_gevent``
imports the package before gevent monkey-patches ``ssl``.
"""
from __future__ import annotations

import os
import tempfile
from typing import Any, Optional

from .exceptions import OptionError

__all__ = ["server_context"]


def server_context(cert: str, key: Optional[str], password: Optional[str], ca_certs: Optional[str],
                   option_name: str) -> Any:
    """A server ``ssl.SSLContext``.

    Args:
        cert: the certificate chain: a PEM file's path, or PEM text.
        key: the private key: a path, PEM text, or None (it is in ``cert``).
        password: of the private key.
        ca_certs: a CA file to verify client certificates with (optional client certificates).
        option_name: the option a failure is reported against.

    Raises:
        OptionError: the files or PEM texts do not load.
    """
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    with tempfile.TemporaryDirectory() as private:  # 0700: the key's text never lies where others can read it
        try:
            context.load_cert_chain(_as_file(private, "cert.pem", cert), _as_file(private, "key.pem", key), password)
            if ca_certs:
                context.load_verify_locations(ca_certs)
                context.verify_mode = ssl.CERT_OPTIONAL
        except (OSError, ssl.SSLError) as exc:
            raise OptionError(option_name, f"cannot load the certificate or key: {exc}") from None
    return context


def _as_file(directory: str, name: str, pem: Any) -> Any:
    """``pem`` itself when it is a path (or None), else the path of a 0600 file holding it."""
    if pem is None or "-----BEGIN" not in pem:
        return pem
    path = os.path.join(directory, name)
    with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as out:
        out.write(pem)
    return path
