"""A Flask app with the pub/sub worker of apps.pubsub, for gunicorn (tests/integration/test_gunicorn.py);
joined by Redis when $TEST_REDIS_URL names one."""
import os

from flask import Flask

from apps.pubsub import worker
from clusterws_gevent import ClusterWS

app = Flask(__name__)


@app.route("/")
def index():
    return f"flask in {os.getpid()}"


redis_url = os.environ.get("TEST_REDIS_URL")
cws = ClusterWS(worker=worker, app=app, websocket_options={"auto_ping": False},
                scale_options={"scaler": "redis", "redis": redis_url} if redis_url else None)
