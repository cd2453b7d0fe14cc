"""A Flask app behind a proxy (ProxyFix) with a before_request hook: the upgrade request goes
through both, as any request does."""
from flask import Flask, abort, g, request
from werkzeug.middleware.proxy_fix import ProxyFix

from apps.basic import report

app = Flask(__name__)
app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1)


@app.before_request
def tenant():
    if request.headers.get("X-Tenant") == "banned":
        abort(403)
    g.tenant = request.headers.get("X-Tenant", "none")


def worker(w):
    @w.wss.on("connection")
    def connected(socket, environ):
        report("connected", remote_addr=request.remote_addr, scheme=request.scheme, tenant=g.tenant)
        socket.on("whoami", lambda data: socket.send("whoami", {"remote_addr": request.remote_addr,
                                                                "tenant": g.tenant}))
