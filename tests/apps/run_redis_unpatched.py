"""ClusterWS(...).run() with Scaler.Redis from a script that never monkey-patched: it must refuse."""
import sys

from clusterws_gevent import ClusterWS, Scaler


def worker(w):
    pass


if __name__ == "__main__":
    ClusterWS(worker=worker, host="127.0.0.1", port=int(sys.argv[2]),
              scale_options={"scaler": Scaler.Redis, "redis": sys.argv[1]}).run()
