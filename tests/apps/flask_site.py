"""A Flask app with a login, served with the WebSockets of apps.basic."""
import os

from flask import Flask, jsonify, request, session
from gevent import monkey

app = Flask(__name__)
app.secret_key = "test-secret"
PATCHED_AT_IMPORT = monkey.is_module_patched("socket")


@app.route("/")
def index():
    return "hello from flask"


@app.route("/ws")
def same_path_as_ws():
    return "a plain GET on the WebSocket path reaches Flask"


@app.route("/login/<user>")
def login(user):
    session["user"] = user
    return "logged in"


@app.route("/client")
def client_page():
    """A page that loads the browser client the server ships (the browser tests drive it)."""
    return '<!doctype html><html><head><script src="/clusterws.js"></script></head><body>client</body></html>'


@app.route("/info")
def info():
    return jsonify(patched_at_import=PATCHED_AT_IMPORT, pid=os.getpid(), scheme=request.scheme)
