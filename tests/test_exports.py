"""The public surface: every module has __all__, the package re-exports the public names once."""
import importlib
import inspect
import pkgutil

import clusterws_gevent


def all_modules():
    for info in pkgutil.walk_packages(clusterws_gevent.__path__, "clusterws_gevent."):
        if info.name.endswith("__main__"):
            continue
        if info.name == "clusterws_gevent.gunicorn" and not _gunicorn_worker_importable():
            continue  # the optional extra: gunicorn (Python >= 3.10) and gevent >= 24.10.1
        yield importlib.import_module(info.name)


def _gunicorn_worker_importable():
    try:
        import gunicorn.workers.ggevent  # noqa: F401
    except (ImportError, RuntimeError):
        return False
    return True


def test_every_module_declares_all():
    missing = [m.__name__ for m in all_modules()
               if not hasattr(m, "__all__") and not m.__name__.endswith("__init__") and m.__file__ and
               not m.__file__.endswith("__init__.py")]
    assert missing == []


def test_package_exports_exist_and_are_unique():
    names = clusterws_gevent.__all__
    assert len(names) == len(set(names))
    for name in names:
        assert getattr(clusterws_gevent, name) is not None
    assert clusterws_gevent.Worker.__name__ == "Worker"


def test_every_public_name_has_a_docstring():
    undocumented = []
    for module in all_modules():
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            if (inspect.isclass(obj) or inspect.isfunction(obj)) and not (obj.__doc__ or "").strip():
                undocumented.append(f"{module.__name__}.{name}")
    assert undocumented == []
