"""A Flask app factory whose module registers its worker: ``python -m clusterws_gevent apps.factory:create_app()``."""
from flask import Flask

from apps.basic import install, report
from clusterws_gevent import ClusterWS


def worker(w):
    report("worker", from_factory=True)

    @w.wss.on("connection")
    def connected(socket, environ):
        install(socket, {}, w.wss)


def create_app():
    app = Flask(__name__)

    @app.route("/")
    def index():
        return "made by the factory"

    ClusterWS(worker=worker, app=app)
    return app
