"""`./orglife test` in two lanes (orglife/testlanes.py): which tests go where, and one exit
status for both. The lanes themselves run on every `./orglife test` (CI)."""
import subprocess
import sys

import pytest

from orglife import testlanes
from tests.conftest import REPO

WHOLE_RUN = ["-p", "no:cacheprovider", "-q", "--durations=10", "-x"]


def test_a_whole_run_is_two_lanes_with_the_same_options(monkeypatch):
    monkeypatch.delenv("ORGLIFE_TEST_LANES", raising=False)
    stack, rest = testlanes.lanes(WHOLE_RUN)
    assert stack == [*WHOLE_RUN, *testlanes.STACK_LANE]
    assert rest == [*WHOLE_RUN, *(f"--ignore={path}" for path in testlanes.STACK_LANE)]


@pytest.mark.parametrize("named", [
    ["tests/members"],
    ["-q", "tests/cli/test_display.py"],
    ["tests/members/test_domain.py::test_nothing_in_particular", "-x"],
])
def test_a_run_naming_tests_is_one_process(monkeypatch, named):
    monkeypatch.delenv("ORGLIFE_TEST_LANES", raising=False)
    assert testlanes.lanes(named) == [named]


@pytest.mark.parametrize("option", [["--ignore=tests/bench"], ["--ignore", "tests/bench"],
                                    ["--lf"], ["--basetemp=/tmp/x"], ["--pdb"],
                                    ["--junitxml=r.xml"]])
def test_options_two_processes_cannot_share_make_one_process(monkeypatch, option):
    monkeypatch.delenv("ORGLIFE_TEST_LANES", raising=False)
    assert testlanes.lanes(["-q", *option]) == [["-q", *option]]


def test_lanes_can_be_turned_off(monkeypatch):
    monkeypatch.setenv("ORGLIFE_TEST_LANES", "1")
    assert testlanes.lanes(WHOLE_RUN) == [WHOLE_RUN]


def test_options_and_their_values_do_not_count_as_named_tests():
    assert not testlanes.names_tests(["-k", "scoring and not slow", "-p", "no:cacheprovider",
                                      "--timeout=60", "-m", "integration"])


def test_every_stack_lane_path_exists():
    # a renamed module would otherwise fall silently into the other lane, or break the run
    for path in testlanes.STACK_LANE:
        assert (REPO / path).exists(), path


@pytest.mark.parametrize("codes, expected", [
    ([0, 0], 0),
    ([0, testlanes.NO_TESTS], 0),  # `-k` matched tests of one lane only
    ([testlanes.NO_TESTS, testlanes.NO_TESTS], testlanes.NO_TESTS),
    ([1, 0], 1),
    ([0, 2], 2),
    ([testlanes.NO_TESTS, 1], 1),
])
def test_one_exit_status_for_both_lanes(codes, expected):
    assert testlanes.combined(codes) == expected


def test_the_other_lane_collects_everything_but_the_stack_lane():
    """Collected for real: no stack-lane module in the other lane, and the other lane is not
    empty (a typo in --ignore would run a module twice; an ignore too wide would lose it)."""
    _, rest = testlanes.lanes(["-q", "--collect-only", "-p", "no:cacheprovider"])
    done = subprocess.run([sys.executable, "-m", "pytest", *rest], cwd=REPO,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    collected = [line for line in done.stdout.splitlines() if "::" in line]
    modules = {line.split("::")[0] for line in collected}
    assert "tests/cli/test_test_lanes.py" in modules
    assert "tests/members/test_domain.py" in modules
    for path in testlanes.STACK_LANE:
        assert not any(module.startswith(path) for module in modules), path


LANE_TEST = '''
import os, pathlib, time
import pytest

@pytest.fixture
def server():
    marks = pathlib.Path(os.environ["LANE_MARKS"])
    yield
    time.sleep(1.5)  # a teardown that takes a while, as stopping a stack does
    with open(marks / "{name}.torn-down", "a") as out:
        out.write("once\\n")

def test_runs_until_interrupted(server):
    print("{name} lane output")
    (pathlib.Path(os.environ["LANE_MARKS"]) / "{name}.started").write_text("")
    time.sleep(120)
'''

LAUNCHER = '''
import sys
from pathlib import Path
from orglife import testlanes
commands = [[sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-s", path]
            for path in sys.argv[2:]]
sys.exit(testlanes.run_lanes(commands, Path(sys.argv[1]), "the first lane"))
'''


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_an_interrupted_run_lets_each_lane_tear_down_once_and_shows_the_logged_lane(
        tmp_path, how):
    """A Ctrl-C at the terminal goes to the launcher's whole process group; CI's timeout
    sends the launcher a SIGTERM. Either way each lane gets one SIGINT and finishes its
    fixtures' teardown (a second SIGINT would cut it short: the stacks would be left running),
    and the logged lane's output is still shown."""
    import os
    import signal
    import time
    marks = tmp_path / "marks"
    marks.mkdir()
    paths = []
    for name in ("first", "second"):
        path = tmp_path / f"test_{name}_lane.py"
        path.write_text(LANE_TEST.replace("{name}", name))
        paths.append(str(path))
    log = tmp_path / "first-lane.log"
    env = dict(os.environ, LANE_MARKS=str(marks),
               PYTHONPATH=os.pathsep.join([str(REPO / "src"), str(REPO)]))
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(log), *paths], cwd=REPO,
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, process_group=0)  # as a shell's foreground job
    try:
        deadline = time.monotonic() + 60
        while not all((marks / f"{name}.started").exists() for name in ("first", "second")):
            assert launcher.poll() is None and time.monotonic() < deadline, \
                launcher.stdout.read() if launcher.poll() is not None else "no lane started"
            time.sleep(0.1)
        if how == "ctrl-c":
            os.killpg(launcher.pid, signal.SIGINT)  # what the terminal does
        else:
            launcher.send_signal(signal.SIGTERM)
        output, _ = launcher.communicate(timeout=60)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode != 0
    for name in ("first", "second"):
        assert (marks / f"{name}.torn-down").read_text() == "once\n", output
    assert "===== the first lane =====" in output
    assert "first lane output" in output.split("===== the first lane =====")[1]
