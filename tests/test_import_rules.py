"""Layering and import order, checked in fresh interpreters."""
import subprocess
import sys


def run(code):
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_the_codec_is_sans_io():
    loaded = run("import sys, clusterws_gevent.protocol as p, clusterws_gevent.pubsub.channels; "
                 "print(sorted(m for m in ('gevent', 'flask', 'redis', 'ssl', 'geventwebsocket') "
                 "if m in sys.modules))")
    assert loaded == "[]"


def test_the_codec_source_imports_no_io():
    import ast
    from pathlib import Path

    import clusterws_gevent.protocol

    forbidden = {"gevent", "socket", "flask", "redis", "ssl", "geventwebsocket", "select", "selectors"}
    for path in Path(clusterws_gevent.protocol.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            for name in names:
                assert name.split(".")[0] not in forbidden, f"{path.name} imports {name}"


def test_importing_the_package_leaves_monkey_patching_possible():
    # python -m clusterws_gevent imports the package, then patches: nothing that must be
    # patched first (ssl, flask, concurrent.futures) may be imported by the package itself.
    loaded = run("import sys, clusterws_gevent; "
                 "print(sorted(m for m in ('ssl', 'flask', 'concurrent.futures', 'redis', 'geventwebsocket') "
                 "if m in sys.modules))")
    assert loaded == "[]"


def test_gevent_websocket_is_imported_only_by_its_engine():
    loaded = run("import sys; from clusterws_gevent.process.worker import Worker; "
                 "print('geventwebsocket' in sys.modules)")
    assert loaded == "False"


def test_cli_patches_without_warnings():
    result = subprocess.run([sys.executable, "-W", "error", "-m", "clusterws_gevent", "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "MonkeyPatchWarning" not in result.stderr
    assert "--ping-interval" in result.stdout
