"""Options: declared once, validated at construction, one flag each, documented."""
import logging
import ssl
from pathlib import Path

import pytest

from clusterws_gevent import ClusterWS, LogLevel, Mode, OptionError, Scaler
from clusterws_gevent.cli import build_parser, options_from_args
from clusterws_gevent.log import make_log
from clusterws_gevent.options import Options, flag_of, iter_settings
from clusterws_gevent.options_doc import markdown_table


def worker(w):
    pass


def test_nested_dicts_take_snake_case_and_seed_camel_case_keys():
    camel = ClusterWS(worker=worker, websocketOptions={"wsPath": "/ws", "pingInterval": 1000, "autoPing": False},
                      scaleOptions={"restartOnFail": True, "default": {"brokers": 2, "brokersPorts": [9500, 9501]}})
    snake = ClusterWS(worker=worker, websocket_options={"ws_path": "/ws", "ping_interval": 1000, "auto_ping": False},
                      scale_options={"restart_on_fail": True, "default": {"brokers": 2, "brokers_ports": [9500, 9501]}})
    assert camel.options == snake.options
    assert camel.options.websocket_options.ws_path == "/ws"
    assert camel.options.scale_options.default.brokers_ports == (9500, 9501)


def test_defaults_follow_the_seed():
    options = ClusterWS(worker=worker).options
    assert options.mode is Mode.Scale and options.port == 80 and options.host is None
    ws = options.websocket_options
    assert (ws.engine, ws.ws_path, ws.auto_ping, ws.ping_interval, ws.send_configuration_message) == (
        "builtin", None, True, 20000, True)
    assert ws.max_message_size == 1 << 20
    assert options.logger_options.log_level is LogLevel.INFO
    assert options.scale_options.scaler is Scaler.Default and options.scale_options.workers == 1
    assert options.scale_options.default.brokers_ports is None  # private Unix sockets


def test_enums_accept_seed_and_python_names():
    assert Mode.Single is Mode.SINGLE
    assert ClusterWS(worker=worker, mode="single").options.mode is Mode.Single
    options = ClusterWS(worker=worker, logger_options={"logLevel": "debug"}).options
    assert options.logger_options.log_level is LogLevel.DEBUG
    options = ClusterWS(worker=worker, websocket_options={"engine": "@clusterws/ws"}).options
    assert options.websocket_options.engine == "builtin"


@pytest.mark.parametrize("kwargs, error_type, words", [
    ({"worker": 42}, TypeError, ["worker", "Worker is not provided or is not a function"]),
    ({}, TypeError, ["worker", "Worker is not provided"]),
    ({"worker": worker, "scale_options": {"default": {"brokers": 2, "brokers_ports": [9400]}}}, ValueError,
     ["scale_options.default.brokers_ports", "Number of broker ports is not the same as number of brokers"]),
    ({"worker": worker, "websocket_options": {"engine": "uws"}}, ValueError,
     ["websocket_options.engine", "unknown engine 'uws'", "builtin", "gevent-websocket"]),
    ({"worker": worker, "websocket_options": {"pingInterval": 0}}, ValueError, ["websocket_options.ping_interval"]),
    ({"worker": worker, "websocket_options": {"wsPath": "ws"}}, ValueError, ["websocket_options.ws_path", "'/'"]),
    ({"worker": worker, "websocket_options": {"bogus": 1}}, ValueError, ["websocket_options.bogus", "unknown option"]),
    ({"worker": worker, "mode": "cluster"}, ValueError, ["mode", "Mode.Single", "Mode.Scale"]),
    ({"worker": worker, "port": 70000}, ValueError, ["port"]),
    ({"worker": worker, "app": "not callable"}, TypeError, ["app"]),
    ({"worker": worker, "logger_options": {"logger": object()}}, TypeError, ["logger_options.logger"]),
    ({"worker": worker, "tls_options": {"certfile": "/nonexistent.pem"}}, ValueError, ["tls_options.certfile"]),
    ({"worker": worker, "scale_options": {"scaler": "redis"}}, ValueError, ["scale_options.redis"]),
    ({"worker": worker, "bogus": 1}, TypeError, ["bogus", "unknown option"]),
])
def test_bad_options_fail_at_construction_naming_the_option(kwargs, error_type, words):
    with pytest.raises(OptionError) as info:
        ClusterWS(**kwargs)
    assert isinstance(info.value, error_type)
    for word in words:
        assert word in str(info.value)


def test_loggers_with_warn_instead_of_warning_are_accepted_and_get_formatted_messages():
    class SeedLogger:
        def __init__(self):
            self.lines = []

        def debug(self, m): self.lines.append(("debug", m))
        def info(self, m): self.lines.append(("info", m))
        def warn(self, m): self.lines.append(("warn", m))
        def error(self, m): self.lines.append(("error", m))

    seed = SeedLogger()
    options = ClusterWS(worker=worker, logger_options={"logger": seed, "log_level": LogLevel.DEBUG}).options
    log = make_log(options.logger_options.logger, options.logger_options.log_level)
    log.warning("socket %s: outbox full", "abc")
    log.info("%d worker(s)", 2)
    assert seed.lines == [("warn", "socket abc: outbox full"), ("info", "2 worker(s)")]
    assert ClusterWS(worker=worker, logger_options={"logger": logging.getLogger("x")}).options.logger_options.logger \
        is logging.getLogger("x")


def test_tls_port_defaults_to_443_and_takes_an_sslcontext():
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    options = ClusterWS(worker=worker, tls_options=context).options
    assert options.port == 443 and options.tls_options is context


def test_every_option_has_a_flag_and_the_flags_round_trip():
    flags = {flag_of(name, f, prefix) for name, f, prefix in iter_settings()} - {None}
    parser = build_parser()
    assert flags <= set(parser._option_string_actions)
    # options without a flag are the worker (positional), groups taken from their flags,
    # the seed's PEM-text alternatives to certfile/keyfile, and channel namespaces (--channel-options JSON)
    no_flag = {name for name, f, prefix in iter_settings() if flag_of(name, f, prefix) is None}
    assert no_flag <= {"worker", "tls_options", "channel_options.namespaces", "tls_options.cert", "tls_options.key",
                       "scale_options.default.horizontal_scale_options",
                       "scale_options.default.horizontal_scale_options.master_options",
                       "scale_options.default.horizontal_scale_options.master_options.tls_options",
                       "scale_options.default.horizontal_scale_options.master_options.tls_options.cert",
                       "scale_options.default.horizontal_scale_options.master_options.tls_options.key"}
    args = parser.parse_args(["unit.test_options:worker", "--mode", "single", "--port", "8000", "--ws-path", "/ws",
                              "--no-auto-ping", "--ping-interval", "500", "--workers", "3", "--brokers", "2",
                              "--brokers-ports", "9500,9501", "--log-level", "debug", "--max-message-size", "1000"])
    options = Options(**options_from_args(args))
    assert options.mode is Mode.Single and options.port == 8000
    assert options.websocket_options.ws_path == "/ws" and options.websocket_options.auto_ping is False
    assert options.websocket_options.ping_interval == 500 and options.websocket_options.max_message_size == 1000
    assert options.scale_options.workers == 3 and options.scale_options.default.brokers_ports == (9500, 9501)
    assert options.logger_options.log_level is LogLevel.DEBUG


def test_docs_options_md_is_generated_from_the_declarations():
    path = Path(__file__).resolve().parents[2] / "docs" / "options.md"
    assert path.read_text() == markdown_table(), "run: python scripts/gen_options_doc.py"


def test_clusterws_takes_one_keyword_per_top_level_option_derived_from_the_declarations():
    import dataclasses
    import inspect

    parameters = inspect.signature(ClusterWS).parameters
    declared = [f.name for f in dataclasses.fields(Options)]
    assert [name for name in parameters if name != "seed_options"] == declared
    assert all(parameters[name].kind is inspect.Parameter.KEYWORD_ONLY for name in declared[1:])
    assert all(parameters[name].default is None for name in declared)


def test_every_flag_comes_from_a_declaration_short_flags_and_metavars_included():
    actions = {action.dest: action for action in build_parser()._actions}
    assert "-w" in actions["scale_options.workers"].option_strings  # the declaration's `short`
    assert actions["mode"].metavar == "single|scale"  # from the enum the validator checks
    assert actions["scale_options.scaler"].metavar == "default|redis"
    import inspect

    source = inspect.getsource(build_parser)
    for name, _f, _ in iter_settings():  # the parser names no option: every rule is in options.py
        assert f'"{name}"' not in source, name
