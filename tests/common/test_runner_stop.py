"""orglife.runner's stop: graceful when it can be, killed when it hangs (a broker gone makes
nameko's stop wait on consumers reconnecting; `down` would SIGKILL the process at 15 s)."""
import logging

import eventlet

from orglife import runner


class Containers:
    def __init__(self, stop_seconds: float):
        self.stop_seconds = stop_seconds
        self.killed = False

    def stop(self):
        eventlet.sleep(self.stop_seconds)

    def kill(self):
        self.killed = True


def test_a_stop_that_hangs_is_turned_into_a_kill(caplog):
    hanging = Containers(stop_seconds=60)
    with caplog.at_level(logging.WARNING, "orglife"):
        assert runner.stop_or_kill(hanging, "scoring", seconds=0.2) is False
    assert hanging.killed
    assert "scoring did not stop within 0 s" in caplog.text


def test_a_stop_that_finishes_is_left_graceful():
    quick = Containers(stop_seconds=0.01)
    assert runner.stop_or_kill(quick, "scoring", seconds=5) is True
    assert not quick.killed
    assert runner.STOP_SECONDS < 15  # below `down`'s SIGKILL (orglife/stack.py stop_pids)
