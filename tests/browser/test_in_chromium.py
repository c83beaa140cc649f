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


@pytest.mark.integration
@pytest.mark.timeout(1500)
def test_the_dashboard_in_a_real_browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (./orglife test installs it)")
    pytest.importorskip("playwright")
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    done = subprocess.run(browser_command(), cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=1400, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, (done.stdout[-8000:], done.stderr[-3000:])
    assert " passed" in done.stdout and "skipped" not in done.stdout, done.stdout[-3000:]
