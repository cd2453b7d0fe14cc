"""``python -m clusterws_gevent TARGET [options]``: the command line, as gunicorn users expect it.

``TARGET`` is ``module:worker`` (the worker function), ``module:app`` (a Flask app whose
module registered its worker with ``ClusterWS(worker=..., app=app)``) or
``module:create_app()`` (a factory). Every other flag is generated from the option
declarations in ``options.py``; ``-b HOST:PORT``, ``-w N``, ``-c FILE`` (a Python file
setting ClusterWS keyword arguments or the flags' names: ``port = 8000``,
``workers = 2``, ``bind = "127.0.0.1:8000"``, ``websocket_options = {...}``) and
``$CLUSTERWS_CMD_ARGS`` (extra flags, as ``$GUNICORN_CMD_ARGS``) come on top.
Without an address it listens on 127.0.0.1:8000, as gunicorn does: this machine only.
gevent monkey-patches the standard library before the user's modules are imported, so
their blocking I/O cooperates with every socket.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import pickle
import runpy
import shlex
import signal
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Tuple

from . import loading, registry
from .options import flag_of, iter_settings

__all__ = ["main", "build_parser", "options_from_args", "import_object", "parse_bind", "ENV_ARGS",
           "DEFAULT_HOST", "DEFAULT_PORT"]

#: Extra command-line flags taken from the environment (placed before the real ones).
ENV_ARGS = "CLUSTERWS_CMD_ARGS"
#: Where the command line listens when told nothing (gunicorn's default): this machine only.
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000

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


class _Parser(argparse.ArgumentParser):
    """Errors in two lines, not the usage's forty; a bad flag from ``$CLUSTERWS_CMD_ARGS`` says so."""

    from_environment: List[str] = []

    def error(self, message: str) -> Any:
        flags = [token.split("=")[0] for token in self.from_environment if token.startswith("-")]
        if any(flag in message for flag in flags):
            message += f" (from ${ENV_ARGS}: {' '.join(self.from_environment)})"
        self.exit(2, f"{self.prog}: error: {message}\n(python -m clusterws_gevent --help lists every flag)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: one flag per option of ``options.py``, plus gunicorn's conveniences."""
    from . import __version__

    parser = _Parser(
        prog="python -m clusterws_gevent",
        description="Run a ClusterWS server: WebSockets (the worker function) and optionally a Flask app, on one "
                    "port, in one process or a master with workers.",
        epilog=f"Every option is described in docs/options.md. Extra flags may come from ${ENV_ARGS}.")
    parser.add_argument("target", metavar="MODULE:WORKER|MODULE:APP", help=(
        "the worker function (myapp:worker), or a Flask app (myapp:app, myapp:create_app()) whose module "
        "registered its worker with ClusterWS(worker=..., app=app)"))
    parser.add_argument("--version", action="version", version=f"clusterws-gevent {__version__}")
    parser.add_argument("-b", "--bind", metavar="HOST:PORT", help=(
        f"address to listen on (sets --host and --port; default {DEFAULT_HOST}:{DEFAULT_PORT}, this machine only: "
        f"0.0.0.0:PORT listens on every interface)"))
    parser.add_argument("-c", "--config", metavar="FILE", help=(
        "a Python file setting options by their flags' names (bind = '127.0.0.1:8000', workers = 2, "
        "redis_url = ...) or ClusterWS's keyword arguments (scale_options = {...}; docs/options.md); "
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


def parse_bind(bind: str) -> Tuple[str, int]:
    """``-b``'s ``HOST:PORT``, ``[IPv6]:PORT`` or ``HOST`` (port 8000), as gunicorn reads them.

    Raises:
        SystemExit: a bare port (gunicorn would read it as a host name), or not an address.
    """
    if bind.isdigit():
        raise SystemExit(f"error: -b {bind}: a bare number is a host name in gunicorn's syntax; write "
                         f"-b {DEFAULT_HOST}:{bind} (this machine) or -b 0.0.0.0:{bind} (every interface)")
    if bind.startswith("["):
        host, _, port = bind[1:].partition("]")
        port = port[1:] if port.startswith(":") else str(DEFAULT_PORT)
    elif ":" in bind:
        host, _, port = bind.rpartition(":")
    else:
        host, port = bind, str(DEFAULT_PORT)
    if not port.isdigit():
        raise SystemExit(f"error: -b/--bind takes HOST:PORT, got {bind!r}")
    return host, int(port)


def options_from_args(args: argparse.Namespace) -> Dict[str, Any]:
    """The ClusterWS keyword arguments the parsed flags give (nested dicts for the groups),
    over those of ``--config``; without an address, :data:`DEFAULT_HOST`:``DEFAULT_PORT``."""
    flags = {name: value for name, value in vars(args).items()
             if value is not None and name not in ("target", "bind", "config")}
    config = _read_config(args.config) if args.config else {}
    bind = args.bind or config.pop("bind", None)
    if bind:
        host, port = parse_bind(str(bind))
        flags.setdefault("host", host)
        flags.setdefault("port", port)
    mode = str(flags.get("mode") or config.get("mode") or "scale")
    preload = flags.get("scale_options.preload", (config.get("scale_options") or {}).get("preload", False))
    # Without --preload, Mode.Scale's master imports nothing of the app: each worker does,
    # after fork, so that SIGHUP serves the code on disk (loading.py).
    lazy = not preload and not mode.lower().endswith("single")
    target = loading.Target(args.target)
    try:
        # the module's own ClusterWS(...) keywords, under the config file's, under the flags
        kwargs = _merged(_module_options(target, lazy), config)
        if "host" not in flags and kwargs.get("host") is None:
            flags["host"] = DEFAULT_HOST
        if "port" not in flags and kwargs.get("port") is None:
            flags["port"] = DEFAULT_PORT
        kwargs["worker"] = target.worker
        if target.may_be_app():
            kwargs.setdefault("app", target.app)
    except loading.ImportFailed as exc:
        raise SystemExit(f"error: {exc}") from None
    kinds = {name: f.metadata["kind"] for name, f, _ in iter_settings()}
    for name, value in flags.items():
        if kinds.get(name) == "object":
            value = import_object(value, "--" + name.rsplit(".", 1)[-1].replace("_", "-"))
        elif kinds.get(name) == "app":  # imported where it is served: after fork, unless preloaded
            what = "--" + name.rsplit(".", 1)[-1].replace("_", "-")
            value = loading.LazyImport(value, what) if lazy else import_object(value, what)
        _set(kwargs, name, value)
    return kwargs


def _module_options(target: loading.Target, lazy: bool) -> Dict[str, Any]:
    """The keywords the target's module gave its own ``ClusterWS(worker=..., app=app, ...)``
    (but the worker, the app and the mode): the command line serves with them, under its
    config file and flags. Without ``--preload`` the master must not import the app (its workers do,
    after fork, so that SIGHUP serves the code on disk): a forked child imports it and
    sends them back (those that pickle; the others are named on stderr)."""
    if not lazy:
        return _given_of(target.load())
    with tempfile.NamedTemporaryFile(prefix="clusterws-options-") as answer:
        # (a file, not a pipe: after gevent's fork the parent's copy of a pipe's write end stayed open)
        pid = os.fork()
        if pid == 0:  # the child: import, answer, leave without running anything of ours
            try:
                payload = pickle.dumps(_picklable(target.spec, _given_of(target.load())))
            except BaseException:  # the workers import it again and report what fails
                payload = pickle.dumps({})
            with open(answer.name, "wb") as out:
                out.write(payload)
            os._exit(0)
        _wait_child(pid, target.spec)
        data = answer.read()
    options: Dict[str, Any] = pickle.loads(data) if data else {}  # noqa: S301 - our own child's answer
    return options


#: Seconds the child that reads a module's own options may take (importing the app).
MODULE_OPTIONS_TIMEOUT = 60.0


def _wait_child(pid: int, spec: str) -> None:
    """Until the child ``pid`` exited, polling the real ``waitpid`` (not gevent's, which waits
    for a SIGCHLD through the event loop: a start hung with an empty log twice in CI, and
    this wait was the one unbounded one); after :data:`MODULE_OPTIONS_TIMEOUT`, it is killed
    and the module's options are not used (said on stderr)."""
    from gevent import monkey

    waitpid = monkey.get_original("os", "waitpid")
    deadline = time.monotonic() + MODULE_OPTIONS_TIMEOUT
    while True:
        try:
            if waitpid(pid, os.WNOHANG)[0]:
                return
        except ChildProcessError:  # reaped already (gevent's child watcher reaps any child)
            return
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            print(f"clusterws-gevent: {spec}: importing it to read its ClusterWS(...) options took over "
                  f"{MODULE_OPTIONS_TIMEOUT:.0f}s; serving without them (give them with -c FILE or --preload)",
                  file=sys.stderr, flush=True)
            return
        time.sleep(0.005)


def _given_of(obj: Any) -> Dict[str, Any]:
    registered = getattr(obj, "extensions", {}).get("clusterws") if isinstance(getattr(obj, "extensions", None),
                                                                                dict) else None
    given = getattr(registered, "given_options", None) or {}
    # the process model is the command line's (a master and workers unless --mode single)
    return {name: _as_dict(value) for name, value in given.items() if name not in ("worker", "app", "mode")}


def _as_dict(value: Any) -> Any:
    """An option group given as an instance, as the dict of its fields (flags can then set one)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value) if not f.name.startswith("_")}
    return value


def _picklable(spec: str, options: Dict[str, Any]) -> Dict[str, Any]:
    kept = {}
    for name, value in options.items():
        try:
            pickle.dumps(value)
            kept[name] = value
        except Exception:
            print(f"clusterws-gevent: {spec}: ClusterWS({name}=...) cannot reach the master without --preload; "
                  f"give it with -c FILE or --preload", file=sys.stderr, flush=True)
    return kept


def _merged(base: Dict[str, Any], over: Dict[str, Any]) -> Dict[str, Any]:
    """``over`` on ``base``, option groups merged key by key."""
    merged = dict(base)
    for name, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(name), dict):
            merged[name] = _merged(merged[name], value)
        else:
            merged[name] = value
    return merged


def _set(kwargs: Dict[str, Any], dotted: str, value: Any) -> None:
    """``kwargs["a"]["b"] = value`` for ``a.b``."""
    parts = dotted.split(".")
    into = kwargs
    for part in parts[:-1]:
        into = into.setdefault(part, {})
    into[parts[-1]] = value


def _flat_names() -> Dict[str, str]:
    """A config file's flag-like names (``workers``, ``redis_url``...) and the options they set."""
    names = {}
    for name, f, prefix in iter_settings():
        flag = flag_of(name, f, prefix)
        if flag is not None and "." in name:
            names[flag[2:].replace("-", "_")] = name
    return names


def _read_config(path: str) -> Dict[str, Any]:
    """The ClusterWS keyword arguments a config file sets (its public module-level names)."""
    from .cluster import ClusterWS

    try:
        names = runpy.run_path(path)
    except (OSError, SyntaxError) as exc:
        raise SystemExit(f"error: cannot read the config file {path!r}: {exc}") from None
    valid = set(ClusterWS.option_names()) | {"bind"}
    flat = _flat_names()
    public = {name: value for name, value in names.items() if not name.startswith("_")
              and not callable(value) and not isinstance(value, type(sys))}
    unknown = sorted(name for name in public if name not in valid and name not in flat)
    if unknown:
        raise SystemExit(f"error: {path}: unknown option(s) {', '.join(unknown)}; valid: a flag's name "
                         f"({', '.join(sorted(flat)[:6])}...: python -m clusterws_gevent --help) or one of "
                         f"{', '.join(sorted(valid))}")
    settings: Dict[str, Any] = {}
    for name, value in public.items():
        if name in valid:
            settings[name] = dict(value) if isinstance(value, dict) else value
    for name, value in public.items():
        if name not in valid:  # a flag's name: the nested option it sets, over a group given whole
            _set(settings, flat[name], value)
    return settings


def main(argv: Optional[List[str]] = None) -> None:
    """Entry point of ``python -m clusterws_gevent`` and ``clusterws-gevent``."""
    from gevent import monkey

    if not monkey.is_module_patched("socket"):
        monkey.patch_all()
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    environment = shlex.split(os.environ.get(ENV_ARGS, ""))
    _Parser.from_environment = environment
    args = parser.parse_args(environment + argv)
    from .cluster import ClusterWS
    from .exceptions import OptionError

    # The app's module may call ClusterWS(...).run() at import, for `python myapp.py`: from
    # here on that run() is a no-op (a warning), and this command serves (cluster.py).
    registry.command_line = True
    kwargs = options_from_args(args)
    try:
        cluster = ClusterWS(**kwargs)
    except OptionError as exc:
        raise SystemExit(f"error: {exc}") from None
    registry.command_line = cluster
    host, port = cluster.options.host, cluster.options.port
    if host in (DEFAULT_HOST, "localhost", "::1"):
        print(f"clusterws-gevent: listening on {host}:{port}, this machine only (-b 0.0.0.0:{port} serves every "
              "interface)", file=sys.stderr, flush=True)
    cluster.run()
