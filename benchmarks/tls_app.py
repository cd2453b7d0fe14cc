"""The bench application (``.bench/peers/project_app.py``'s logic) over TLS: wss:// with a
certificate of a throwaway test CA (trustme), for what TLS costs per connection.

usage: tls_app.py PORT [flask]
"""
import os
import ssl
import sys

import trustme

from clusterws_gevent import ClusterWS, Mode


def worker(w):
    def connected(socket, environ):
        socket.on("ping", lambda data: socket.send("pong", data))

    w.wss.on("connection", connected)
    print(f"BENCH_READY pid={os.getpid()}", flush=True)


context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
trustme.CA().issue_cert("127.0.0.1", "localhost").configure_cert(context)
attach = {}
if len(sys.argv) > 2 and sys.argv[2] == "flask":
    from flask import Flask

    attach["app"] = Flask(__name__)
ClusterWS(worker=worker, port=int(sys.argv[1]), host="127.0.0.1", mode=Mode.Single, tls_options=context,
          **attach).run()
