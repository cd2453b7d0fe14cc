"""A pytest plugin: pytest-timeout's timer, printing where every greenlet is when it fires
(gevent's own TestTimeout does the same), so a stuck test says where it is stuck."""
from __future__ import annotations

import signal
import sys
from typing import Any, Optional

import pytest


def stacks_of_everything() -> str:
    """Every greenlet's stack (gevent.util.format_run_info), or every thread's without gevent."""
    gevent = sys.modules.get("gevent")
    if gevent is not None:
        from gevent.util import format_run_info

        return "\n".join(format_run_info())
    import traceback

    return "\n".join(f"thread {ident}:\n{''.join(traceback.format_stack(frame))}"
                     for ident, frame in sys._current_frames().items())


@pytest.hookimpl(tryfirst=True)
def pytest_timeout_set_timer(item: Any, settings: Any) -> Optional[bool]:
    """pytest-timeout's timer, which also prints where every greenlet is when it fires."""
    if not settings.timeout or settings.timeout <= 0:
        return None

    def fire(signum: int, frame: Any) -> None:
        pytest.fail(f"Timeout >{settings.timeout}s in {item.nodeid}; where every greenlet was:\n"
                    f"{stacks_of_everything()}", pytrace=False)

    signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, settings.timeout)
    return True


@pytest.hookimpl(tryfirst=True)
def pytest_timeout_cancel_timer(item: Any) -> Optional[bool]:
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    return True
