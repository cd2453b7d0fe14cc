"""Runner greenlets (net/runners.py), in-process: what a parked socket's work runs in."""
import gevent
from gevent.event import Event

from clusterws_gevent.net.runners import Runners
from clusterws_gevent.testing import wait_until


def from_the_hub(runners, job):
    """As a parked socket's watcher does: ``Runners.run`` from an event-loop callback."""
    gevent.get_hub().loop.run_callback(runners.run, job)


def test_a_finished_runner_waits_idle_and_serves_the_next_job():
    runners = Runners(keep_idle=2)
    ran_in = []
    from_the_hub(runners, lambda: ran_in.append(gevent.getcurrent()))
    wait_until(lambda: runners.idle() == 1)
    from_the_hub(runners, lambda: ran_in.append(gevent.getcurrent()))
    wait_until(lambda: len(ran_in) == 2)
    assert ran_in[0] is ran_in[1]
    assert ran_in[0] is not gevent.getcurrent()


def test_a_blocked_job_keeps_its_runner_and_holds_up_no_other():
    runners = Runners()
    release = Event()
    order = []

    def slow():
        order.append("slow started")
        release.wait()
        order.append("slow ended")

    from_the_hub(runners, slow)
    from_the_hub(runners, lambda: order.append("fast"))
    wait_until(lambda: "fast" in order)
    assert order == ["slow started", "fast"]
    release.set()
    wait_until(lambda: "slow ended" in order)
    assert runners.idle() == 2


def test_idle_runners_past_the_bound_end():
    runners = Runners(keep_idle=2)
    release = Event()
    started, finished = [], []

    def job():
        started.append(gevent.getcurrent())
        release.wait()
        finished.append(1)

    for _ in range(5):
        from_the_hub(runners, job)
    wait_until(lambda: len(started) == 5)
    assert len(set(started)) == 5  # five blocked jobs: five runners
    release.set()
    wait_until(lambda: len(finished) == 5)
    assert runners.idle() == 2
