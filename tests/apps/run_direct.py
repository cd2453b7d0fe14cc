"""ClusterWS(...).run() from a script, as a Flask user writes it (camelCase options)."""
from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402

from apps.basic import worker  # noqa: E402
from apps.flask_site import app  # noqa: E402
from clusterws_gevent import ClusterWS, Mode  # noqa: E402

if __name__ == "__main__":
    ClusterWS(worker=worker, app=app, host="127.0.0.1", port=int(sys.argv[1]), mode=Mode.Single,
              websocketOptions={"wsPath": "/ws", "autoPing": False}).run()
