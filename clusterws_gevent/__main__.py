"""``python -m clusterws_gevent``: patch the standard library first, then run the command line."""
from gevent import monkey

monkey.patch_all()

from clusterws_gevent.cli import main  # noqa: E402

main()
