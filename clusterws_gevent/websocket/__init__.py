"""The WebSocket layer: engines, sockets, the server (``w.wss``) and the WSGI handler."""
