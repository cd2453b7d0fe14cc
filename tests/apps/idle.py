"""A worker whose sockets carry one listener, as a chat's idle sockets do: what an idle
socket costs the server, not the app (``apps.basic`` installs twenty listeners a socket)."""
from apps.basic import live_greenlets


def worker(w):
    @w.wss.on("connection")
    def connected(socket, environ):
        socket.on("greenlets", lambda data: socket.send("greenlets", live_greenlets()))
