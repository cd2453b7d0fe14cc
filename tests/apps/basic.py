"""The application the integration tests run in a subprocess.

Behaviour per connection comes from the query string of the upgrade request
(``?error_listener=1``, ``?message_listener=1``, ...) and from the events the
client emits. What happens on the server side is reported as ``EVENT {json}``
lines on stdout, which the tests wait for.
"""
import json
import os
import sys
from urllib.parse import parse_qs

import gevent
from gevent import monkey

from clusterws_gevent import Middleware

#: What the user's module saw when it was imported (the CLI patches first).
PATCHED_AT_IMPORT = monkey.is_module_patched("socket")


def report(kind, **fields):
    sys.stdout.write("EVENT " + json.dumps(dict(fields, kind=kind, pid=os.getpid())) + "\n")
    sys.stdout.flush()


def worker(w):
    wss = w.wss
    report("worker", patched_at_import=PATCHED_AT_IMPORT, has_app=w.app is not None)
    if os.environ.get("TEST_VERIFY"):
        install_verify(wss, os.environ["TEST_VERIFY"])
    if os.environ.get("TEST_ALL_MIDDLEWARE"):
        for kind in (Middleware.verifyConnection, Middleware.onSubscribe):
            wss.add_middleware(kind, lambda *args: args[-1](True))
        for kind in (Middleware.onUnsubscribe, Middleware.onChannelOpen, Middleware.onChannelClose,
                     Middleware.onWorkerMessage):
            wss.add_middleware(kind, lambda *args, kind=kind: report("middleware", name=kind.value))
        report("middleware-installed", kinds=sorted(k.value for k in wss._middleware))

    @wss.on("connection")
    def connected(socket, environ):
        query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        report("connection", id=socket.id, path=environ.get("PATH_INFO"), query=query,
               ready_state=int(socket.ready_state))
        install(socket, query, wss)


def history_reply(history):
    return {"messages": history.messages, "offset": history.offset, "epoch": history.epoch}


def install(socket, query, wss):
    if query.get("user"):
        socket.user = query["user"]  # what presence says of the socket
    @socket.on("echo")
    def echo(data):
        socket.send("echo", data)

    socket.on("raw", lambda data: socket.send(data))
    socket.on("raw-bytes", lambda data: socket.send(data.encode("utf-8")))
    socket.on("close-me", lambda data: socket.close(data["code"], data["reason"]))
    socket.on("terminate-me", lambda data: socket.terminate())
    socket.on("state", lambda data: socket.send("state", {"ready_state": int(socket.ready_state), "id": socket.id}))
    socket.on("publish", lambda data: wss.publish(data["channel"], data["data"]))
    socket.on("whoami", lambda data: socket.send("whoami", os.getpid()))
    socket.on("history", lambda data: socket.send("history", history_reply(
        wss.history(data["channel"], data.get("limit")))))
    socket.on("presence", lambda data: socket.send("presence", wss.presence(data["channel"])))
    socket.on("presence-stats", lambda data: socket.send("presence-stats", wss.presence_stats(data["channel"])))
    socket.on("stats", lambda data: socket.send("stats", wss.hub.connector.stats()))
    socket.on("process", lambda data: socket.process_message(data))  # a decoded list
    socket.on("environ-keys", lambda data: socket.send("environ-keys", flask_environ_keys()))
    socket.on("greenlets", lambda data: socket.send("greenlets", live_greenlets()))

    @socket.on("hold")
    def hold(data):  # a listener that blocks 1 s with a large message in hand
        gevent.sleep(1)
        report("held", items=len(data))

    @socket.on("sleep")
    def sleep(seconds):
        gevent.sleep(seconds)  # stands for blocking I/O in a listener (a query, an HTTP call)
        socket.send("slept", seconds)

    @socket.on("boom")
    def boom(data):
        raise RuntimeError("listener failure on purpose")

    @socket.on("two-writers")
    def two_writers(data):
        # Two greenlets write large frames to one socket at once: frames must not interleave.
        size, count = data["size"], data["count"]

        def write(tag):
            for i in range(count):
                socket.send(tag * size + str(i))

        gevent.joinall([gevent.spawn(write, "a"), gevent.spawn(write, "b")])

    @socket.on("flood")
    def flood(data):
        # Writes until the outbox refuses (the client does not read).
        sent = 0
        payload = "x" * data["size"]
        for _ in range(data["count"]):
            if not socket.send(payload):
                break
            sent += 1
        report("flood-done", id=socket.id, sent=sent)

    socket.on("pong", lambda: report("pong", id=socket.id))
    socket.on("close", lambda code, reason: report("close", id=socket.id, code=code, reason=reason))
    if query.get("error_listener"):
        socket.on("error", lambda error: report("error", id=socket.id, message=str(error), type=type(error).__name__,
                                                close_code=getattr(error, "close_code", None)))
    if query.get("message_listener"):
        @socket.on("message")
        def message(msg):
            report("message", id=socket.id, text=msg if isinstance(msg, str) else None,
                   binary=msg.hex() if isinstance(msg, bytes) else None)
            if msg != "[\"e\",\"blocked\",null]":
                socket.process_message(msg)


def flask_environ_keys():
    """The keys of the Flask request's environ, in the socket's request context (Flask mode)."""
    from flask import has_request_context, request

    return sorted(request.environ) if has_request_context() else None


def install_verify(wss, mode):
    @wss.middleware(Middleware.verifyConnection)
    def verify(info, next):
        cookies = info.cookies
        report("verify", origin=info.origin, secure=info.secure, path=info.environ.get("PATH_INFO"),
               cookies=cookies, session=dict(info.session) if info.session is not None else None)
        if mode == "reject":
            next(False)
        elif mode == "reject-403":
            next(False, 403, "not in the guest list")
        elif mode == "later":
            gevent.spawn_later(0.2, next, info.environ.get("HTTP_X_ALLOW") == "yes")
        elif mode == "never":
            pass
        elif mode == "session":
            next(info.session is not None and "user" in info.session)
        else:
            next(True)


def live_greenlets():
    """How many greenlets this process holds (an idle parked socket holds none)."""
    import gc

    import greenlet

    return sum(1 for obj in gc.get_objects() if isinstance(obj, greenlet.greenlet) and not obj.dead)
