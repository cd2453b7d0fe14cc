"""The master's decisions as event sequences, in milliseconds (gunicorn's tests/test_arbiter.py
is the model): its process operations and its clock are a fake (``process/processes.py``'s seam);
``tests/integration/test_master.py`` runs the same master with real processes."""
import itertools
import logging
import signal

import pytest

from clusterws_gevent.enums import Mode
from clusterws_gevent.exceptions import HaltServer
from clusterws_gevent.log import Log
from clusterws_gevent.options import Options
from clusterws_gevent.process.events import ChildExited, ChildReady, SignalReceived
from clusterws_gevent.process.master import RESTART_DELAY_MAX, RESTART_DELAY_MIN, Master
from clusterws_gevent.process.processes import BROKER, WORKER, Processes

LOG = Log(logging.getLogger("clusterws_gevent.tests.master"))
KILLED = signal.SIGKILL  # a wait status: killed by SIGKILL
EXITED_0 = 0


class FakeProcesses(Processes):
    """Records what the master asks; a clock the test moves."""

    def __init__(self):
        self.now = 1000.0
        self.pids = itertools.count(100)
        self.spawned = []  # (kind, slot, pid)
        self.signals = []  # (pid, signal)

    def clock(self):
        return self.now

    def spawn(self, master, kind, slot):
        pid = next(self.pids)
        self.spawned.append((kind, slot, pid))
        return pid, -1, None

    def watch_ready(self, master, child):
        return None

    def signal(self, pid, sig):
        self.signals.append((pid, sig))

    def heartbeat_age(self, heartbeat):
        return 0.0

    def release(self, child):
        pass

    def sent(self, sig):
        return [pid for pid, s in self.signals if s == sig]


def make_master(workers=3, brokers=1, restart_on_fail=True):
    options = Options(worker=lambda w: None, mode=Mode.Scale, port=0,
                      scale_options={"workers": workers, "restart_on_fail": restart_on_fail, "worker_timeout": 0,
                                     "default": {"brokers": brokers,
                                                 "brokers_ports": list(range(9400, 9400 + brokers))}})
    processes = FakeProcesses()
    master = Master(options, LOG, processes)
    return master, processes


def step(master, *events):
    """Dispatch ``events`` as the loop does, then reconcile once; True once stopped."""
    for event in events:
        master.dispatch(event)
    return master.reconcile()


def pids(master, kind):
    return sorted(c.pid for c in master.children.values() if c.kind is kind and not c.stopping)


def generations(master):
    return sorted(c.generation for c in master.children.values() if c.kind is WORKER and not c.stopping)


def new_unready(master):
    return [c.pid for c in master.children.values() if not c.ready and not c.stopping]


def started(workers=3, **kwargs):
    """A master whose brokers and workers all reported ready (the start-up is over)."""
    master, processes = make_master(workers, **kwargs)
    step(master)  # brokers first
    step(master, *[ChildReady(pid) for pid in pids(master, BROKER)])  # then the workers
    assert len(pids(master, WORKER)) == workers
    step(master, *[ChildReady(pid) for pid in pids(master, WORKER)])
    assert master._serving
    return master, processes


def finish_reload(master, processes, limit=20):
    """Let every replacement report ready and every retired worker exit, until no worker is due."""
    for _ in range(limit):
        ready = [ChildReady(pid) for pid in new_unready(master)]
        retired = [ChildExited(pid, EXITED_0) for pid in processes.sent(signal.SIGTERM) if pid in master.children]
        if not ready and not retired:
            return
        step(master, *ready)
        step(master, *retired)
    pytest.fail("the reload did not finish")


def test_a_reload_replaces_every_worker_one_at_a_time_each_old_one_after_its_replacement():
    master, processes = started()
    old = pids(master, WORKER)
    step(master, SignalReceived("HUP"))
    (first,) = new_unready(master)  # one replacement at a time
    assert processes.sent(signal.SIGTERM) == []  # the old one serves until its replacement does
    step(master, ChildReady(first))
    assert processes.sent(signal.SIGTERM) == [old[0]]
    finish_reload(master, processes)
    assert generations(master) == [1, 1, 1] and not set(pids(master, WORKER)) & set(old)
    assert sorted(processes.sent(signal.SIGTERM)) == old  # each once


def test_a_crash_during_a_reload_leaves_exactly_the_workers_asked_on_the_new_code():
    master, processes = started()
    old = pids(master, WORKER)
    step(master, SignalReceived("HUP"))
    step(master, ChildExited(old[1], KILLED))  # worker 2 dies while worker 1 is being replaced
    processes.now += RESTART_DELAY_MAX  # past its restart delay
    step(master)
    finish_reload(master, processes)
    assert generations(master) == [1, 1, 1]
    signalled = processes.signals
    assert len(signalled) == len(set(signalled)), "a PID got the same signal twice"
    assert old[1] not in [pid for pid, _ in signalled]  # the dead one is not signalled


def test_ttin_during_a_reload_adds_a_worker_on_the_new_code():
    master, processes = started()
    step(master, SignalReceived("HUP"))
    step(master, SignalReceived("TTIN"))
    finish_reload(master, processes)
    assert generations(master) == [1, 1, 1, 1]
    assert sorted(c.slot for c in master.children.values() if c.kind is WORKER) == [1, 2, 3, 4]


def test_a_hup_during_a_reload_replaces_the_workers_already_replaced_too():
    master, processes = started()
    step(master, SignalReceived("HUP"))
    (first,) = new_unready(master)
    step(master, ChildReady(first))  # worker 1 runs generation 1
    step(master, SignalReceived("HUP"))  # the code changed again
    finish_reload(master, processes)
    assert generations(master) == [2, 2, 2]
    assert first not in pids(master, WORKER)


def test_a_broker_dying_while_the_master_stops_is_not_restarted_and_the_stop_completes():
    master, processes = started(workers=2)
    (broker,) = pids(master, BROKER)
    workers = pids(master, WORKER)
    assert not step(master, SignalReceived("TERM"))
    assert sorted(processes.sent(signal.SIGTERM)) == workers  # workers first; brokers wait for them
    assert not step(master, ChildExited(broker, KILLED))
    assert not pids(master, BROKER) and len(processes.spawned) == 3  # nothing new spawned
    assert step(master, *[ChildExited(pid, EXITED_0) for pid in workers])  # stopped


def test_a_worker_that_keeps_dying_is_restarted_after_a_doubling_delay_reset_once_it_lived():
    master, processes = started(workers=1)
    delays = []
    for _ in range(9):
        (pid,) = pids(master, WORKER)
        step(master, ChildExited(pid, KILLED))
        assert pids(master, WORKER) == []
        delay = master._delays[(WORKER, 1)]
        delays.append(delay)
        processes.now += delay - 0.001
        step(master)
        assert pids(master, WORKER) == [], "restarted before its delay"
        processes.now += 0.002
        step(master)
        step(master, *[ChildReady(p) for p in new_unready(master)])
    assert delays[0] == RESTART_DELAY_MIN and delays[1] == 2 * RESTART_DELAY_MIN
    assert delays[-1] == RESTART_DELAY_MAX  # capped
    processes.now += 60  # this one lived: its death starts the delays over
    (pid,) = pids(master, WORKER)
    step(master, ChildExited(pid, KILLED))
    assert master._delays[(WORKER, 1)] == RESTART_DELAY_MIN


def test_without_restart_on_fail_the_last_worker_dying_stops_the_server():
    master, processes = started(workers=1, restart_on_fail=False)
    (pid,) = pids(master, WORKER)
    with pytest.raises(HaltServer, match="no worker left"):
        step(master, ChildExited(pid, KILLED))


def test_a_replacement_that_fails_to_start_keeps_the_old_worker_and_is_tried_again():
    master, processes = started(workers=1)
    (old,) = pids(master, WORKER)
    step(master, SignalReceived("HUP"))
    (replacement,) = new_unready(master)
    step(master, ChildExited(replacement, 3 << 8))  # exit code 3: the new code does not start
    assert pids(master, WORKER) == [old] and processes.sent(signal.SIGTERM) == []
    processes.now += RESTART_DELAY_MAX
    step(master)
    (second,) = new_unready(master)
    step(master, ChildReady(second))
    assert processes.sent(signal.SIGTERM) == [old]
