"""Regenerate docs/options.md from the option declarations (clusterws_gevent/options.py)."""
from pathlib import Path

from clusterws_gevent.options_doc import markdown_table

path = Path(__file__).resolve().parents[1] / "docs" / "options.md"
path.write_text(markdown_table())
print(f"wrote {path}")
