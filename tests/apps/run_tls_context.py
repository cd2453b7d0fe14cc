"""ClusterWS(tls_options=ssl.SSLContext) from a script: the context is used as given."""
import os
import ssl
import sys

from apps.basic import worker
from clusterws_gevent import ClusterWS, Mode

if __name__ == "__main__":
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(os.environ["TEST_CERT"], os.environ["TEST_KEY"])
    ClusterWS(worker=worker, host="127.0.0.1", port=int(sys.argv[1]), mode=Mode.Single, tls_options=context,
              websocket_options={"auto_ping": False}).run()
