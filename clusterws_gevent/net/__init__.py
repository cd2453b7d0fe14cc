"""Socket helpers shared by every layer that does I/O on gevent: taking turns on the
event loop (:mod:`.fairness`) and the addresses of a host's processes (:mod:`.sockets`)."""
