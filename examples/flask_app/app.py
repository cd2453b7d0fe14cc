"""A Flask site with realtime chat: Flask serves the pages, ClusterWS the WebSockets, on one port.

    python examples/flask_app/app.py            # http://127.0.0.1:5000 (Mode.Single)
    python examples/flask_app/app.py --port 8000 --mode scale --workers 2

- Log in with a name (a Flask session). The WebSocket upgrade is refused for
  visitors without a session (verifyConnection sees the same session the views do).
- The page subscribes to the channel "chat"; a message published there reaches
  everyone, the sender included (as in ClusterWS).
- The "echo" event answers the sender only.
"""
from gevent import monkey

monkey.patch_all()  # before anything else: blocking I/O in listeners cooperates

import argparse  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402

from flask import Flask, redirect, render_template, request, session, url_for  # noqa: E402

from clusterws_gevent import ClusterWS, Middleware, Mode  # noqa: E402

app = Flask(__name__)
app.secret_key = os.environ.get("SECRET_KEY", "change-me-in-production")
# The session cookie is not sent with requests other sites start (a WebSocket opened by
# another site's page among them); the server also refuses upgrades from other origins.
app.config["SESSION_COOKIE_SAMESITE"] = "Lax"


@app.route("/")
def index():
    return render_template("index.html", name=session.get("name"))


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

    @wss.on("connection")
    def connected(socket, environ):
        name = session["name"]  # listeners run inside the upgrade request's Flask context

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
cws = ClusterWS(worker=worker, app=app, mode=Mode.Single)


def main():
    parser = argparse.ArgumentParser(description="ClusterWS + Flask chat example")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--mode", choices=["single", "scale"], default="single")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    ClusterWS(worker=worker, app=app, host=args.host, port=args.port,
              mode=Mode.Single if args.mode == "single" else Mode.Scale,
              scale_options={"workers": args.workers}).run()


if __name__ == "__main__":
    main()
