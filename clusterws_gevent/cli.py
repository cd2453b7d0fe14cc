"""``python -m clusterws_gevent module:worker [options]``: the command line.

Every flag is generated from the option declarations in ``options.py``.
gevent monkey-patches the standard library before the user's modules are
imported, so their blocking I/O cooperates with every socket.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Any, Dict, List, Optional

__all__ = ["main", "build_parser", "options_from_args", "import_object"]


def import_object(spec: str, what: str) -> Any:
    """``package.module:attribute`` (or ``module.attribute``) as the object it names."""
    module_name, sep, attr = spec.partition(":")
    if not sep:
        module_name, _, attr = spec.rpartition(".")
    if not module_name or not attr:
        raise SystemExit(f"error: {what} must be given as module:name, got {spec!r}")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise SystemExit(f"error: cannot import {module_name!r} for {what}: {exc}") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise SystemExit(f"error: {module_name!r} has no {attr!r} ({what})") from None
    return obj


def _kind(field_type: Any) -> str:
    text = str(field_type)
    if "Tuple[int" in text:
        return "ints"
    if "Tuple[str" in text:
        return "strs"
    for kind in ("bool", "float", "int"):
        if text in (kind, f"Optional[{kind}]"):
            return kind
    return "str"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, one flag per option of ``options.py``."""
    from .options import flag_of, iter_settings

    parser = argparse.ArgumentParser(
        prog="python -m clusterws_gevent",
        description="Run a ClusterWS server: the worker function, optionally a Flask app, on one port.",
        epilog="Every option is described in docs/options.md.")
    parser.add_argument("worker", metavar="MODULE:WORKER", help="the worker function, e.g. myapp:worker")
    for name, f, cli_prefix in iter_settings():
        flag = flag_of(name, f, cli_prefix)
        if flag is None:
            continue
        kind = _kind(f.type)
        kwargs: Dict[str, Any] = {"dest": name, "default": None, "help": f.metadata["help"]}
        if f.metadata.get("metavar"):
            kwargs["metavar"] = f.metadata["metavar"]
        if kind == "bool":
            kwargs["action"] = argparse.BooleanOptionalAction
            kwargs.pop("metavar", None)
        elif kind in ("int", "float"):
            kwargs["type"] = int if kind == "int" else float
        elif kind == "ints":
            kwargs["type"] = lambda text: tuple(int(part) for part in text.split(",") if part)
        elif kind == "strs":
            kwargs["type"] = lambda text: tuple(part for part in text.split(",") if part)
        parser.add_argument(flag, **kwargs)
    return parser


def options_from_args(args: argparse.Namespace) -> Dict[str, Any]:
    """The ClusterWS keyword arguments the parsed flags give (nested dicts for the groups)."""
    kwargs: Dict[str, Any] = {"worker": import_object(args.worker, "the worker")}
    for name, value in vars(args).items():
        if name == "worker" or value is None:
            continue
        if name == "app":
            value = import_object(value, "--app")
        elif name == "logger_options.logger":
            value = import_object(value, "--logger")
        parts = name.split(".")
        target = kwargs
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = value
    return kwargs


def main(argv: Optional[List[str]] = None) -> None:
    """Entry point of ``python -m clusterws_gevent`` and ``clusterws-gevent``."""
    from gevent import monkey

    if not monkey.is_module_patched("socket"):
        monkey.patch_all()
    args = build_parser().parse_args(argv)
    from .cluster import ClusterWS
    from .exceptions import OptionError

    kwargs = options_from_args(args)
    try:
        cluster = ClusterWS(**kwargs)
    except OptionError as exc:
        raise SystemExit(f"error: {exc}") from None
    cluster.run()
