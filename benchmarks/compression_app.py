"""The server of benchmarks/compression.sh: Mode.Single, an ``echo`` event, no app-level
pings; ``--compression`` turns permessage-deflate on.

    python benchmarks/compression_app.py PORT [--compression]
"""
from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402

from clusterws_gevent import ClusterWS, Mode  # noqa: E402


def worker(w):
    @w.wss.on("connection")
    def connected(socket, environ):
        socket.on("echo", lambda data: socket.send("echo", data))


if __name__ == "__main__":
    ClusterWS(worker=worker, host="127.0.0.1", port=int(sys.argv[1]), mode=Mode.Single,
              websocket_options={"auto_ping": False, "compression": "--compression" in sys.argv[2:],
                                 "max_connections": 20000}).run()
