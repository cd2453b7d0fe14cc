"""A TCP relay in a process of its own, for the half-open fault: ``python relay.py PORT TARGET``.

It forwards every connection to 127.0.0.1:TARGET. On SIGUSR1, the connections open at that
moment stop forwarding in both directions, with both sockets left open (as a dead NAT entry
or a frozen peer: no error ever reaches either side); later connections forward as usual.
Prints ``ready`` once it listens.
"""
import signal
import socket
import sys
import threading

frozen = threading.Event()
generation = [0]


def pump(source: socket.socket, target: socket.socket, born: int) -> None:
    while True:
        try:
            data = source.recv(65536)
        except OSError:
            return
        if generation[0] != born:  # frozen: hold the bytes, never forward, never close
            threading.Event().wait()
        if not data:
            target.close()
            return
        try:
            target.sendall(data)
        except OSError:
            return


def serve(port: int, target: int) -> None:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(128)
    signal.signal(signal.SIGUSR1, lambda *_: generation.__setitem__(0, generation[0] + 1))
    print("ready", flush=True)
    while True:
        client, _ = listener.accept()
        upstream = socket.create_connection(("127.0.0.1", target))
        born = generation[0]
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=pump, args=(a, b, born), daemon=True).start()


if __name__ == "__main__":
    serve(int(sys.argv[1]), int(sys.argv[2]))
