"""The CLI's modules: each imports on its own, in a fresh interpreter, and reaches only
`orglife.cli.common`, never the app that assembles them nor another command group."""
import subprocess
import sys

import pytest

from tests.conftest import REPO

GROUPS = ("stack", "orgs", "members", "meetings", "activities", "intake", "parked", "broker",
          "scoring", "notifications")


def cli_modules_after_importing(module: str) -> set[str]:
    """The orglife.cli modules loaded by importing `module` first, in a fresh interpreter."""
    code = (f"import sys, {module}; "
            "print(' '.join(m for m in sys.modules if m.startswith('orglife.cli.')))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


def test_common_imports_no_command_module():
    assert cli_modules_after_importing("orglife.cli.common") == {"orglife.cli.common"}


@pytest.mark.parametrize("group", GROUPS)
def test_a_command_group_imports_alone(group):
    assert cli_modules_after_importing(f"orglife.cli.{group}") == {
        f"orglife.cli.{group}", "orglife.cli.common"}


def test_a_group_imported_before_the_app_leaves_the_app_whole():
    code = ("import orglife.cli.meetings, orglife.cli.app, typer.main; "
            "names = sorted(typer.main.get_command(orglife.cli.app.app).commands); print(names)")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(sorted([
        "up", "down", "status", "restart", "test", "token", "org", "member", "meeting",
        "activity", "intake", "parked", "broker", "score", "compliance", "ranking", "unevenness",
        "at-risk", "alerts", "recalculate", "notifications", "preferences", "demo",
        "dashboard"]))


def test_the_cli_skips_green_dns_but_the_services_it_starts_keep_it():
    """src/orglife/__main__.py sets EVENTLET_NO_GREENDNS only while eventlet is imported: the
    CLI starts without dnspython, and the environment `up` hands the services has no trace
    of it (nor is a value the caller set removed)."""
    import os
    code = ("import os, sys\n"
            "sys.argv = ['orglife', '--help']\n"
            "try:\n    import orglife.__main__\nexcept SystemExit:\n    pass\n"
            "print(os.environ.get('EVENTLET_NO_GREENDNS'), "
            "'eventlet.support.greendns' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k != "EVENTLET_NO_GREENDNS"}
    env["PYTHONPATH"] = str(REPO / "src")
    for preset, expected in ((None, "None False"), ("no", "no True")):
        if preset is not None:
            env["EVENTLET_NO_GREENDNS"] = preset
        done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                              text=True, timeout=60, env=env)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip().splitlines()[-1] == expected, done.stdout[-300:]


def test_a_cli_call_does_not_import_alembic():
    """Alembic is imported only when a database is migrated (orglife/stack.py imports
    common.migrate inside the function that migrates): a quarter of a second every CLI call,
    `status` or `score`, would otherwise pay."""
    import os
    code = ("import sys\n"
            "sys.argv = ['orglife', '--help']\n"
            "import orglife.stack, orglife.cli.stack\n"
            "try:\n    import orglife.__main__\nexcept SystemExit:\n    pass\n"
            "print(sorted(name for name in sys.modules if name.split('.')[0] == 'alembic'))")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout[-300:]
