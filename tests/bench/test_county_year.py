"""Smoke tests of bench/county_year.py on a tiny county: it runs both phases through the real
services, prints its figures with targets and a json line, exits 0, and leaves no process
behind (services, local endpoints, publisher; the broker only if it started it). A run that
cannot catch up in time fails loudly, says what was still pending, and cleans up too."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

REPO = Path(__file__).resolve().parents[2]
WORK = REPO / ".orglife-bench" / "county_year"
TINY = ["--members", "200", "--branches", "8", "--townships", "1", "--fraction", "0.3",
        "--fresh-seconds", "2", "--fresh-rate", "25", "--timeout", "200"]

pytestmark = pytest.mark.integration


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _left_behind() -> list[str]:
    """Processes of the bench's work folder still running: services (ORGLIFE_HOME is the work
    folder), aiosmtpd and the HTTP recorders (their folders are under it), the publisher."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            cmdline = " ".join(proc.info["cmdline"] or ())
            home = proc.environ().get("ORGLIFE_HOME", "") if "orglife" in cmdline else ""
        except psutil.Error:
            continue
        if str(WORK) in cmdline or home == str(WORK):
            found.append(f"{proc.info['pid']}: {cmdline[:160]}")
    return found


def _run(*extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "bench" / "county_year.py"), *TINY, *extra],
                          cwd=REPO, capture_output=True, text=True, timeout=420)


def _figures(result) -> dict:
    lines = [line for line in result.stdout.splitlines() if line.startswith("json: ")]
    assert len(lines) == 1, (result.stdout + result.stderr)[-3000:]
    return json.loads(lines[0][len("json: "):])


def test_tiny_county_year_runs_both_phases_and_cleans_up():
    result = _run("--catchup-timeout", "60")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    figures = _figures(result)
    assert figures["caught_up"] is True
    assert figures["rejected_intake"] == 0 and figures["parked"] == 0
    assert figures["meetings_per_s"] > 0 and figures["seconds_to_catch_up"] > 0
    assert figures["freshness_p50_s"] is not None and figures["freshness_p95_s"] is not None
    assert figures["freshness_measured"] == figures["freshness_meetings"] > 0
    assert figures["nameko_event_dispatcher_per_s"] > 0
    # caught up means: every outbox empty, nothing due, no dirty marks
    final = figures["phase1_final_state"]
    assert final["dirty"] == 0 and final["due"] == 0
    assert all(final[f"outbox_{name}"] == 0 for name in ("members", "meetings", "scoring",
                                                          "notifications"))
    # e-mail and SMS really reached the local endpoints, and the rate is shown
    assert figures["notifications_delivered"] > 0
    assert figures["endpoint_mails"] > 0 and figures["endpoint_sms"] > 0
    assert figures["notifications_delivered_per_s"] > 0
    for name in ("members", "meetings", "scoring", "notifications"):
        assert 0 < figures[f"{name}_peak_rss_mb"] < 1000
    for marker in ("meetings/s end to end", "freshness p50", "freshness p95", "peak RSS",
                   "nameko EventDispatcher", "delivered/s", "rejected intake",
                   "parked messages", "PASS", "bench rules"):
        assert marker in result.stdout, marker
    pids = [*(figures["pids"][name] for name in ("members", "meetings", "scoring",
                                                  "notifications")),
            *figures["pids"]["endpoints"]]
    assert len(pids) == 7 and not [pid for pid in pids if _alive(pid)]
    assert not _left_behind()


def test_a_run_that_cannot_catch_up_fails_loudly_and_cleans_up():
    """One second to catch up is too little for the year of a county of 1,000 members (about
    2,900 meetings; the tiny county's 173 caught up in 1.1 s once, which is why it is not
    the one used here): the run reports the miss, what was still pending, exits 1, and still
    stops every process it started."""
    result = _run("--members", "1000", "--branches", "40", "--fraction", "1",
                  "--catchup-timeout", "1")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-3000:]
    assert "NOT caught up before the deadline" in result.stdout, output[-3000:]
    assert "still pending" in result.stdout
    figures = _figures(result)
    assert figures["caught_up"] is False
    assert "MISS (not caught up)" in result.stdout
    pids = [*(figures["pids"][name] for name in ("members", "meetings", "scoring",
                                                  "notifications")),
            *figures["pids"]["endpoints"]]
    assert not [pid for pid in pids if _alive(pid)]
    assert not _left_behind()
