"""Runs the browser tests (browser_dashboard.py) in a pytest process of their own: Playwright
runs on greenlet and must not share a process with eventlet's monkey-patching, which
tests/conftest.py applies to this one (KNOWN-TRAPS). `--confcutdir` keeps that conftest out
of the child; its output is shown when it fails. Screenshots: .artifacts/browser/."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CHROMIUM = "/usr/bin/chromium"


def browser_command(*extra: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
            "--confcutdir", str(HERE), "--suppress-nameko-eventlet-notification",
            "-o", "python_files=browser_*.py",
            "-o", "timeout=1200", *extra, str(HERE / "browser_dashboard.py")]


class BrowserRun:
    """The browser tests' own pytest process. The suite starts it when collection ends
    (tests/conftest.py) and runs this test last: its minute or so, mostly waiting on the demo
    county's flow, overlaps the rest of the suite instead of adding to it."""

    process: subprocess.Popen | None = None
    output: Path | None = None

    @classmethod
    def start(cls) -> None:
        import importlib.util
        if cls.process is not None or not Path(CHROMIUM).exists() or \
                importlib.util.find_spec("playwright") is None:
            return
        import tempfile
        cls.output = Path(tempfile.mkdtemp(prefix="orglife-browser-")) / "pytest.out"
        with open(cls.output, "wb") as out:  # a file, not a pipe: nothing blocks on a full one
            cls.process = subprocess.Popen(
                browser_command(), cwd=REPO, env=dict(os.environ, PYTHONWARNINGS="ignore"),
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)

    @classmethod
    def result(cls, timeout: float) -> tuple[int, str]:
        cls.start()
        try:
            code = cls.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            cls.stop()
            code = cls.process.wait()
        return code, cls.output.read_text(errors="replace")

    @classmethod
    def stop(cls) -> None:
        """At the end of a session that did not reach the test (-x, Ctrl-C): SIGINT, which
        pytest turns into KeyboardInterrupt, so that its fixtures stop the demo's stack (its
        processes run in sessions of their own: a signal to this group misses them)."""
        if cls.process is not None and cls.process.poll() is None:
            os.killpg(cls.process.pid, 2)
            try:
                cls.process.wait(timeout=150)
            except subprocess.TimeoutExpired:
                os.killpg(cls.process.pid, 9)


@pytest.mark.integration
@pytest.mark.timeout(1500)
def test_the_dashboard_in_a_real_browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (./orglife test installs it)")
    pytest.importorskip("playwright")
    code, output = BrowserRun.result(timeout=1400)
    assert code == 0, output[-10000:]
    assert " passed" in output and "skipped" not in output, output[-3000:]
