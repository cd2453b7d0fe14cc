"""The pub/sub application of the tests: channels, the seven middleware kinds, server-side subscribe.

onSubscribe declines ``private-*`` channels, answers ``slow-*`` later from another
greenlet, never answers ``never-*``, and raises for ``boom-*``. onPublish refuses a
client's publish to ``readonly-*`` and answers ``later-*`` from another greenlet.
Middleware calls are reported as ``EVENT`` lines (see apps.basic.report).
"""
import os
from urllib.parse import parse_qs

import gevent

from apps.basic import install, report
from clusterws_gevent import Middleware


def worker(w):
    wss = w.wss
    crash_flag = os.environ.get("TEST_CRASH_FLAG")
    if crash_flag and os.path.exists(crash_flag):
        raise RuntimeError("crashing on start on purpose (the flag file exists)")

    @wss.middleware(Middleware.onSubscribe)
    def on_subscribe(socket, channel, next):
        report("onSubscribe", id=socket.id, channel=channel)
        if channel.startswith("private-"):
            next(False)
        elif channel.startswith("slow-"):
            gevent.spawn_later(0.2, next, True)
        elif channel.startswith("never-"):
            pass
        elif channel.startswith("boom-"):
            raise RuntimeError("onSubscribe failure on purpose")
        else:
            next(True)

    @wss.middleware(Middleware.onPublish)
    def on_publish(socket, channel, message, next):
        report("onPublish", id=socket.id, channel=channel, message=message)
        if channel.startswith("later-"):
            gevent.spawn_later(0.1, next, True)
        else:
            next(not channel.startswith("readonly-"))

    wss.add_middleware(Middleware.onUnsubscribe,
                       lambda socket, channel: report("onUnsubscribe", id=socket.id, channel=channel))
    wss.add_middleware(Middleware.onChannelOpen, lambda channel: report("onChannelOpen", channel=channel))
    wss.add_middleware(Middleware.onChannelClose, lambda channel: report("onChannelClose", channel=channel))
    wss.add_middleware(Middleware.onWorkerMessage, lambda message: report("onWorkerMessage", message=message))

    @wss.on("connection")
    def connected(socket, environ):
        query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        install(socket, query, wss)
        socket.on("server-subscribe", lambda channels: socket.send("subscribed", socket.subscribe(channels)))
        socket.on("server-unsubscribe", lambda channel: socket.send("unsubscribed", socket.unsubscribe(channel)))
        socket.on("channels", lambda data: socket.send("channels", sorted(socket.channels)))
        socket.on("to-workers", lambda message: wss.publish_to_workers(message))
        socket.on("burst", lambda data: [wss.publish(data["channel"], {"i": i, "pad": "x" * data["size"]}
                                                     if data.get("size") else i) for i in range(data["count"])])

        @socket.on("hang")
        def hang(data):
            while True:  # CPU-bound forever: the worker's event loop never runs again
                pass
        if query.get("fake_config"):
            # a configuration message promising pings that never come (client watchdog test)
            socket.send('["s","c",{"autoPing":true,"pingInterval":200}]')
