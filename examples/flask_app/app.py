"""A Flask site with realtime chat: Flask serves the pages, ClusterWS the WebSockets, on one port.

    python examples/flask_app/app.py            # http://127.0.0.1:5000 (Mode.Single)
    python examples/flask_app/app.py --port 8000 --mode scale --workers 2
    python examples/flask_app/app.py --redis redis://127.0.0.1:6379/0    # history survives restarts

- Log in with a name (a Flask session). The WebSocket upgrade is refused for
  visitors without a session (verifyConnection sees the same session the views do).
- The page subscribes to the channel "chat"; a message published there reaches
  everyone, the sender included (as in ClusterWS).
- The channel keeps its last 50 messages (``channel_options``): the page is rendered with
  them and subscribes from their position, so a message published in between is not
  missed; a page that reconnects (a network change, a server restart) gets what it
  missed (recovery). Where that is not possible (the history was lost: kept in the
  process, or the brokers, it does not survive a restart of the server; with ``--redis``
  it does), the page reloads itself.
- Who is in the room: ``/who`` (presence, over every worker).
- The "echo" event answers the sender only.
- Clients may not publish to "chat" themselves (``onPublish``): a message goes through the
  "say" listener, which attributes it to the session's name and caps its length.
- ``SECRET_KEY`` signs the session cookie: the app refuses to start without it, unless
  ``FLASK_DEBUG=1`` (a development key then).
"""
from gevent import monkey

monkey.patch_all()  # before anything else: blocking I/O in listeners cooperates

import argparse  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402

from flask import Flask, redirect, render_template, request, session, url_for  # noqa: E402

from clusterws_gevent import ClusterWS, Middleware, Mode, Scaler, Unavailable  # noqa: E402

#: The chat's last 50 messages are kept for an hour; who is in it is known (presence).
CHANNELS = {"history_size": 50, "history_ttl": 3600, "presence": True}

app = Flask(__name__)
app.secret_key = os.environ.get("SECRET_KEY") or (os.environ.get("FLASK_DEBUG") == "1" and "development only")
if not app.secret_key:
    raise SystemExit("set SECRET_KEY (it signs the session cookies), or FLASK_DEBUG=1 for a development key")
# The session cookie is not sent with requests other sites start (a WebSocket opened by
# another site's page among them); the server also refuses upgrades from other origins.
app.config["SESSION_COOKIE_SAMESITE"] = "Lax"


@app.route("/")
def index():
    if "name" not in session:
        return render_template("index.html", name=None)
    try:
        kept = cws.history("chat", limit=50)
        history = {"messages": [message for _, message in kept.messages], "epoch": kept.epoch,
                   "offset": kept.offset}
    except Unavailable:  # the broker or Redis keeping it did not answer: live messages only
        history = {"messages": [], "epoch": None, "offset": 0}
    return render_template("index.html", name=session["name"], history=history)


@app.route("/who")
def who():
    """Who is in the chat now, over every worker and server (presence)."""
    if "name" not in session:
        return "log in first", 401
    return {"users": sorted({info["user"] for info in cws.presence("chat").values() if info["user"]})}


@app.route("/login", methods=["POST"])
def login():
    name = request.form.get("name", "").strip()[:40]
    if name:
        session["name"] = name
    return redirect(url_for("index"))


@app.route("/announce", methods=["POST"])
def announce():
    """Publishing from a view: every subscriber of "chat", on every worker, gets it."""
    if "name" not in session:
        return "log in first", 401
    cws.publish("chat", {"name": f"{session['name']} (announcement)", "text": request.form.get("text", "")[:500],
                         "at": time.time()})
    return redirect(url_for("index"))


@app.route("/logout", methods=["POST"])
def logout():
    session.pop("name", None)
    return redirect(url_for("index"))


def worker(w):
    """Runs in every worker process: the realtime part of the site."""
    wss = w.wss

    @wss.middleware(Middleware.verifyConnection)
    def logged_in_only(info, next):
        # The Flask session of the upgrade request, as the views see it.
        next(info.session is not None and "name" in info.session)

    @wss.middleware(Middleware.onSubscribe)
    def known_channels(socket, channel, next):
        next(channel == "chat")

    @wss.middleware(Middleware.onPublish)
    def no_direct_publishes(socket, channel, message, next):
        # ["p","chat",{...}] would skip "say": its attribution to the session's name and its limits
        next(False)

    @wss.on("connection")
    def connected(socket, environ):
        name = session["name"]  # listeners run inside the upgrade request's Flask context
        socket.user = name  # what presence says of this socket

        @socket.on("echo")
        def echo(data):
            socket.send("echo", data)

        @socket.on("say")
        def say(text):
            if isinstance(text, str) and text.strip():
                wss.publish("chat", {"name": name, "text": text.strip()[:500], "at": time.time()})

        socket.on("close", lambda code, reason: w.log.info("%s left (%d)", name, code))


# Registers the worker with the app (app.extensions["clusterws"]): views publish through it,
# tests use cws.test_client(), and `python -m clusterws_gevent app:app` finds the worker.
cws = ClusterWS(worker=worker, app=app, mode=Mode.Single, channel_options=CHANNELS)


def main():
    parser = argparse.ArgumentParser(description="ClusterWS + Flask chat example")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--mode", choices=["single", "scale"], default="single")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--redis", metavar="URL", help="join servers through this Redis (it keeps the history)")
    parser.add_argument("--admin-token", metavar="TOKEN", default=os.environ.get("ADMIN_TOKEN"),
                        help="serve the live dashboard at /clusterws/admin behind this token (or $ADMIN_TOKEN)")
    args = parser.parse_args()
    admin = {"enabled": True, "token": args.admin_token} if args.admin_token else None
    scale = {"workers": args.workers}
    if args.redis:
        scale.update(scaler=Scaler.Redis, redis=args.redis)
    ClusterWS(worker=worker, app=app, host=args.host, port=args.port, channel_options=CHANNELS,
              mode=Mode.Scale if args.mode == "scale" or args.redis else Mode.Single, scale_options=scale,
              admin_options=admin).run()


if __name__ == "__main__":
    main()
