"""A stuck test fails at its timeout and prints where every greenlet is (tests/greenlet_timeout.py)."""
from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parents[1]


def test_a_timed_out_test_prints_every_greenlets_stack(pytester, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(TESTS_DIR))
    pytester.makepyfile(test_stuck="""
        import gevent

        def waits_for_a_reply_that_never_comes():
            gevent.sleep(60)

        def test_stuck():
            gevent.spawn(waits_for_a_reply_that_never_comes).join()
    """)
    result = pytester.runpytest_subprocess("-p", "greenlet_timeout", "-p", "no:cacheprovider", "-o", "timeout=1")
    result.assert_outcomes(failed=1)
    output = result.stdout.str()
    assert "Timeout >1.0s in test_stuck.py::test_stuck; where every greenlet was:" in output
    assert "waits_for_a_reply_that_never_comes" in output
