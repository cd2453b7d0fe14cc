# gunicorn's configuration of the tests that join workers by brokers: the recipe of docs/deployment.md
from clusterws_gevent.gunicorn import start_brokers, stop_brokers

on_starting = start_brokers
on_exit = stop_brokers
