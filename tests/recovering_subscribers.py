"""Many recovering subscribers in a process of their own (the zero-loss deploy test):
``python recovering_subscribers.py URL CHANNEL COUNT``.

Each is a :class:`~clusterws_gevent.client.Client` with ``auto_reconnect`` that subscribes
with ``recover=True`` and checks every message (``{"p": publisher, "i": sequence}``) with
the order/loss checker. Prints ``ready`` once all are subscribed; on a line ``report`` on
stdin, prints one JSON line per subscriber (received, gaps, duplicates, reorders, the
recovered events, the reconnections) and exits.
"""
import json
import sys

from gevent import monkey

monkey.patch_all()

import gevent  # noqa: E402
from gevent.fileobject import FileObjectThread  # noqa: E402

from clusterws_gevent.client import Client  # noqa: E402
from clusterws_gevent.testing import DeliveryLog  # noqa: E402


def main(url: str, channel: str, count: int) -> None:
    subscribers = []
    for _ in range(count):
        log = DeliveryLog({channel})
        state = {"log": log, "recovered": [], "opens": 0}
        client = Client(url, auto_reconnect=True, reconnect_min_interval=0.05, reconnect_max_interval=0.5)
        client.on("open", lambda state=state: state.__setitem__("opens", state["opens"] + 1))
        subscription = client.subscribe(channel, recover=True)
        subscription.watch(lambda message, log=log: log.record(message["p"], channel, message["i"]))
        subscription.on("recovered", state["recovered"].append)
        subscription.wait_subscribed(10)
        subscribers.append((client, state))
    print("ready", flush=True)
    stdin = FileObjectThread(sys.stdin)
    expected = 0
    for line in stdin:
        if line.startswith("report"):
            expected = int(line.split()[1])
            break
    with gevent.Timeout(60, False):
        while any(state["log"].received < expected for _, state in subscribers):
            gevent.sleep(0.1)
    for _, state in subscribers:
        log = state["log"]
        print(json.dumps({"received": log.received, "gaps": log.gaps, "duplicates": log.duplicates,
                          "reorders": log.reorders, "next": log.next.get((0, channel), 0),
                          "recovered": state["recovered"], "reconnections": state["opens"],
                          "examples": log.examples}), flush=True)
    gevent.joinall([gevent.spawn(client.close, timeout=1) for client, _ in subscribers], timeout=10)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
