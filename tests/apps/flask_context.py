"""A Flask app whose sockets use the request context the way views do: ``session``, ``g``,
``request``, ``current_app``, ``app.logger``, a teardown per request, a greenlet that copies
the context; reported as EVENT lines (``apps.basic.report``)."""
import gevent
from flask import Flask, copy_current_request_context, current_app, g, request, session

from apps.basic import live_greenlets, report

app = Flask(__name__)
app.secret_key = "test-secret"


@app.route("/login/<user>")
def login(user):
    session["user"] = user
    return "logged in"


@app.teardown_request
def request_ended(exc):
    report("teardown-request", socket=g.get("socket_id"), user=session.get("user"))


@app.teardown_appcontext
def app_context_ended(exc):
    report("teardown-appcontext", socket=g.get("socket_id"))


def worker(w):
    @w.wss.on("connection")
    def connected(socket, environ):
        g.socket_id = socket.id
        g.messages = 0

        @socket.on("context")
        def context(data):
            g.messages += 1
            app.logger.warning("a listener of %s logs through the app's logger", session.get("user"))
            socket.send("context", {"user": session.get("user"), "path": request.path, "g_messages": g.messages,
                                    "app": current_app.name, "seen": session.get("seen"), "id": g.socket_id})

        @socket.on("remember")
        def remember(data):
            session["seen"] = data  # the socket's later listeners see it (not saved to a cookie)

        @socket.on("block")
        def block(seconds):
            gevent.sleep(seconds)  # a listener blocking on I/O: only this socket's later messages wait
            socket.send("blocked", seconds)

        @socket.on("spawn")
        def spawn(data):
            @copy_current_request_context
            def in_a_greenlet():
                socket.send("spawned", {"user": session.get("user"), "id": g.get("socket_id")})

            gevent.spawn(in_a_greenlet)

        socket.on("greenlets", lambda data: socket.send("greenlets", live_greenlets()))
        socket.on("close", lambda code, reason: report("close", socket=socket.id, code=code))
