"""The loop guard (net/loop_guard.py) catches event-loop callbacks that switch greenlets or
raise, and lets the one sanctioned hand-off through. The suite runs with it on (conftest)."""
import gevent
import pytest
from gevent import get_hub
from greenlet import greenlet

from clusterws_gevent.net import loop_guard
from clusterws_gevent.net.runners import Runners
from clusterws_gevent.testing import wait_until

pytestmark = pytest.mark.skipif(not loop_guard.ENABLED, reason="CLUSTERWS_LOOP_GUARD is not set")


def run_on_loop(callback):
    done = gevent.event.Event()

    def wrapped():
        try:
            callback()
        finally:
            done.set()

    get_hub().loop.run_callback(wrapped)
    done.wait(5)


def take_violations():
    found, loop_guard.violations[:] = list(loop_guard.violations), []
    return found


def test_a_loop_callback_that_waits_is_caught():
    @loop_guard.on_loop
    def loop_sleeps():
        gevent.sleep(0)  # gevent refuses (BlockingSwitchOutError): the guard records it

    run_on_loop(lambda: _swallow(loop_sleeps))
    (line,) = take_violations()
    assert "loop_sleeps raised BlockingSwitchOutError" in line


def test_a_loop_callback_that_switches_to_a_greenlet_is_caught():
    other = greenlet(lambda: get_hub().switch(), parent=get_hub())

    @loop_guard.on_loop
    def loop_switches():
        other.switch()

    run_on_loop(loop_switches)
    found = take_violations()
    assert found and "loop_switches switched greenlets" in found[0]


def test_a_runner_taking_work_from_the_loop_is_the_one_allowed_switch():
    runners = Runners()
    ran = []

    @loop_guard.on_loop
    def loop_hands_off():
        runners.run(lambda: (gevent.sleep(0.01), ran.append(1)))

    run_on_loop(loop_hands_off)
    wait_until(lambda: ran)
    assert take_violations() == []


def _swallow(fn):
    try:
        fn()
    except gevent.exceptions.BlockingSwitchOutError:
        pass
