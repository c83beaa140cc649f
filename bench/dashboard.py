"""Benchmark: the dashboard's county overview for the synthetic county of 1,600 branches.

    .venv/bin/python bench/dashboard.py [--branches 1600] [--members 35000] [--runs 10]

Builds the synthetic county (bench/synthetic.py) in the real members, meetings and scoring
services' code on real SQLite files, in this process (no broker: their events are handed from
the outboxes to the consumers in batches of 200, as the broker would), with a few meetings per
branch so that the lights differ. Then times, each `--runs` times:

  - scoring.branch_overview: the one read that brings every branch of the county (in the
    service, on its database);
  - the overview page: every read the page makes (members, meetings, scoring,
    notifications), each answer round-tripped through JSON as RPC does, the page's tables
    and charts, and the HTML from the Jinja2 templates; and the branches table as .xlsx.

Prints the figures (p50 and max, HTML size, calls made). With `--http` it then starts the
real stack on copies of the built databases and fetches the overview of today, of a past day
and the .xlsx over HTTP (p50 / p95 / max). Target: the overview renders in under a second on
the 2-core machine (judged over HTTP with `--http`). It stops itself, and what it started,
after `--timeout` seconds (default 1800) whatever it is doing; its files are in a temporary
folder that is removed at the end (`--work DIR` keeps the built county for a later run).
"""
import eventlet

eventlet.monkey_patch()

import argparse  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from datetime import date  # noqa: E402
from pathlib import Path  # noqa: E402

warnings.filterwarnings("ignore")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from kombu.utils import json as kombu_json  # noqa: E402
from nameko.testing.services import worker_factory  # noqa: E402

from orglife.common.auth import AuthContext, mint_token  # noqa: E402
from orglife.common.clock import Clock  # noqa: E402
from orglife.common.db import UnitOfWork, make_engine, session_factory  # noqa: E402
from orglife.common.envelope import Envelope  # noqa: E402
from orglife.common.migrate import upgrade  # noqa: E402
from orglife.common.rules import load_rules  # noqa: E402
from orglife.system import SYSTEM  # noqa: E402
from synthetic import make_county  # noqa: E402

SECRET = "benchmark-secret-0123456789-abcdefghij"
NOW = "2026-11-20T10:00:00+08:00"
YEAR = 2026
BATCH = 200
TIMES: dict[str, list[float]] = {}  # seconds of each read the page made, by method
TYPES = ("theme_day", "branch_assembly", "lecture", "study")  # no committee: not every branch has one


class Store:
    """The services' `store` dependency over a SQLite file (as tests/conftest.py LocalStore)."""

    def __init__(self, url, service, backbone, clock):
        self.engine = make_engine(url)
        self.sessions = session_factory(self.engine)
        self.service, self.backbone, self.clock = service, backbone, clock
        self.seen = 0

    def __call__(self):
        return UnitOfWork(self.sessions, self.service, self.backbone, clock=self.clock)

    def read(self):
        return self()

    def change(self, use_case):
        from orglife.common.store import StoreHandle
        return StoreHandle.change(self, use_case)

    def outbox_backlog(self):
        return 0

    def new_events(self) -> list[Envelope]:
        from sqlalchemy import select
        with self.engine.connect() as conn:
            rows = conn.execute(select(self.backbone.outbox.c.body)
                                .where(self.backbone.outbox.c.id > self.seen)
                                .order_by(self.backbone.outbox.c.id)).all()
            if rows:
                self.seen = conn.execute(select(self.backbone.outbox.c.id).order_by(
                    self.backbone.outbox.c.id.desc()).limit(1)).scalar()
        return [Envelope.from_body(json.loads(body)) for (body,) in rows]


class Reply:
    def __init__(self, value=None, error=None):
        self.value, self.error = value, error

    def result(self):
        if self.error is not None:
            raise self.error
        return self.value


class WorkerProxy:
    """A service as the dashboard's reads see it: each call answered by the real worker,
    the answer through JSON as the RPC reply carries it; calls counted."""

    def __init__(self, worker, calls: list, name: str):
        self.worker, self.calls, self.name = worker, calls, name

    def __getattr__(self, method):
        target = getattr(self.worker, method)
        proxy = self

        class Method:
            @staticmethod
            def call_async(*args, **kwargs):
                proxy.calls.append(f"{proxy.name}.{method}")
                started = time.perf_counter()
                try:
                    value = target(*args, **kwargs)
                except Exception as exc:  # noqa: BLE001 - as the reply would carry it
                    return Reply(error=exc)
                finally:
                    TIMES.setdefault(f"{proxy.name}.{method}", []).append(
                        time.perf_counter() - started)
                return Reply(kombu_json.loads(kombu_json.dumps(value)))
        return Method


class QuietNotifications:
    def notification_summary(self, org_id=None):
        return {"items": [{"kind": "absence_followup", "status": "delivered", "count": 812},
                          {"kind": "absence_digest", "status": "failed", "count": 3}]}

    def list_notifications(self, filters=None):
        return {"items": [], "total": 0}


def timed(function, runs: int) -> tuple[list[float], object]:
    samples, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = function()
        samples.append(time.perf_counter() - started)
    return samples, result


def figures(samples: list[float]) -> str:
    return (f"p50 {statistics.median(samples) * 1000:.0f} ms, "
            f"max {max(samples) * 1000:.0f} ms ({len(samples)} runs)")


def build(work: Path, branches: int, members: int, meetings_per_branch: int, seed: int,
          reuse: bool = False):
    from services.meetings.models import backbone as meetings_backbone
    from services.meetings.service import MeetingsService
    from services.members.models import backbone as members_backbone
    from services.members.service import MembersService
    from services.scoring.models import backbone as scoring_backbone
    from services.scoring.service import ScoringService, Unpaced

    clock = Clock("Asia/Shanghai", NOW)
    stores = {}
    for name, backbone in (("members", members_backbone), ("meetings", meetings_backbone),
                           ("scoring", scoring_backbone)):
        url = f"sqlite:///{work / (name + '.db')}"
        upgrade(name, url)  # a reused county too: to this code's schema
        stores[name] = Store(url, name, backbone, clock)
    auth = AuthContext(SECRET, "Bearer " + mint_token(SECRET, "bench", "county_admin"))
    rules = load_rules()
    members_w = worker_factory(MembersService, store=stores["members"], auth=auth, clock=clock)
    meetings_w = worker_factory(MeetingsService, store=stores["meetings"], auth=auth,
                                clock=clock, rules=rules)
    scoring_w = worker_factory(ScoringService, store=stores["scoring"], auth=auth, clock=clock,
                               rules=rules, pace=Unpaced())

    def deliver():
        for source, consumers in (("members", (meetings_w.on_members_events,
                                               scoring_w.on_members_events)),
                                  ("meetings", (members_w.on_meetings_events,
                                                scoring_w.on_meetings_events))):
            events = stores[source].new_events()
            for consumer_name, consume in zip(
                    (("meetings", "scoring") if source == "members" else ("members", "scoring")),
                    consumers):
                types = SYSTEM.subscription(consumer_name, source).event_types
                batch = [e for e in events if e.event_type in types]
                for i in range(0, len(batch), BATCH):
                    consume(batch[i:i + BATCH])
        scoring_w.drain_dirty()

    def drain_all():
        """Every stale mark drained (a drain takes at most 20,000), as the running service
        has done within a second or two: the reads time stored figures, not a backlog."""
        from sqlalchemy import func, select

        from services.scoring.models import Dirty
        while True:
            with stores["scoring"].sessions() as session:
                if not session.scalar(select(func.count()).select_from(Dirty)):
                    return
            scoring_w.drain_dirty()

    if reuse:  # a county built by an earlier run with --work: only the timed part again
        drain_all()
        county = make_county(seed=seed, townships=max(2, branches // 80), branches=branches,
                             members=members)
        return {"county": county, "stores": stores, "members": members_w,
                "meetings": meetings_w, "scoring": scoring_w, "built_s": 0.0,
                "meetings_logged": None, "meetings_s": 0.0}
    started = time.perf_counter()
    county = make_county(seed=seed, townships=max(2, branches // 80), branches=branches,
                         members=members)
    for org in county.organizations:
        members_w.register_organization({k: v for k, v in org.items()
                                         if not k.startswith("_") and v is not None})
    for i in range(0, len(county.members), 2000):
        result = members_w.import_members(county.members[i:i + 2000])
        if result["errors"]:
            raise SystemExit(f"import failed: {result['errors'][:3]}")
    print(f"  members registered: {time.perf_counter() - started:.0f} s", flush=True)
    deliver()
    built = time.perf_counter() - started
    print(f"  members' events through meetings and scoring: {built:.0f} s", flush=True)

    started = time.perf_counter()
    rng = random.Random(seed)
    by_branch: dict[str, list[str]] = {}
    for member in county.members:
        by_branch.setdefault(member["branch_id"], []).append(member["member_id"])
    logged = 0
    for branch_id, people in sorted(by_branch.items()):
        for n in range(rng.randint(0, meetings_per_branch * 2)):
            month = rng.randint(1, 10)
            absent = set(rng.sample(people, k=min(len(people), rng.randint(0, 3))))
            meetings_w.log_meeting({
                "meeting_id": f"bm-{branch_id}-{n}", "branch_id": branch_id,
                "type": rng.choice(TYPES), "held_at": f"{YEAR}-{month:02d}-{rng.randint(1, 28):02d}"
                                                      "T19:30:00+08:00",
                "topic": "学习", "attendance": [
                    {"member_id": m, "status": "absent" if m in absent else "present"}
                    for m in people]})
            logged += 1
        if logged % 500 == 0:
            deliver()
    deliver()
    print(f"  {logged} meetings logged and scored: {time.perf_counter() - started:.0f} s",
          flush=True)
    meetings_s = time.perf_counter() - started
    started = time.perf_counter()
    scoring_w.daily_when_due()  # as the service does at start and then daily: stored streaks
    deliver()
    drain_all()
    print(f"  scoring's daily run: {time.perf_counter() - started:.0f} s", flush=True)
    return {"county": county, "stores": stores, "members": members_w, "meetings": meetings_w,
            "scoring": scoring_w, "built_s": built, "meetings_logged": logged,
            "meetings_s": meetings_s}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--branches", type=int, default=1600)
    parser.add_argument("--members", type=int, default=35000)
    parser.add_argument("--meetings-per-branch", type=int, default=2,
                        help="on average (0 to 2× this, at random)")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--timeout", type=int, default=1800)
    parser.add_argument("--http", action="store_true",
                        help="then start the real stack on the built county and time the "
                             "pages over HTTP too")
    parser.add_argument("--work", type=Path, default=None,
                        help="keep the built county in this folder; a later run with the "
                             "same folder and sizes only times the reads again")
    args = parser.parse_args()

    def out_of_time(signum, frame):
        raise SystemExit(f"bench/dashboard.py: stopped after {args.timeout} s (--timeout)")
    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm(args.timeout)

    from zoneinfo import ZoneInfo

    from orglife.common.auth import decode_token
    from services.dashboard import pages
    from services.dashboard.present import xlsx_bytes
    from services.dashboard.reads import Reads
    from services.dashboard.rendering import render

    with tempfile.TemporaryDirectory(prefix="orglife-bench-dashboard-") as tmp:
        work = Path(tmp)
        marker = f"{args.branches} {args.members} {args.meetings_per_branch} {args.seed}\n"
        reuse = False
        if args.work:
            work = args.work
            work.mkdir(parents=True, exist_ok=True)
            reuse = (work / "built").exists() and (work / "built").read_text() == marker
            if not reuse:
                for old in work.glob("*.db*"):
                    old.unlink()
                (work / "built").unlink(missing_ok=True)
        print(f"{'reusing' if reuse else 'building'} the synthetic county ({args.branches} "
              f"branches, {args.members} members) in members, meetings and scoring ...",
              flush=True)
        world = build(work, args.branches, args.members, args.meetings_per_branch,
                      args.seed, reuse)
        if args.work and not reuse:
            (work / "built").write_text(marker)
        county_id = world["county"].organizations[0]["org_id"]
        principal = decode_token(SECRET, "Bearer " + mint_token(SECRET, "bench",
                                                                 "county_admin"))
        tz = ZoneInfo("Asia/Shanghai")
        period = pages.Period(YEAR, None, date(2026, 11, 20))
        calls: list[str] = []
        reads = Reads({"members": WorkerProxy(world["members"], calls, "members"),
                       "meetings": WorkerProxy(world["meetings"], calls, "meetings"),
                       "scoring": WorkerProxy(world["scoring"], calls, "scoring"),
                       "notifications": WorkerProxy(QuietNotifications(), calls,
                                                    "notifications")}, timeout=60)
        scoring = world["scoring"]
        read_samples, overview = timed(lambda: scoring.branch_overview(county_id, YEAR),
                                       args.runs)

        def page():
            view = pages.overview(reads, principal, county_id, period, tz)
            html = render(view.template, page=view, user=principal, path=f"/org/{county_id}",
                          query="")
            return view, html
        calls.clear()
        page()
        calls_per_page = sorted(calls)
        TIMES.clear()
        page_samples, (view, html) = timed(page, args.runs)
        by_read = ", ".join(f"{name} {statistics.median(times) * 1000:.0f}"
                            for name, times in sorted(TIMES.items()))

        def build_only():
            return pages.overview(reads, principal, county_id, period, tz)
        data_samples, _ = timed(build_only, args.runs)
        xlsx_bytes([view.tables["top"]])  # openpyxl imported once, as in a running service
        xlsx_samples, body = timed(lambda: xlsx_bytes([view.tables["branches"]]),
                                   max(1, args.runs // 2))
        lights = overview["lights"]
        signal.alarm(0)
        result = {
            "branches": len(overview["branches"]),
            "members": args.members,
            "meetings_logged": world["meetings_logged"],
            "county_built_s": round(world["built_s"], 1),
            "meetings_s": round(world["meetings_s"], 1),
            "lights": lights,
            "scoring.branch_overview": figures(read_samples),
            "overview page, reads + tables + HTML": figures(page_samples),
            "overview page, reads + tables only": figures(data_samples),
            "overview HTML": f"{len(html.encode()) / 1024:.0f} kB",
            "branches table as .xlsx": f"{figures(xlsx_samples)}, {len(body) / 1024:.0f} kB",
            "reads in the page, p50 ms each": by_read,
            "calls per page": f"{len(calls_per_page)}: {', '.join(calls_per_page)}",
        }
        print("\nDashboard overview, synthetic county")
        for key, value in result.items():
            print(f"  {key:<40} {value}")
        p50 = statistics.median(page_samples)
        verdict = "met" if p50 < 1.0 else "MISSED"
        print(f"  target: overview under 1 s → {verdict} in one process, every read waiting "
              f"for the others (p50 {p50 * 1000:.0f} ms)")
        for store in world["stores"].values():
            store.engine.dispose()
        if args.http:
            signal.alarm(args.timeout)
            slowest = http_figures(work, county_id, args.runs)
            signal.alarm(0)
            verdict = "met" if slowest < 1.0 else "MISSED"
            print(f"  target: overview under 1 s → {verdict} over HTTP (slowest p50 of today's "
                  f"and a past day's: {slowest * 1000:.0f} ms)")
            return 0 if slowest < 1.0 else 1
    return 0 if p50 < 1.0 else 1


def http_figures(work: Path, county_id: str, runs: int) -> float:
    """The same county through the real stack: members, meetings, scoring, notifications and
    the dashboard as processes (python -m orglife.runner, as `up` runs them) on a private
    broker, each on a copy of the built databases; pages fetched over HTTP with a signed-in
    cookie, as a browser would: the overview of today, of a past day (streaks computed live)
    and the branches table as .xlsx. Returns the slower p50 of the two overviews."""
    import shutil
    import urllib.request

    import harness
    from orglife.broker import free_ports
    bench = harness.Bench("dashboard-http")
    try:
        import sqlite3
        for service in ("members", "meetings", "scoring"):
            with sqlite3.connect(work / f"{service}.db") as db:  # all of it in the file
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            shutil.copyfile(work / f"{service}.db", bench.work / f"{service}.db")
            # the build handed every event over already: nothing is left for the relays
            with sqlite3.connect(bench.work / f"{service}.db") as db:
                db.execute("UPDATE outbox SET sent_at = created_at WHERE sent_at IS NULL")
        port = free_ports(1)[0]
        started = time.perf_counter()
        bench.start("members", "meetings", "scoring", "notifications", "dashboard",
                    env={"ORGLIFE_DASHBOARD_PORT": str(port)})
        print(f"\nstack started on the built county in {time.perf_counter() - started:.1f} s "
              f"(dashboard on port {port})", flush=True)
        cookie = f"orglife_session_{port}={bench.token}"

        def fetch(path: str) -> bytes:
            request = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                             headers={"Cookie": cookie})
            with urllib.request.urlopen(request, timeout=120) as answer:
                if answer.status != 200:
                    raise SystemExit(f"{path}: HTTP {answer.status}")
                return answer.read()
        fetch(f"/org/{county_id}")  # connections and caches warm, as for any later visitor
        pages_ = {"overview today": (f"/org/{county_id}", runs),
                  "overview as of 2026-06-30": (f"/org/{county_id}?as_of=2026-06-30", runs),
                  "branches .xlsx": (f"/org/{county_id}/export/branches.xlsx",
                                     max(1, runs // 2))}
        print("Over HTTP, the real stack (p50 / p95 / max, ms)")
        overviews = []
        for name, (path, count) in pages_.items():
            samples, body = timed(lambda: fetch(path), count)
            if name.startswith("overview"):
                overviews.append(statistics.median(samples))
            ordered = sorted(samples)
            p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
            print(f"  {name:<40} {statistics.median(samples) * 1000:.0f} / "
                  f"{p95 * 1000:.0f} / {max(samples) * 1000:.0f}  ({count} runs, "
                  f"{len(body) / 1024:.0f} kB)", flush=True)
        return max(overviews)
    finally:
        bench.close()


if __name__ == "__main__":
    sys.exit(main())
