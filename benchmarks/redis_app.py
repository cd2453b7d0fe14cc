"""The bench application (``.bench/peers/project_app.py``'s logic) in Mode.Scale joined by the
Redis a URL names (one Redis, or a cluster: ``redis+cluster://``).

usage: redis_app.py PORT WORKERS REDIS_URL
"""
import os
import sys

from gevent import monkey

monkey.patch_all()  # redis-py needs the patched stdlib under gevent

from clusterws_gevent import ClusterWS, Mode, Scaler  # noqa: E402


def worker(w):
    def connected(socket, environ):
        socket.on("ping", lambda data: socket.send("pong", data))

    w.wss.on("connection", connected)
    print(f"BENCH_READY pid={os.getpid()}", flush=True)


ClusterWS(worker=worker, port=int(sys.argv[1]), host="127.0.0.1", mode=Mode.Scale,
          scale_options={"workers": int(sys.argv[2]), "scaler": Scaler.Redis, "redis": sys.argv[3]}).run()
