"""``python -m clusterws_gevent TARGET [options]``: the command line, as gunicorn users expect it.

``TARGET`` is ``module:worker`` (the worker function), ``module:app`` (a Flask app whose
module registered its worker with ``ClusterWS(worker=..., app=app)``) or
``module:create_app()`` (a factory). Every other flag is generated from the option
declarations in ``options.py``; ``-b HOST:PORT``, ``-w N``, ``-c FILE`` (a Python file
setting ClusterWS keyword arguments: ``port = 8000``, ``websocket_options = {...}``) and
``$CLUSTERWS_CMD_ARGS`` (extra flags, as ``$GUNICORN_CMD_ARGS``) come on top.
gevent monkey-patches the standard library before the user's modules are imported, so
their blocking I/O cooperates with every socket.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import runpy
import shlex
import sys
from typing import Any, Dict, List, Optional

from . import loading
from .options import flag_of, iter_settings

__all__ = ["main", "build_parser", "options_from_args", "import_object", "ENV_ARGS"]

#: Extra command-line flags taken from the environment (placed before the real ones).
ENV_ARGS = "CLUSTERWS_CMD_ARGS"

_METAVARS = {"int": "N", "float": "SECONDS", "ints": "N,N", "strs": "A,B", "str": "TEXT", "object": "MODULE:OBJECT",
             "app": "MODULE:APP"}
#: How a flag of each kind turns its text into the option's value (None: the text as it is).
_READERS: Dict[str, Any] = {
    "int": int,
    "float": float,
    "ints": lambda text: tuple(int(part) for part in text.split(",") if part),
    "strs": lambda text: tuple(part for part in text.split(",") if part),
}


def import_object(spec: str, what: str) -> Any:
    """``package.module:attribute`` as the object it names; exits with the reason if it cannot."""
    try:
        return loading.import_object(spec, what)
    except loading.ImportFailed as exc:
        raise SystemExit(f"error: {exc}") from None


def _default_text(f: dataclasses.Field[Any]) -> str:
    shown = f.metadata.get("show_default")
    if shown:
        return str(shown)
    default = f.default if f.default is not dataclasses.MISSING else None
    if default is None or default == ():
        return ""
    return default.name.lower() if hasattr(default, "name") else str(default)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: one flag per option of ``options.py``, plus gunicorn's conveniences."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="python -m clusterws_gevent",
        description="Run a ClusterWS server: WebSockets (the worker function) and optionally a Flask app, on one "
                    "port, in one process or a master with workers.",
        epilog=f"Every option is described in docs/options.md. Extra flags may come from ${ENV_ARGS}.")
    parser.add_argument("target", metavar="MODULE:WORKER|MODULE:APP", help=(
        "the worker function (myapp:worker), or a Flask app (myapp:app, myapp:create_app()) whose module "
        "registered its worker with ClusterWS(worker=..., app=app)"))
    parser.add_argument("--version", action="version", version=f"clusterws-gevent {__version__}")
    parser.add_argument("-b", "--bind", metavar="HOST:PORT", help="address to listen on (sets --host and --port)")
    parser.add_argument("-c", "--config", metavar="FILE", help=(
        "a Python file setting ClusterWS keyword arguments (port = 8000, workers... see docs/options.md); "
        "flags override it"))
    for name, f, cli_prefix in iter_settings():
        flag = flag_of(name, f, cli_prefix)
        if flag is None:
            continue
        kind = f.metadata["kind"]  # declared with the option (options.KINDS)
        default = _default_text(f)
        help_text = f.metadata["help"].replace("%", "%%") + (f" (default: {default})" if default else "")
        kwargs: Dict[str, Any] = {"dest": name, "default": None, "help": help_text}
        flags = [f.metadata["short"], flag] if f.metadata.get("short") else [flag]
        if kind == "bool":
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["metavar"] = f.metadata.get("metavar") or _METAVARS[kind]
            kwargs["type"] = _READERS.get(kind)
        parser.add_argument(*flags, **kwargs)
    return parser


def options_from_args(args: argparse.Namespace) -> Dict[str, Any]:
    """The ClusterWS keyword arguments the parsed flags give (nested dicts for the groups),
    over those of ``--config``."""
    flags = {name: value for name, value in vars(args).items()
             if value is not None and name not in ("target", "bind", "config")}
    if args.bind:
        host, _, port = args.bind.rpartition(":")
        if not port.isdigit():
            raise SystemExit(f"error: -b/--bind takes HOST:PORT, got {args.bind!r}")
        flags.setdefault("host", host.strip("[]") or None)
        flags.setdefault("port", int(port))
    kwargs = _read_config(args.config) if args.config else {}
    mode = str(flags.get("mode") or kwargs.get("mode") or "scale")
    preload = flags.get("scale_options.preload", (kwargs.get("scale_options") or {}).get("preload", False))
    # Without --preload, Mode.Scale's master imports nothing of the app: each worker does,
    # after fork, so that SIGHUP serves the code on disk (loading.py).
    lazy = not preload and not mode.lower().endswith("single")
    target = loading.Target(args.target)
    if not lazy:
        try:
            target.load()
        except loading.ImportFailed as exc:
            raise SystemExit(f"error: {exc}") from None
    kwargs["worker"] = target.worker
    if target.may_be_app():
        kwargs.setdefault("app", target.app)
    kinds = {name: f.metadata["kind"] for name, f, _ in iter_settings()}
    for name, value in flags.items():
        if kinds.get(name) == "object":
            value = import_object(value, "--" + name.rsplit(".", 1)[-1].replace("_", "-"))
        elif kinds.get(name) == "app":  # imported where it is served: after fork, unless preloaded
            what = "--" + name.rsplit(".", 1)[-1].replace("_", "-")
            value = loading.LazyImport(value, what) if lazy else import_object(value, what)
        parts = name.split(".")
        into = kwargs
        for part in parts[:-1]:
            into = into.setdefault(part, {})
        into[parts[-1]] = value
    return kwargs


def _read_config(path: str) -> Dict[str, Any]:
    """The ClusterWS keyword arguments a config file sets (its public module-level names)."""
    from .cluster import ClusterWS

    try:
        names = runpy.run_path(path)
    except (OSError, SyntaxError) as exc:
        raise SystemExit(f"error: cannot read the config file {path!r}: {exc}") from None
    valid = set(ClusterWS.option_names())
    settings = {name: value for name, value in names.items() if not name.startswith("_") and name in valid}
    unknown = sorted(name for name, value in names.items() if not name.startswith("_") and name not in valid
                     and not callable(value) and not isinstance(value, type(sys)))
    if unknown:
        raise SystemExit(f"error: {path}: unknown option(s) {', '.join(unknown)}; valid: {', '.join(sorted(valid))}")
    return {name: dict(value) if isinstance(value, dict) else value for name, value in settings.items()}


def main(argv: Optional[List[str]] = None) -> None:
    """Entry point of ``python -m clusterws_gevent`` and ``clusterws-gevent``."""
    from gevent import monkey

    if not monkey.is_module_patched("socket"):
        monkey.patch_all()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(shlex.split(os.environ.get(ENV_ARGS, "")) + argv)
    from .cluster import ClusterWS
    from .exceptions import OptionError

    kwargs = options_from_args(args)
    try:
        cluster = ClusterWS(**kwargs)
    except OptionError as exc:
        raise SystemExit(f"error: {exc}") from None
    cluster.run()
