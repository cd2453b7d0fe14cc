"""Naming the user's objects as ``module:name`` and importing them, now or later.

``python -m clusterws_gevent myapp:worker --app myapp:app`` in ``Mode.Scale``
does not import ``myapp`` in the master (unless ``--preload``): each worker
imports it after ``fork``, so a SIGHUP's new workers run the code as it is on
disk then, as gunicorn without ``--preload``.
"""
from __future__ import annotations

import importlib
import os
import sys
from typing import Any

__all__ = ["import_object", "LazyImport", "Target", "resolve", "ImportFailed"]


class ImportFailed(Exception):
    """``module:name`` could not be imported; the message says why."""


def import_object(spec: str, what: str) -> Any:
    """``package.module:attribute`` (or ``module.attribute``) as the object it names.

    ``module:create_app()`` calls the factory and returns what it returns.

    Raises:
        ImportFailed: the module or the name does not exist.
    """
    module_name, sep, attr = spec.partition(":")
    if not sep:
        module_name, _, attr = spec.rpartition(".")
    if not module_name or not attr:
        raise ImportFailed(f"{what} must be given as module:name, got {spec!r}")
    call = attr.endswith("()")
    if call:
        attr = attr[:-2]
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportFailed(f"cannot import {module_name!r} for {what}: {exc}") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ImportFailed(f"{module_name!r} has no {attr!r} ({what})") from None
    return obj() if call else obj


class LazyImport:
    """``module:name``, imported on first use (in a worker, after ``fork``).

    Calling it calls the object (a worker function); :func:`resolve` gives the object.
    """

    def __init__(self, spec: str, what: str) -> None:
        self.spec = spec
        self.what = what
        self._obj: Any = None

    def load(self) -> Any:
        """The object (imported the first time).

        Raises:
            ImportFailed: it cannot be imported.
        """
        if self._obj is None:
            self._obj = import_object(self.spec, self.what)
        return self._obj

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.load()(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<{self.spec} (imported in each worker)>"


def resolve(obj: Any) -> Any:
    """``obj``, or what a :class:`LazyImport` names."""
    return obj.load() if isinstance(obj, LazyImport) else obj


class Target:
    """The command line's ``MODULE:NAME``: a worker function, or a Flask app (or factory)
    whose module registered its worker with ``ClusterWS(worker=..., app=app)``.

    :attr:`worker` and :attr:`app` import it when first used (in each worker, unless it was
    :meth:`load`-ed in the master first, with ``--preload``).
    """

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self._obj: Any = None
        self._loaded = False

    def load(self) -> Any:
        """The object the spec names (imported the first time)."""
        if not self._loaded:
            self._obj = import_object(self.spec, "the target")
            self._loaded = True
        return self._obj

    def may_be_app(self) -> bool:
        """Whether the target may name an app (unknown until it is imported)."""
        return not self._loaded or _is_app(self._obj)

    @property
    def worker(self) -> Any:
        """The worker function (a lazy stand-in until the target is imported)."""
        return self._worker() if self._loaded else _TargetWorker(self)

    @property
    def app(self) -> Any:
        """The app, or None if the target is a worker function (lazy until imported)."""
        return (self._obj if _is_app(self._obj) else None) if self._loaded else _TargetApp(self)

    def _worker(self) -> Any:
        obj = self.load()
        if not _is_app(obj):
            if not callable(obj):
                raise ImportFailed(f"{self.spec} is neither a worker function nor a Flask app")
            return obj
        registered = obj.extensions.get("clusterws")
        worker = registered.options.worker if registered is not None else None
        # the command line's own ClusterWS registers itself on the app it serves: its worker is
        # this target's stand-in, not the module's
        if worker is None or isinstance(worker, _TargetWorker):
            return _NoWebSockets(self.spec)
        return worker


class _NoWebSockets:
    """The worker of an app whose module registered none: the app is served, with a warning,
    and WebSockets get no listener (they open, and nothing answers them)."""

    def __init__(self, spec: str) -> None:
        self.spec = spec

    def __call__(self, worker: Any) -> None:
        worker.log.warning("%s registered no ClusterWS worker: serving the app with no WebSocket listeners (call "
                           "ClusterWS(worker=..., app=app) in its module, or give module:worker)", self.spec)


def _is_app(obj: Any) -> bool:
    return callable(obj) and isinstance(getattr(obj, "extensions", None), dict)


class _TargetWorker(LazyImport):
    def __init__(self, target: Target) -> None:
        super().__init__(target.spec, "the worker")
        self._target = target

    def load(self) -> Any:
        return self._target._worker()


class _TargetApp(LazyImport):
    def __init__(self, target: Target) -> None:
        super().__init__(target.spec, "the app")
        self._target = target

    def load(self) -> Any:
        obj = self._target.load()
        return obj if _is_app(obj) else None
