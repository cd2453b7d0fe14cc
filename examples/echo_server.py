"""A raw WebSocket echo server through the clusterws_gevent API, for the Autobahn
conformance suite and the 1 MiB echo benchmark.

Echoes text as text and binary as binary, and sends nothing else (no
configuration message, no app-level pings). Messages up to 64 MiB (Autobahn 9.*).

    python examples/echo_server.py --port 9001 [--engine gevent-websocket] [--compression]
"""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402

from clusterws_gevent import ClusterWS, Mode  # noqa: E402


def worker(w):
    @w.wss.on("connection")
    def connected(socket, environ):
        socket.on("message", socket.send)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9001)
    parser.add_argument("--engine", default="builtin")
    parser.add_argument("--compression", action="store_true", help="negotiate permessage-deflate")
    args = parser.parse_args()
    ClusterWS(worker=worker, host=args.host, port=args.port, mode=Mode.Single,
              websocket_options={"engine": args.engine, "auto_ping": False, "send_configuration_message": False,
                                 "max_message_size": 64 << 20, "max_outbox_size": 64 << 20,
                                 "compression": args.compression}).run()


if __name__ == "__main__":
    main()
