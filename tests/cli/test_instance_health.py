"""`status`'s view of each instance (orglife/stack.py instance_health), from the files the
supervisor and the service write under HOME/run: up only while the supervisor, the service
process and a fresh heartbeat all say so."""
import json
import os
import subprocess
import sys
import time

import pytest

from orglife.common.config import Settings
from orglife.stack import HEARTBEAT_STALE_SECONDS, instance_health


@pytest.fixture
def sleeper():
    """A live process standing in for a supervisor or a service process."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc.pid
    proc.kill()
    proc.wait()


def write_instance(run, name, supervisor, worker, beat_age=None, **state):
    run.mkdir(parents=True, exist_ok=True)
    (run / f"{name}.pid").write_text(str(supervisor))
    (run / f"{name}.state").write_text(json.dumps({"worker_pid": worker, "restarts": 0,
                                                   **state}))
    if beat_age is not None:
        (run / f"{name}.alive").write_text(f"{time.time() - beat_age:.3f} {worker}\n")


def test_an_instance_is_up_only_while_process_and_heartbeat_are(tmp_path, sleeper):
    settings = Settings(home=tmp_path)
    run = tmp_path / "run"
    dead = 2 ** 22 + 12345  # beyond pid_max: no such process
    write_instance(run, "members-1", os.getpid(), sleeper, beat_age=1)
    # The container died but the process has not exited yet: its heartbeat went stale.
    write_instance(run, "members-2", os.getpid(), sleeper, beat_age=HEARTBEAT_STALE_SECONDS + 5)
    # The service process exited; its supervisor waits to start it again.
    write_instance(run, "members-3", os.getpid(), None, beat_age=1, restarts=1, last_exit=70)
    # The service process was killed and the supervisor has not noticed yet.
    write_instance(run, "members-4", os.getpid(), dead, beat_age=1)
    # The supervisor itself is gone.
    write_instance(run, "members-5", dead, sleeper, beat_age=1)
    rows = {row["instance"]: row for row in instance_health(settings, "members")}
    assert {name: row["up"] for name, row in rows.items()} == {
        "members-1": True, "members-2": False, "members-3": False, "members-4": False,
        "members-5": False}
    assert rows["members-3"]["restarts"] == 1 and rows["members-3"]["last_exit"] == 70
    assert rows["members-5"]["supervisor"] is False and rows["members-1"]["supervisor"] is True
