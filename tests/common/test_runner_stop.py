"""orglife.runner's stop: graceful when it can be, killed when it hangs (a broker gone makes
nameko's stop wait on consumers reconnecting; `down` would SIGKILL the process at 15 s)."""
import logging

import eventlet

from orglife import runner


class Containers:
    def __init__(self, stop_seconds: float, kill_seconds: float = 0):
        self.stop_seconds, self.kill_seconds = stop_seconds, kill_seconds
        self.killed = False

    def stop(self):
        eventlet.sleep(self.stop_seconds)

    def kill(self):
        eventlet.sleep(self.kill_seconds)  # nameko's kill waits for the consumer's thread
        self.killed = True


def test_a_stop_that_hangs_is_turned_into_a_kill(caplog):
    hanging = Containers(stop_seconds=60)
    with caplog.at_level(logging.WARNING, "orglife"):
        assert runner.stop_or_kill(hanging, "scoring", seconds=0.2) is False
    assert hanging.killed
    assert "scoring did not stop within 0 s" in caplog.text


def test_a_kill_that_hangs_too_is_given_up_so_the_process_can_exit(caplog):
    """With the broker gone nameko's kill waits on the same reconnecting consumer."""
    stuck = Containers(stop_seconds=60, kill_seconds=60)
    with caplog.at_level(logging.WARNING, "orglife"):
        assert runner.stop_or_kill(stuck, "scoring", seconds=0.1, kill_seconds=0.1) is False
    assert not stuck.killed and "exiting without them" in caplog.text


def test_a_stop_that_finishes_is_left_graceful():
    quick = Containers(stop_seconds=0.01)
    assert runner.stop_or_kill(quick, "scoring", seconds=5) is True
    assert not quick.killed
    # both bounds below `down`'s SIGKILL (orglife/stack.py stop_pids)
    assert runner.STOP_SECONDS + runner.KILL_SECONDS + runner.RELAY_SECONDS < 15
