"""A Flask app whose every page needs a login (a before_request hook), with the dashboard on
and no token: the app's login is what protects it."""
from flask import Flask, redirect, request, session

from clusterws_gevent import ClusterWS

app = Flask(__name__)
app.secret_key = "test-secret"


@app.before_request
def require_login():
    if request.endpoint not in ("login", "signin") and "user" not in session:
        return redirect("/signin")
    return None


@app.route("/signin")
def signin():
    return "please log in"


@app.route("/login/<user>")
def login(user):
    session["user"] = user
    return "logged in"


def worker(w):
    pass


cws = ClusterWS(worker=worker, app=app, admin_options={"enabled": True})
