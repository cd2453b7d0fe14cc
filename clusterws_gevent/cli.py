"""``python -m clusterws_gevent module:worker [options]``: the command line.

Every flag is generated from the option declarations in ``options.py``.
gevent monkey-patches the standard library before the user's modules are
imported, so their blocking I/O cooperates with every socket.
"""
from __future__ import annotations

import argparse
from typing import Any, Dict, List, Optional

from . import loading

__all__ = ["main", "build_parser", "options_from_args", "import_object"]


def import_object(spec: str, what: str) -> Any:
    """``package.module:attribute`` as the object it names; exits with the reason if it cannot."""
    try:
        return loading.import_object(spec, what)
    except loading.ImportFailed as exc:
        raise SystemExit(f"error: {exc}") from None


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
    # Without --preload, Mode.Scale's master imports neither: each worker does, after fork,
    # so that SIGHUP serves the code on disk (loading.py).
    lazy = not args.__dict__.get("scale_options.preload") and not str(args.mode or "scale").lower().endswith("single")
    load = loading.LazyImport if lazy else import_object
    kwargs: Dict[str, Any] = {"worker": load(args.worker, "the worker")}
    for name, value in vars(args).items():
        if name == "worker" or value is None:
            continue
        if name == "app":
            value = load(value, "--app")
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
