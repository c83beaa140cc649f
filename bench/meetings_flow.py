"""Benchmark: a year of meetings of the synthetic county, reported on `intake.events` by a
separate (non-nameko) process, timed until members' participation records have caught up.

    .venv/bin/python bench/meetings_flow.py [--fraction 0.1] [--rate 0]

Prints meetings_per_s (end to end), p50/p95 latency from publish to participation updated,
peak RSS per service, and the rate of nameko's own EventDispatcher measured in the same run.
Target on the 2-core machine: at least 500 meetings/s end to end, RSS at most 200 MB per service.
"""
import eventlet

eventlet.monkey_patch()

import argparse  # noqa: E402
import json  # noqa: E402
import sqlite3  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

warnings.filterwarnings("ignore")

from harness import Bench, concurrent_calls, print_figures, register_county_organizations  # noqa: E402
from synthetic import make_county  # noqa: E402
from synthetic_meetings import make_meetings  # noqa: E402

# "Now" for this run: early January, so the whole of 2026 lies in the past.
NOW = "2027-01-05T10:00:00+08:00"


def dispatcher_rate(amqp_uri: str, count: int = 2000) -> float:
    """nameko's EventDispatcher in a plain loop (one publisher confirm per event)."""
    from kombu import Connection
    from nameko.standalone.events import event_dispatcher

    from orglife.common.topology import event_exchange
    with Connection(amqp_uri) as conn:
        event_exchange("benchref")(conn.channel()).declare()
    dispatch = event_dispatcher({"AMQP_URI": amqp_uri})
    started = time.monotonic()
    for n in range(count):
        dispatch("benchref", "reference_event", {"n": n, "pad": "x" * 500})
    return count / (time.monotonic() - started)


def count_rows(db_path, table: str) -> int:
    try:
        db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
        try:
            return db.execute(f"select count(*) from {table}").fetchone()[0]
        finally:
            db.close()
    except sqlite3.OperationalError:
        return 0


def watch_participation(db_path, expected: int, timeout: float, publisher,
                        rejected_db, parked=lambda: 0, interval: float = 0.05):
    """First time each meeting shows in members' participation records (members' own table of
    applied meeting revisions), polled read-only from its SQLite file, until every report is
    accounted for: in the records, or rejected by meetings."""
    seen: dict[str, float] = {}
    last_rowid = 0
    deadline = time.monotonic() + timeout
    rejected = parked_now = 0
    checked = 0.0
    while len(seen) + rejected + parked_now < expected and time.monotonic() < deadline:
        rejected = count_rows(rejected_db, "rejected_intake")
        if time.monotonic() - checked > 2:  # a parked report is accounted for too
            parked_now, checked = parked(), time.monotonic()
        if publisher.poll() not in (None, 0):
            raise SystemExit(f"the publisher failed (exit {publisher.returncode})")
        try:
            db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
            rows = db.execute("select rowid, meeting_id from meeting_versions where rowid > ? "
                              "order by rowid", (last_rowid,)).fetchall()
            db.close()
        except sqlite3.OperationalError:
            rows = []
        now = time.time()
        for rowid, meeting_id in rows:
            seen.setdefault(meeting_id, now)
            last_rowid = rowid
        eventlet.sleep(interval)
    return seen


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--fraction", type=float, default=1.0,
                        help="share of the year's meetings to send (quick runs)")
    parser.add_argument("--rate", type=float, default=0.0, help="pace the publisher (0: burst)")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--profile", action="append", default=[], choices=["members", "meetings"],
                        help="run this service under cProfile (its .prof is kept in the work "
                             "folder)")
    args = parser.parse_args()

    county = make_county(seed=7)
    reports = make_meetings(county)
    reports = reports[:int(len(reports) * args.fraction)]
    rows = sum(len(r["attendance"]) for r in reports)
    bench = Bench("meetings_flow", now=NOW)
    try:
        bench.start("members", "meetings", profile=args.profile)
        register_county_organizations(bench, county.organizations)
        chunks = [county.members[i:i + 1000] for i in range(0, len(county.members), 1000)]
        concurrent_calls(bench, "members", "import_members", chunks, proxies=1)
        while (bench.ping("meetings") or {}).get("known_members", 0) < len(county.members):
            time.sleep(0.5)
        reference = dispatcher_rate(bench.amqp_uri)

        reports_file = bench.work / "reports.jsonl"
        with open(reports_file, "w", encoding="utf-8") as out:
            for report in reports:
                out.write(json.dumps(report, ensure_ascii=False) + "\n")
        times_file = bench.work / "published.json"
        # CPU seconds over the flow alone (the county's registration came before it)
        cpu_before = {name: bench.cpu_seconds(name) for name in ("members", "meetings")}
        started = time.time()
        publisher = subprocess.Popen([sys.executable, str(bench.work.parents[1] / "bench" /
                                                          "publish_intake.py"),
                                      bench.amqp_uri, str(reports_file), str(times_file),
                                      "--rate", str(args.rate)])
        seen = watch_participation(bench.work / "members.db", len(reports), args.timeout,
                                   publisher, bench.work / "meetings.db", bench.parked)
        publisher.wait()
        published = json.loads(times_file.read_text())
        latencies = sorted(seen[m] - published[m] for m in seen if m in published)
        done = max(seen.values())
        rejected = count_rows(bench.work / "meetings.db", "rejected_intake")
        figures = {
            "meetings": len(reports),
            "attendance_rows": rows,
            "caught_up": len(seen),
            "publish_seconds": max(published.values()) - started,
            "seconds_total": done - started,
            "meetings_per_s": len(seen) / (done - started),
            "attendance_rows_per_s": rows * len(seen) / len(reports) / (done - started),
            "latency_p50_s": latencies[len(latencies) // 2],
            "latency_p95_s": latencies[int(len(latencies) * 0.95)],
            "members_peak_rss_mb": bench.peak_rss_mb("members"),
            "meetings_peak_rss_mb": bench.peak_rss_mb("meetings"),
            "members_cpu_s_flow": round(bench.cpu_seconds("members") - cpu_before["members"], 1),
            "meetings_cpu_s_flow": round(bench.cpu_seconds("meetings") - cpu_before["meetings"],
                                         1),
            "nameko_event_dispatcher_per_s": reference,
            "rejected_intake": rejected,
            "parked": bench.parked(),
            "lost": len(reports) - len(seen) - rejected - bench.parked(),
        }
        print_figures(f"meetings_flow (publisher rate: {args.rate or 'burst'})", figures)
    finally:
        bench.close()


if __name__ == "__main__":
    main()
