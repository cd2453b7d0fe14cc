"""A Flask app that publishes from its views, the way a Flask-SocketIO user emits to a room."""
import datetime
import os

import gevent
from flask import Flask, current_app, jsonify, request

from apps.basic import install, report
from clusterws_gevent import ClusterWS, Middleware

app = Flask(__name__)


@app.route("/publish/<channel>", methods=["POST"])
def publish(channel):
    current_app.extensions["clusterws"].publish(channel, {"text": request.get_data(as_text=True), "pid": os.getpid(),
                                                          "at": datetime.datetime(2026, 1, 2, 3, 4, 5)})
    return jsonify(published=True, pid=os.getpid())


@app.route("/to-workers", methods=["POST"])
def to_workers():
    cws.publish_to_workers({"from": os.getpid()})
    return jsonify(pid=os.getpid())


def worker(w):
    w.wss.add_middleware(Middleware.onWorkerMessage, lambda message: report("onWorkerMessage", message=message))
    @w.wss.on("connection")
    def connected(socket, environ):
        install(socket, {}, w.wss)
        # from a listener: the ClusterWS object works there too
        socket.on("shout", lambda text: cws.publish("shouts", text))

    def ticker():  # from a background greenlet
        for i in range(1000):
            gevent.sleep(0.05)
            cws.publish("ticks", i)

    gevent.spawn(ticker)


cws = ClusterWS(worker=worker, app=app)
