"""``docs/options.md``, generated from the option declarations (``options.py``) by
``python scripts/gen_options_doc.py``; ``tests/unit/test_options.py`` fails when it is stale."""
from __future__ import annotations

import dataclasses

from .options import camel_case, flag_of, iter_settings

__all__ = ["markdown_table"]


def markdown_table() -> str:
    """``docs/options.md``: every option with its seed name, flag, default and description."""
    lines = [
        "# Options",
        "",
        "Generated from `clusterws_gevent/options.py` by `python scripts/gen_options_doc.py`;",
        "`tests/unit/test_options.py` fails when this file is out of date.",
        "",
        "Nested dict keys may be snake_case or the seed's camelCase.",
        "",
        "| option | seed name | flag | default | what it does |",
        "|---|---|---|---|---|",
    ]
    for name, f, cli_prefix in iter_settings():
        *parents, leaf = name.split(".")
        camel = ".".join([camel_case(part) for part in parents] + [f.metadata.get("camel") or camel_case(leaf)])
        cli = flag_of(name, f, cli_prefix) or ""
        if f.metadata.get("show_default"):
            default = f.metadata["show_default"]
        elif f.default is not dataclasses.MISSING:
            default = (f"{type(f.default).__name__}.{f.default.name}" if hasattr(f.default, "name")
                       else repr(f.default))
        else:
            default = repr(f.default_factory())  # type: ignore[operator]
        lines.append(f"| `{name}` | `{camel}` | {'`' + cli + '`' if cli else ''} | {default} "
                     f"| {f.metadata['help']} |")
    return "\n".join(lines) + "\n"
